/**
 * Bad-input corpus for the device plugin's gRPC server: more than 1,000 generated malformed requests
 * over the real unix socket to Allocate, GetPreferredAllocation, PreStartContainer,
 * GetDevicePluginOptions and ListAndWatch. Each case is malformed by construction and carries the
 * answer it must get (code and a message naming the field); afterwards the daemon still serves a
 * valid Allocate and nothing already allocated has changed.
 *
 * Requests are sent as raw bytes (a client with identity serializers), so wrong wire types,
 * truncations and invalid UTF-8 reach the server exactly as written.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import * as protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devicePluginRequestTypes, unixAddress } from '../../../src/proto';
import { MAX_CONTAINER_REQUESTS, MAX_DEVICE_ID_LENGTH, MAX_LIST, MAX_RPC_MESSAGE_BYTES } from '../../../src/schemas/device-plugin-rpc';
import { harness, pfSpecs, type Harness } from './harness';

const R = 'sriov-underlay.io/vf';
const RPCS = ['Allocate', 'GetPreferredAllocation', 'PreStartContainer', 'GetDevicePluginOptions', 'ListAndWatch'] as const;
type Rpc = (typeof RPCS)[number];

interface Case {
  rpc: Rpc;
  bytes: Uint8Array;
  code: grpc.status;
  /** what the error message must say (the field, or the byte offset for broken framing) */
  match: RegExp;
}

let h: Harness;
let client: grpc.Client;
/** pfSpecs(2, 4): PFs 0000:81:00.0 and 0000:82:00.0 with four VFs each, all in the one pool. */
const poolIds = ['81', '82'].flatMap((bus) => [0, 1, 2, 3].map((f) => `0000:${bus}:10.${f}`));
const types = devicePluginRequestTypes();
const encode = (rpc: Rpc, obj: object) => types.get(rpc)!.encode(types.get(rpc)!.fromObject(obj)).finish();
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function call(c: Pick<Case, 'rpc' | 'bytes'>): Promise<{ code: grpc.status; details: string }> {
  const method = `/v1beta1.DevicePlugin/${c.rpc}`;
  const id = (b: Buffer) => b;
  return new Promise((resolve) => {
    if (c.rpc === 'ListAndWatch') {
      const s = client.makeServerStreamRequest(method, id, id, Buffer.from(c.bytes));
      s.on('data', () => {
        s.cancel();
        resolve({ code: grpc.status.OK, details: '' });
      });
      s.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, details: e.details }));
      return;
    }
    client.makeUnaryRequest(method, id, id, Buffer.from(c.bytes), (e: grpc.ServiceError | null) =>
      resolve(e ? { code: e.code, details: e.details } : { code: grpc.status.OK, details: '' }),
    );
  });
}

// ---- generators -------------------------------------------------------------------------------

/** A device ID that is not in the pool: 1..64 UTF-16 units of any Unicode text. */
const unknownId = fc
  .string({ unit: 'grapheme', minLength: 1, maxLength: 16 })
  .filter((s) => s.length <= MAX_DEVICE_ID_LENGTH && !poolIds.includes(s));
const poolId = () => fc.constantFrom(...poolIds);

const allocUnknown: fc.Arbitrary<Case> = fc
  .tuple(fc.uniqueArray(unknownId, { minLength: 1, maxLength: 12 }), fc.subarray(poolIds), fc.integer({ min: 1, max: 3 }), fc.nat())
  .map(([unknown, known, parts, seed]) => {
    // Spread unknown and pool IDs over up to 3 containers, no ID twice: only "not in pool" is wrong.
    const all = [...known, ...unknown];
    const containers = Array.from({ length: Math.min(parts, all.length) }, () => [] as string[]);
    all.forEach((id, i) => containers[(i + seed) % containers.length]!.push(id));
    return {
      rpc: 'Allocate' as const,
      bytes: encode('Allocate', { container_requests: containers.map((devices_ids) => ({ devices_ids })) }),
      code: grpc.status.INVALID_ARGUMENT,
      match: /^Allocate request: field "container_requests\.\d+\.devices_ids\.\d+": device ".*" is not in pool sriov-underlay\.io\/vf$/su,
    };
  });

