/**
 * Bad-input corpus for the node agent's CNI socket: more than 1,000 generated requests (garbage
 * bytes, valid JSON of the wrong shape, lines beyond the 16 KiB bound, partial lines, hundreds of
 * concurrent half-open connections) against a real agent on the fake API server. Each bad request is
 * answered ok:false with DecodeFailure and a message naming the field (or, for partial lines and
 * lines beyond the bound, the connection is closed); meanwhile the agent keeps serving lookups and
 * the IP it assigned before does not change.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentLookup, answerToPodSettings } from '../../../cni/agent-client';
import { startAgent, type Agent } from '../../../node/agent/agent';
import { CniCode } from '../../../src/errors';
import { ClusterObjects, IPCLAIMS, loadKubeConfig, makeKubeClients } from '../../../src/kube/client';
import type { IPClaim } from '../../../src/ipam/claims';
import { silentLogger } from '../../../src/log';
import { crdValidators } from '../../fixtures/crd-schema';
import { startFakeKube, type FakeKube } from '../../fakes/kube-apiserver';
import { VLAN100 } from '../registrations/fixtures';

const MAX_LINE = 16 * 1024; // the documented bound (docs/registrations.md, agent socket)

let kube: FakeKube;
let claims: ClusterObjects<IPClaim>;
let dir: string;
let agent: Agent;

interface Reply {
  /** the answer line, parsed, if one came */
  answer: { ok: boolean; code?: number; message?: string } | null;
  ms: number;
}

/** One connection: write `bytes`, optionally half-close, and read until the agent closes. */
function exchange(bytes: Uint8Array | string, opts: { end?: boolean } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const sock = net.createConnection(agent.socketPath);
    let buf = '';
    const guard = setTimeout(() => {
      sock.destroy();
      reject(new Error(`agent neither answered nor closed within 30 s (got ${JSON.stringify(buf.slice(0, 200))})`));
    }, 30_000);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (buf += d));
    sock.on('error', () => undefined); // EPIPE/ECONNRESET when the agent cuts a connection: the close follows
    sock.on('close', () => {
      clearTimeout(guard);
      const line = buf.split('\n')[0] ?? '';
      resolve({ answer: line ? (JSON.parse(line) as Reply['answer']) : null, ms: Date.now() - t0 });
    });
    sock.on('connect', () => {
      sock.write(bytes);
      if (opts.end) sock.end();
    });
  });
}

const lookup = { v: 1, op: 'lookup', namespace: 'demo', name: 'app-a', uid: 'uid-a', containerId: 'ctr-a', ifName: 'net1' };
const report = { v: 1, op: 'report', namespace: 'demo', name: 'app-a', uid: 'uid-a', reason: 'DuplicateAddress', message: 'seen' };

function expectDecodeFailure(r: Reply, message: RegExp): void {
  expect(r.answer, 'an answer line').not.toBeNull();
  expect(r.answer!.ok).toBe(false);
  expect(r.answer!.code).toBe(CniCode.DecodeFailure);
  expect(r.answer!.message).toMatch(message);
}

// ---- generators -------------------------------------------------------------------------------

/** Bytes that cannot start a JSON text, then anything but a newline, then the newline. */
const garbage = fc
  .tuple(fc.constantFrom(0x00, 0x01, 0x08, 0x7d, 0x5d, 0x3a, 0x2c, 0x23, 0x3c, 0xff, 0xfe, 0xc0), fc.uint8Array({ maxLength: 300 }))
  .map(([first, tail]) => Buffer.from([first, ...tail.filter((b) => b !== 0x0a), 0x0a]));

const text = (min: number, max: number) => fc.string({ minLength: min, maxLength: max });
/** A value of the wrong type for a string field. */
const notString = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 2 }), fc.dictionary(fc.string(), fc.nat(), { maxKeys: 2 }));