const allocEmpty: fc.Arbitrary<Case> = fc.oneof(
  fc.constant({ rpc: 'Allocate' as const, bytes: encode('Allocate', {}), code: grpc.status.INVALID_ARGUMENT, match: /field "container_requests": no container requests/ }),
  fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 })).map(([before, after]) => ({
    rpc: 'Allocate' as const,
    bytes: encode('Allocate', {
      container_requests: [...poolIds.slice(0, before).map((id) => ({ devices_ids: [id] })), { devices_ids: [] }, ...poolIds.slice(before, before + after).map((id) => ({ devices_ids: [id] }))],
    }),
    code: grpc.status.INVALID_ARGUMENT,
    match: new RegExp(`field "container_requests\\.${before}\\.devices_ids": no device IDs requested`),
  })),
);

const allocDuplicates: fc.Arbitrary<Case> = fc.tuple(poolId(), fc.uniqueArray(unknownId, { maxLength: 3 }), fc.boolean()).map(([dup, others, across]) => ({
  rpc: 'Allocate' as const,
  bytes: encode('Allocate', {
    container_requests: across ? [{ devices_ids: [dup, ...others] }, { devices_ids: [dup] }] : [{ devices_ids: [dup, ...others, dup] }],
  }),
  code: grpc.status.INVALID_ARGUMENT,
  match: across
    ? new RegExp(`field "container_requests\\.1\\.devices_ids\\.0": device ID "${esc(dup)}" is also requested by an earlier container`)
    : new RegExp(`field "container_requests\\.0\\.devices_ids\\.${others.length + 1}": device ID "${esc(dup)}" appears more than once`),
}));

const badId = fc.oneof(
  fc.constant({ id: '', why: 'empty device ID' }),
  fc.string({ minLength: MAX_DEVICE_ID_LENGTH + 1, maxLength: 400 }).map((id) => ({ id, why: `device ID longer than ${MAX_DEVICE_ID_LENGTH} characters` })),
);
const allocBadIds: fc.Arbitrary<Case> = fc.tuple(badId, fc.nat({ max: poolIds.length })).map(([bad, at]) => ({
  rpc: 'Allocate' as const,
  bytes: encode('Allocate', { container_requests: [{ devices_ids: [...poolIds.slice(0, at), bad.id] }] }),
  code: grpc.status.INVALID_ARGUMENT,
  match: new RegExp(`field "container_requests\\.0\\.devices_ids\\.${at}": ${bad.why}`),
}));

const manyIds = (n: number) => Array.from({ length: n }, (_, i) => `0000:ff:${i.toString(16).padStart(4, '0')}`);
const hugeLists: fc.Arbitrary<Case> = fc.oneof(
  fc.integer({ min: MAX_LIST + 1, max: MAX_LIST + 3000 }).map((n) => ({
    rpc: 'Allocate' as const,
    bytes: encode('Allocate', { container_requests: [{ devices_ids: manyIds(n) }] }),
    code: grpc.status.INVALID_ARGUMENT,
    match: new RegExp(`^Allocate request: field "container_requests\\.0\\.devices_ids": more than ${MAX_LIST} values$`),
  })),
  fc.integer({ min: MAX_LIST + 1, max: MAX_LIST + 3000 }).map((n) => ({
    rpc: 'GetPreferredAllocation' as const,
    bytes: encode('GetPreferredAllocation', { container_requests: [{ available_deviceIDs: manyIds(n), allocation_size: 1 }] }),
    code: grpc.status.INVALID_ARGUMENT,
    match: new RegExp(`field "container_requests\\.0\\.available_deviceIDs": more than ${MAX_LIST} values`),
  })),
  fc.integer({ min: MAX_CONTAINER_REQUESTS + 1, max: MAX_CONTAINER_REQUESTS + 500 }).map((n) => ({
    rpc: 'Allocate' as const,
    bytes: encode('Allocate', { container_requests: manyIds(n).map((id) => ({ devices_ids: [id] })) }),
    code: grpc.status.INVALID_ARGUMENT,
    match: new RegExp(`field "container_requests": more than ${MAX_CONTAINER_REQUESTS} container requests`),
  })),
  // Thousands of empty IDs: one bounded message, not one per ID.
  fc.integer({ min: 100, max: MAX_LIST }).map((n) => ({
    rpc: 'PreStartContainer' as const,
    bytes: encode('PreStartContainer', { devices_ids: Array.from({ length: n }, () => '') }),
    code: grpc.status.INVALID_ARGUMENT,
    match: new RegExp(`^PreStartContainer request: field "devices_ids\\.0": empty device ID; field "devices_ids\\.1": empty device ID; field "devices_ids\\.2": empty device ID; and ${n - 3} more$`),
  })),
);

/** Beyond the message bound, on every RPC: refused by size before anything is decoded. */
const oversized: fc.Arbitrary<Case> = fc.tuple(fc.constantFrom(...RPCS), fc.integer({ min: MAX_RPC_MESSAGE_BYTES + 1, max: 3 * MAX_RPC_MESSAGE_BYTES })).map(([rpc, size]) => {
  const w = protobuf.Writer.create();
  w.uint32((15 << 3) | 2).bytes(new Uint8Array(size));
  return { rpc, bytes: w.finish(), code: grpc.status.RESOURCE_EXHAUSTED, match: /larger than max/ };
});

const preferredBad: fc.Arbitrary<Case> = fc.oneof(
  fc.oneof(fc.integer({ min: -(2 ** 31), max: 0 }), fc.integer({ min: MAX_LIST + 1, max: 2 ** 31 - 1 })).map((size) => ({
    rpc: 'GetPreferredAllocation' as const,
    bytes: encode('GetPreferredAllocation', { container_requests: [{ available_deviceIDs: poolIds, allocation_size: size }] }),
    code: grpc.status.INVALID_ARGUMENT,
    match: /field "container_requests\.0\.allocation_size": allocation_size must be at (least 1|most 4096)/,
  })),
  fc.tuple(fc.uniqueArray(unknownId, { minLength: 1, maxLength: 3 })).map(([ids]) => ({
    rpc: 'GetPreferredAllocation' as const,
    bytes: encode('GetPreferredAllocation', { container_requests: [{ available_deviceIDs: [...poolIds, ...ids], must_include_deviceIDs: ids, allocation_size: 4 }] }),
    code: grpc.status.INVALID_ARGUMENT,
    match: /^GetPreferredAllocation request: field "container_requests\.0\.must_include_deviceIDs\.0": device ".*" is not in pool sriov-underlay\.io\/vf$/su,
  })),
  fc.integer({ min: 1, max: 2 }).map((size) => ({
    rpc: 'GetPreferredAllocation' as const,
    bytes: encode('GetPreferredAllocation', { container_requests: [{ available_deviceIDs: poolIds, must_include_deviceIDs: poolIds.slice(0, 3), allocation_size: size }] }),
    code: grpc.status.INVALID_ARGUMENT,
    match: new RegExp(`3 must-include devices exceed allocation_size ${size}`),
  })),
  poolId().map((dup) => ({
    rpc: 'GetPreferredAllocation' as const,
    bytes: encode('GetPreferredAllocation', { container_requests: [{ available_deviceIDs: [...poolIds, dup], allocation_size: 1 }] }),
    code: grpc.status.INVALID_ARGUMENT,
    match: new RegExp(`field "container_requests\\.0\\.available_deviceIDs\\.${poolIds.length}": device ID "${esc(dup)}" appears more than once`),
  })),
  fc.constant({ rpc: 'GetPreferredAllocation' as const, bytes: encode('GetPreferredAllocation', {}), code: grpc.status.INVALID_ARGUMENT, match: /field "container_requests": no container requests/ }),
);