/** A valid lookup request with exactly one field made wrong; answered naming that field. */
const wrongLookup = fc.oneof(
  fc.oneof(fc.integer().filter((n) => n !== 1), fc.string(), fc.constant(null)).map((v) => ({ body: { ...lookup, v }, field: 'v' })),
  fc.string().filter((op) => op !== 'lookup' && op !== 'report').map((op) => ({ body: { ...lookup, op }, field: 'op' })),
  fc.oneof(fc.constant(''), text(254, 600), notString).map((namespace) => ({ body: { ...lookup, namespace }, field: 'namespace' })),
  fc.oneof(fc.constant(''), text(254, 600), notString).map((name) => ({ body: { ...lookup, name }, field: 'name' })),
  fc.oneof(text(65, 300), notString).map((uid) => ({ body: { ...lookup, uid }, field: 'uid' })),
  fc.oneof(text(257, 600), notString).map((containerId) => ({ body: { ...lookup, containerId }, field: 'containerId' })),
  fc.oneof(text(16, 100), notString).map((ifName) => ({ body: { ...lookup, ifName }, field: 'ifName' })),
  fc.oneof(text(65, 300), notString).map((deviceID) => ({ body: { ...lookup, deviceID }, field: 'deviceID' })),
  fc.constantFrom('v', 'op', 'namespace', 'name', 'uid').map((field) => {
    const body: Record<string, unknown> = { ...lookup };
    delete body[field];
    return { body, field };
  }),
);

/** Any JSON that is not an object (or an object without `v`): answered about the root or `v`. */
const notAnObject = fc.jsonValue().filter((j) => j === null || typeof j !== 'object' || Array.isArray(j) || !('v' in j) || !('op' in j));

const wrongReport = fc.oneof(
  fc.string().filter((r) => r !== 'DuplicateAddress').map((reason) => ({ body: { ...report, reason }, field: 'reason' })),
  fc.oneof(text(1025, 3000), notString).map((message) => ({ body: { ...report, message }, field: 'message' })),
  fc.oneof(fc.constant(''), notString).map((namespace) => ({ body: { ...report, namespace }, field: 'namespace' })),
);

/** A request line past the bound, valid JSON, whole (with its newline) or still going (none). */
const overBound = fc.tuple(fc.integer({ min: MAX_LINE + 1, max: 60 * 1024 }), fc.boolean()).map(([size, newline]) => {
  const line = JSON.stringify({ ...lookup, containerId: 'x'.repeat(size) });
  return { bytes: newline ? `${line}\n` : line, newline };
});

/** A valid request cut before its newline (possibly mid-character), then EOF. */
const partial = fc
  .tuple(fc.constantFrom(lookup, report), fc.double({ min: 0, max: 1, noNaN: true }))
  .map(([body, at]) => {
    const full = Buffer.from(JSON.stringify({ ...body, name: 'app-ä-€' }));
    return full.subarray(0, Math.floor(at * full.length));
  });

// ---- the run ----------------------------------------------------------------------------------