const preStartBad: fc.Arbitrary<Case> = fc.oneof(
  fc.uniqueArray(unknownId, { minLength: 1, maxLength: 5 }).map((ids) => ({
    rpc: 'PreStartContainer' as const,
    bytes: encode('PreStartContainer', { devices_ids: [...poolIds.slice(0, 1), ...ids] }),
    code: grpc.status.INVALID_ARGUMENT,
    match: /^PreStartContainer request: field "devices_ids\.1": device ".*" is not in pool sriov-underlay\.io\/vf$/su,
  })),
  poolId().map((dup) => ({
    rpc: 'PreStartContainer' as const,
    bytes: encode('PreStartContainer', { devices_ids: [dup, dup] }),
    code: grpc.status.INVALID_ARGUMENT,
    match: /field "devices_ids\.1": device ID ".*" appears more than once/,
  })),
);

// Raw protobuf damage. Each message below has one top-level field, so every strict prefix of it is
// cut inside that field: truncation is malformed by construction.
const validBytes = (): Record<Exclude<Rpc, 'GetDevicePluginOptions' | 'ListAndWatch'>, Uint8Array> => ({
  Allocate: encode('Allocate', { container_requests: [{ devices_ids: poolIds.slice(0, 2) }] }),
  GetPreferredAllocation: encode('GetPreferredAllocation', { container_requests: [{ available_deviceIDs: poolIds, must_include_deviceIDs: [], allocation_size: 2 }] }),
  PreStartContainer: encode('PreStartContainer', { devices_ids: poolIds.slice(0, 1) }),
});
const truncated: fc.Arbitrary<Case> = fc
  .tuple(fc.constantFrom('Allocate', 'GetPreferredAllocation', 'PreStartContainer') as fc.Arbitrary<'Allocate' | 'GetPreferredAllocation' | 'PreStartContainer'>, fc.double({ min: 0, max: 1, noNaN: true }))
  .map(([rpc, at]) => {
    const full = validBytes()[rpc];
    const cut = 1 + Math.floor(at * (full.length - 2));
    return { rpc, bytes: full.subarray(0, cut), code: grpc.status.INVALID_ARGUMENT, match: new RegExp(`^${rpc} request: .*(truncated varint|runs past the end)`) };
  });

/** Bytes for a value of the given wire type. */
function wireValue(w: protobuf.Writer, wire: number): void {
  if (wire === 0) w.uint64(123456789);
  else if (wire === 1) w.fixed64(7);
  else if (wire === 5) w.fixed32(7);
  else w.bytes(new Uint8Array([1, 2, 3]));
}
const WIRE = ['varint', '64-bit', 'length-delimited', '', '', '32-bit'];
const wrongWire: fc.Arbitrary<Case> = fc.oneof(
  // top level: container_requests (a message) / devices_ids (strings) sent as a number
  fc.tuple(fc.constantFrom('Allocate', 'GetPreferredAllocation', 'PreStartContainer') as fc.Arbitrary<'Allocate' | 'GetPreferredAllocation' | 'PreStartContainer'>, fc.constantFrom(0, 1, 5)).map(([rpc, wire]) => {
    const w = protobuf.Writer.create().uint32((1 << 3) | wire);
    wireValue(w, wire);
    const field = rpc === 'PreStartContainer' ? 'devices_ids.0' : 'container_requests.0';
    return { rpc, bytes: w.finish(), code: grpc.status.INVALID_ARGUMENT, match: new RegExp(`^${rpc} request: field "${esc(field)}" at byte 0: sent as ${WIRE[wire]}, expected length-delimited`) };
  }),
  // nested: an ID sent as a number inside container 0
  fc.constantFrom(0, 1, 5).map((wire) => {
    const w = protobuf.Writer.create().uint32((1 << 3) | 2).fork().uint32((1 << 3) | wire);
    wireValue(w, wire);
    return { rpc: 'Allocate' as const, bytes: w.ldelim().finish(), code: grpc.status.INVALID_ARGUMENT, match: new RegExp(`field "container_requests\\.0\\.devices_ids\\.0" at byte 2: sent as ${WIRE[wire]}`) };
  }),
  // nested: allocation_size (int32) sent as bytes or fixed
  fc.constantFrom(1, 2, 5).map((wire) => {
    const w = protobuf.Writer.create().uint32((1 << 3) | 2).fork().uint32((3 << 3) | wire);
    wireValue(w, wire);
    return { rpc: 'GetPreferredAllocation' as const, bytes: w.ldelim().finish(), code: grpc.status.INVALID_ARGUMENT, match: new RegExp(`field "container_requests\\.0\\.allocation_size" at byte 2: sent as ${WIRE[wire]}, expected varint \\(int32\\)`) };
  }),
);

const invalidUtf8: fc.Arbitrary<Case> = fc
  .tuple(fc.constantFrom([0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf8, 0x88, 0x80, 0x80, 0x80]), fc.constantFrom('Allocate', 'PreStartContainer') as fc.Arbitrary<'Allocate' | 'PreStartContainer'>)
  .map(([bad, rpc]) => {
    const id = new Uint8Array([...Buffer.from('0000:'), ...bad]);
    const w = protobuf.Writer.create();
    if (rpc === 'Allocate') w.uint32((1 << 3) | 2).fork().uint32((1 << 3) | 2).bytes(id).ldelim();
    else w.uint32((1 << 3) | 2).bytes(id);
    const field = rpc === 'Allocate' ? 'container_requests.0.devices_ids.0' : 'devices_ids.0';
    return { rpc, bytes: w.finish(), code: grpc.status.INVALID_ARGUMENT, match: new RegExp(`field "${esc(field)}" at byte \\d+: not valid UTF-8`) };
  });

/** Garbage from the first byte on: field number 0, or a wire type proto3 has no use for; any tail. */
const garbage: fc.Arbitrary<Case> = fc
  .tuple(fc.constantFrom(...RPCS), fc.constantFrom(0x00, 0x07, 0x0b, 0x0c, 0x0e, 0x0f, 0x7e, 0x7f), fc.uint8Array({ maxLength: 200 }))
  .map(([rpc, first, tail]) => ({ rpc, bytes: new Uint8Array([first, ...tail]), code: grpc.status.INVALID_ARGUMENT, match: new RegExp(`^${rpc} request: .*byte 0`) }));

/** Well-formed unknown fields first (skipped, as proto3 wants), then damage in unknown field 15 at a known offset. */
const damagedAfterUnknown: fc.Arbitrary<Case> = fc
  .tuple(fc.constantFrom(...RPCS), fc.array(fc.tuple(fc.integer({ min: 20, max: 1000 }), fc.uint8Array({ maxLength: 20 })), { maxLength: 5 }), fc.constantFrom('long-varint', 'past-end', 'group'))
  .map(([rpc, unknown, kind]) => {
    const w = protobuf.Writer.create();
    for (const [num, data] of unknown) w.uint32((num << 3) | 2).bytes(data);
    const at = w.len;
    const head = w.finish();
    // field 15: a one-byte tag, unknown to every request message
    const [tail, why] =
      kind === 'long-varint'
        ? [[(15 << 3) | 0, ...Array<number>(11).fill(0x80), 0x01], `at byte ${at + 1}: varint longer than 10 bytes`]
        : kind === 'past-end'
          ? [[(15 << 3) | 2, 0x7f, 1, 2, 3], `at byte ${at}: length 127 runs past the end of its message \\(3 bytes left\\)`]
          : [[(15 << 3) | 3, 0x00], `at byte ${at}: group start is not allowed in proto3`];
    return { rpc, bytes: new Uint8Array([...head, ...tail]), code: grpc.status.INVALID_ARGUMENT, match: new RegExp(`^${rpc} request: field "#15" ${why}$`) };
  });

/** Not malformed: unknown fields only, on the two RPCs whose request is Empty. Must be answered. */
const forwardCompatible = fc.tuple(fc.constantFrom('GetDevicePluginOptions', 'ListAndWatch') as fc.Arbitrary<Rpc>, fc.array(fc.tuple(fc.integer({ min: 1, max: 5000 }), fc.uint8Array({ maxLength: 30 })), { maxLength: 5 })).map(([rpc, fields]) => {
  const w = protobuf.Writer.create();
  for (const [num, data] of fields) w.uint32((num << 3) | 2).bytes(data);
  return { rpc, bytes: w.finish() };
});

// ---- the run ----------------------------------------------------------------------------------