beforeAll(async () => {
  kube = await startFakeKube({ namespaces: ['sriov-underlay', 'demo'], validators: crdValidators() });
  const clients = makeKubeClients(loadKubeConfig({ kubeconfig: kube.kubeconfigPath }));
  claims = new ClusterObjects<IPClaim>(clients.custom, IPCLAIMS);
  const cm = (namespace: string, name: string, kind: string, data: Record<string, string>) =>
    clients.core.createNamespacedConfigMap({ namespace, body: { metadata: { name, namespace, labels: { 'sriov-underlay.io/kind': kind } }, data } });
  await cm('sriov-underlay', 'networks', 'network', { vlan100: VLAN100 });
  await cm('demo', 'demo-net', 'registration', { 'app-a': 'network: vlan100\nip: 10.100.0.11', web: 'pool: vlan100' });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-corpus-'));
  agent = await startAgent({
    nodeName: 'node-a',
    log: silentLogger(),
    kubeconfig: kube.kubeconfigPath,
    socketPath: path.join(dir, 'agent.sock'),
    releaseQueueDir: path.join(dir, 'release-queue'),
    podResourcesSocket: path.join(dir, 'no-kubelet.sock'),
    sysfsRoot: path.join(dir, 'no-sysfs'),
    releaseRetryMs: 60_000,
  });
});
afterAll(async () => {
  await agent?.stop();
  await kube?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const add = (name: string, uid: string) => agentLookup(agent.socketPath, { namespace: 'demo', name, uid, containerId: `ctr-${name}`, ifName: 'net1', deviceID: '0000:81:10.1' });
const ipOf = async (name: string, uid: string) => answerToPodSettings(await add(name, uid))?.ips;
// updatedAt left out: the valid lookups below repeat app-a's ADD, which refreshes it by design (so a
// DEL note queued before a repeated ADD cannot free the address); everything assigned must not move.
const claimSpecs = async () => (await claims.list()).items
  .map((c) => ({ name: c.metadata?.name, spec: { ...c.spec, updatedAt: undefined } }))
  .sort((a, b) => String(a.name).localeCompare(String(b.name)));

describe('agent socket bad-input corpus', () => {
  it('answers more than 1,000 bad requests with DecodeFailure naming the field, keeps serving, keeps what it assigned', async () => {
    // Assigned before the corpus: a fixed IP and a pool IP.
    const fixed = await ipOf('app-a', 'uid-a');
    const pooled = await ipOf('web', 'uid-web');
    expect(fixed).toEqual(['10.100.0.11/24']);
    expect(pooled!.length).toBeGreaterThan(0);
    const before = await claimSpecs();
    expect(before.map((c) => c.spec.ip).sort()).toEqual(['10.100.0.11', ...pooled!.map((a) => a.split('/')[0])].sort());

    let runs = 0;
    const prop = <T>(arb: fc.Arbitrary<T>, numRuns: number, check: (t: T) => Promise<void>) =>
      fc.assert(
        fc.asyncProperty(arb, async (t) => {
          runs++;
          await check(t);
        }),
        { numRuns },
      );

    await prop(garbage, 250, async (b) => expectDecodeFailure(await exchange(b), /^request is not JSON$/));
    await prop(wrongLookup, 350, async ({ body, field }) => expectDecodeFailure(await exchange(`${JSON.stringify(body)}\n`), new RegExp(`^agent request: field "${field}"`)));
    await prop(notAnObject, 100, async (j) => expectDecodeFailure(await exchange(`${JSON.stringify(j)}\n`), /^agent request: field "(\(root\)|v|op)"/));
    await prop(wrongReport, 100, async ({ body, field }) => expectDecodeFailure(await exchange(`${JSON.stringify(body)}\n`), new RegExp(`^agent report: field "${field}"`)));
    await prop(overBound, 60, async ({ bytes }) => {
      const r = await exchange(bytes);
      expectDecodeFailure(r, new RegExp(`^request longer than ${MAX_LINE} bytes$`));
    });
    await prop(partial, 100, async (b) => {
      const r = await exchange(b, { end: true });
      // Nothing to answer yet: the agent closes when the CNI side does, at once, never a lookup.
      if (r.answer) expectDecodeFailure(r, /./);
      expect(r.ms).toBeLessThan(2_000);
    });

    // Hundreds of connections held open with half a line or nothing: lookups are served meanwhile,
    // and the agent closes every one of them by itself.
    const halfOpen = Array.from({ length: 300 }, (_, i) => exchange(i % 2 ? JSON.stringify(lookup).slice(0, i % 60) : ''));
    runs += halfOpen.length;
    for (let i = 0; i < 10; i++) expect(await ipOf('app-a', 'uid-a')).toEqual(fixed);
    const closed = await Promise.all(halfOpen);
    expect(closed.every((r) => r.answer === null)).toBe(true);

    expect(runs).toBeGreaterThanOrEqual(1000);
    expect(await claimSpecs()).toEqual(before);
    expect(await ipOf('web', 'uid-web')).toEqual(pooled);
    expect(answerToPodSettings(await add('app-a', 'uid-a'))?.ips).toEqual(fixed);
  });

  it('a client that keeps sending past the bound is cut off, not read to the end', async () => {
    const total = 32 * 1024 * 1024;
    const sent = await new Promise<number>((resolve) => {
      // allowHalfOpen: like a client that is not node, it does not stop writing when the agent's FIN arrives
      const sock = net.createConnection({ path: agent.socketPath, allowHalfOpen: true });
      let written = 0;
      let answer = '';
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      sock.setEncoding('utf8');
      sock.on('data', (d: string) => (answer += d));
      sock.on('error', () => undefined);
      sock.on('close', () => {
        expect(answer).toMatch(/request longer than/);
        resolve(written);
      });
      const pump = () => {
        while (written < total && !sock.destroyed) {
          written += chunk.length;
          if (!sock.write(chunk)) return void sock.once('drain', pump);
        }
        sock.end();
      };
      sock.on('connect', pump);
    });
    expect(sent).toBeLessThan(total);
  });
});