async function snapshot() {
  const files = fs.readdirSync(h.devinfo).sort();
  return {
    pools: h.daemon.pools(),
    devinfo: Object.fromEntries(files.map((f) => [f, fs.readFileSync(path.join(h.devinfo, f), 'utf8')])),
    listed: JSON.stringify(h.kubelet.devices(R)),
    allocatedOk: (await h.daemon.metrics.allocations.get()).values.filter((v) => v.labels.result === 'ok').reduce((a, v) => a + v.value, 0),
  };
}

beforeAll(async () => {
  h = await harness({ mode: 'legacy', pfs: pfSpecs(2, 4), config: { resourceList: [{ resourceName: 'vf' }] } });
  await h.startDaemon();
  await h.kubelet.waitFor('pool streaming', () => h.kubelet.devices(R)?.length === 8);
  expect(h.kubelet.healthyIds(R)).toEqual(poolIds);
  client = new grpc.Client(unixAddress(h.daemon.server(R)!.socketPath), grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': 4 * MAX_RPC_MESSAGE_BYTES,
  });
});
afterAll(async () => {
  client?.close();
  await h?.cleanup();
});

describe('device plugin gRPC bad-input corpus', () => {
  it('answers more than 1,000 malformed requests with a clear error each, keeps serving, changes nothing allocated', async () => {
    // Something is allocated before the corpus, and must stay exactly as it is.
    const held = await h.kubelet.allocate(R, [poolIds[0]!, poolIds[5]!]);
    expect(held.response.container_responses).toHaveLength(1);
    const before = await snapshot();
    expect(before.pools[0]!.allocated).toBe(2);

    let runs = 0;
    const seen: Record<string, number> = {};
    const check = async (name: string, arb: fc.Arbitrary<Case>, numRuns: number) => {
      await fc.assert(
        fc.asyncProperty(arb, async (c) => {
          const got = await call(c);
          runs++;
          seen[c.rpc] = (seen[c.rpc] ?? 0) + 1;
          expect(grpc.status[got.code], `${name}: ${c.rpc} (${c.bytes.length} bytes) answered ${got.details}`).toBe(grpc.status[c.code]);
          expect(got.details).toMatch(c.match);
          expect(got.details.length, 'the message is bounded').toBeLessThan(1024);
        }),
        { numRuns },
      );
    };
    const corpus: Array<[string, fc.Arbitrary<Case>, number]> = [
      ['unknown device IDs', allocUnknown, 150],
      ['empty requests', allocEmpty, 40],
      ['duplicate IDs', allocDuplicates, 100],
      ['empty or too long IDs', allocBadIds, 100],
      ['huge lists', hugeLists, 40],
      ['oversized messages', oversized, 15],
      ['GetPreferredAllocation', preferredBad, 150],
      ['PreStartContainer', preStartBad, 60],
      ['truncated', truncated, 120],
      ['wrong wire types', wrongWire, 60],
      ['invalid UTF-8', invalidUtf8, 30],
      ['garbage', garbage, 150],
      ['damage after unknown fields', damagedAfterUnknown, 100],
    ];
    for (const [name, arb, numRuns] of corpus) await check(name, arb, numRuns);
    expect(runs).toBeGreaterThanOrEqual(1000);
    for (const rpc of RPCS) expect(seen[rpc], `${rpc} got malformed requests`).toBeGreaterThan(0);

    // Unknown fields alone are not malformed (proto3; a newer kubelet may send some): answered.
    await fc.assert(
      fc.asyncProperty(forwardCompatible, async (c) => {
        expect((await call(c)).code).toBe(grpc.status.OK);
      }),
      { numRuns: 50 },
    );

    // Nothing already allocated changed, nothing new was allocated, and the daemon still serves.
    expect(await snapshot()).toEqual(before);
    const { response } = await h.kubelet.allocate(R, [poolIds[1]!]);
    expect(response.container_responses[0]!.envs.PCIDEVICE_SRIOV_UNDERLAY_IO_VF).toBe(poolIds[1]);
    expect(h.daemon.pools()[0]!.allocated).toBe(3);
  });
});
