/**
 * Every state format that ever shipped (test/fixtures/formats/<format>/<version>-<release>) is read
 * by this release's own readers, and written back as this release writes it: the result must be
 * the committed fixture of this release, byte for byte, and the format's shape must be the one
 * recorded for its version (formats-golden.json), so a format cannot change without a version bump.
 * Files of a newer format (test/fixtures/formats/future/) are refused with an error naming the
 * file, the format and the release, and left exactly as they were.
 *
 * Re-recording: UPDATE_FORMAT_FIXTURES=1 writes this release's fixtures and golden shapes that do
 * not exist yet; it never overwrites one (a changed shape needs a new version, see docs/upgrade.md).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import * as z from 'zod/mini';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { queueIpamRelease, retryPendingReleases } from '../../../cni/ipam-release';
import { writeReleaseNote } from '../../../cni/claim-release';
import type { Invocation } from '../../../cni/skel';
import { ReleaseQueue } from '../../../node/agent/release-queue';
import { CLAIM_RELEASE_MAX_BYTES, claimReleaseSchema } from '../../../src/schemas/claim-release';
import { IPAM_PENDING_MAX_BYTES, ipamPendingSchema, pendingEnv } from '../../../src/schemas/ipam-pending';
import { vfRecordSchema } from '../../../src/schemas/vf-record';
import { readJsonFile } from '../../../src/state/bounded-file';
import { FORMATS, FormatTooNewError, formatVersion, SHIPPED_RELEASES, THIS_RELEASE, type FormatId } from '../../../src/state/formats';
import { encodeVfRecord, VfRecords } from '../../../src/state/vf-records';
import { RELEASE_COMMITS } from '../../fixtures/releases';

const FIX = path.join(__dirname, '../../fixtures/formats');
const GOLDEN = path.join(FIX, 'formats-golden.json');
const UPDATE = !!process.env.UPDATE_FORMAT_FIXTURES;
const REPO = path.join(__dirname, '../../..');

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'formats-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const fileFormats = FORMATS.filter((f) => f.kind === 'file');
const fixtureName = (id: FormatId, version: number, release: string) => `${id}/${version}-${release}${id === 'attachment-index' ? '' : '.json'}`;
const read = (name: string) => fs.readFileSync(path.join(FIX, name), 'utf8');

/** Compare with this release's committed fixture; record it when missing and UPDATE is set. */
function expectThisReleaseFixture(id: FormatId, written: string): void {
  const spec = fileFormats.find((f) => f.id === id)!;
  const name = fixtureName(id, spec.writes, THIS_RELEASE);
  const file = path.join(FIX, name);
  if (!fs.existsSync(file) && UPDATE) fs.writeFileSync(file, written);
  expect(fs.existsSync(file), `${name} missing: run with UPDATE_FORMAT_FIXTURES=1 to record this release's fixture`).toBe(true);
  expect(written, `${id} as this release writes it differs from ${name}`).toBe(fs.readFileSync(file, 'utf8'));
}

const logged: string[] = [];
const captureLogger = () => pino({ level: 'debug' }, { write: (s: string) => void logged.push(s) });
const inv = { cniPath: [], rawEnv: {} } as unknown as Invocation;

describe('formats that ever shipped are read, migrated and written back as this release writes them', () => {
  it('every file format has a fixture for each version a shipped release (and this one) wrote', () => {
    for (const f of fileFormats) {
      for (const [v, release] of Object.entries(f.since)) expect(fs.existsSync(path.join(FIX, fixtureName(f.id, Number(v), release))), fixtureName(f.id, Number(v), release)).toBe(true);
      expect(f.reads, `${f.id} must read every version it ever wrote`).toEqual(Object.keys(f.since).map(Number));
    }
    for (const r of SHIPPED_RELEASES) expect(RELEASE_COMMITS[r], `commit of release ${r}`).toMatch(/^[0-9a-f]{40}$/);
  });

  it('vf-record 1 of 0.1.0: read as it is; written back with writtenBy, still version 1', () => {
    const text = read('vf-record/1-0.1.0.json');
    const pci = (JSON.parse(text) as { pciAddr: string }).pciAddr;
    fs.mkdirSync(path.join(dir, 'vfs'));
    fs.writeFileSync(path.join(dir, 'vfs', `${pci}.json`), text);
    const loaded = new VfRecords(dir).load(pci);
    expect(loaded.damaged).toBeUndefined();
    expect(loaded.rec?.original.netdev?.name).toBe((JSON.parse(text) as { original: { netdev: { name: string } } }).original.netdev.name);
    expectThisReleaseFixture('vf-record', encodeVfRecord(loaded.rec!));
  });

  it('attachment-index 1 of 0.1.0 (the bare PCI address): read, and written the same way', async () => {
    const pci = read('attachment-index/1-0.1.0');
    fs.mkdirSync(path.join(dir, 'attachments'));
    fs.writeFileSync(path.join(dir, 'attachments', 'ctr-a0_net1'), pci);
    const records = new VfRecords(dir);
    expect(records.attachmentPci('ctr-a0', 'net1')).toBe(pci);
    const rec = vfRecordSchema.parse(JSON.parse(read('vf-record/1-0.1.0.json')));
    await records.write({ ...rec, pciAddr: pci, containerId: 'ctr-a0', ifName: 'net1' });
    expectThisReleaseFixture('attachment-index', fs.readFileSync(path.join(dir, 'attachments', 'ctr-a0_net1'), 'utf8'));
  });

  it('ipam-pending 1 of 0.1.0 (no version field, CNI_PATH stored): read as version 1, CNI_PATH dropped, written with v', async () => {
    const p = readJsonFile(path.join(FIX, 'ipam-pending/1-0.1.0.json'), ipamPendingSchema, IPAM_PENDING_MAX_BYTES, 'queued IPAM release', 'ipam-pending')!;
    expect(p.v).toBeUndefined();
    expect(p.env.CNI_PATH).toBeDefined();
    expect(pendingEnv(p)).not.toHaveProperty('CNI_PATH');
    const file = await queueIpamRelease(dir, inv, p.type, Buffer.from(p.stdin), pendingEnv(p));
    expectThisReleaseFixture('ipam-pending', fs.readFileSync(file, 'utf8'));
  });

  it('claim-release 1 of 0.1.0: read by the agent schema, written back with writtenBy', () => {
    const n = readJsonFile(path.join(FIX, 'claim-release/1-0.1.0.json'), claimReleaseSchema, CLAIM_RELEASE_MAX_BYTES, 'claim release note', 'claim-release')!;
    expect(n.containerId).toBe('ctr-old');
    const file = writeReleaseNote(dir, n);
    expectThisReleaseFixture('claim-release', fs.readFileSync(file, 'utf8'));
  });

  it('the agent releases a 0.1.0 note found in its queue, and one this release wrote', async () => {
    fs.copyFileSync(path.join(FIX, 'claim-release/1-0.1.0.json'), path.join(dir, 'old.json'));
    fs.copyFileSync(path.join(FIX, 'claim-release/1-0.2.0.json'), path.join(dir, 'new.json'));
    const released: { containerId: string; uid?: string }[] = [];
    await new ReleaseQueue({ dir, log: captureLogger(), release: async (r) => void released.push(r) }).scan();
    expect(released.map((r) => r.uid)).toEqual(['6a1f0c1e-0000-4000-8000-000000000001', '6a1f0c1e-0000-4000-8000-000000000001']);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('the shape of each format as this release writes it is the one recorded for its version (no change without a bump)', () => {
    const schemas: Partial<Record<FormatId, z.ZodMiniType>> = { 'vf-record': vfRecordSchema, 'ipam-pending': ipamPendingSchema, 'claim-release': claimReleaseSchema };
    const golden = (fs.existsSync(GOLDEN) ? JSON.parse(fs.readFileSync(GOLDEN, 'utf8')) : {}) as Record<string, unknown>;
    const now: Record<string, unknown> = {};
    for (const f of fileFormats) {
      const schema = schemas[f.id];
      now[`${f.id}@${f.writes}`] = schema ? structure(z.toJSONSchema(schema, { unrepresentable: 'any' })) : 'PCI address, no newline';
    }
    if (UPDATE) {
      for (const [k, v] of Object.entries(now)) golden[k] ??= v;
      fs.writeFileSync(GOLDEN, `${JSON.stringify(golden, null, 2)}\n`);
    }
    for (const [k, v] of Object.entries(now)) {
      expect(v, `format ${k} changed shape without a version bump: bump its version in src/state/formats.ts (docs/upgrade.md says what that costs a rollback)`).toEqual(golden[k]);
    }
  });
});

/** A JSON schema's structure: types, keys, required, constants; not the value checks (patterns, bounds). */
function structure(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(structure);
  if (typeof s !== 'object' || s === null) return s;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    if (['$schema', 'pattern', 'format', 'maxLength', 'minLength', 'maximum', 'minimum', 'maxItems', 'minItems', 'exclusiveMinimum', 'exclusiveMaximum'].includes(k)) continue;
    out[k] = structure(v);
  }
  return out;
}

describe('a newer format is refused, naming the file, the format and the release, and left untouched', () => {
  const future = (name: string) => path.join(FIX, 'future', name);
  const placeRecord = (name: string) => {
    const pci = read('vf-record/1-0.1.0.json').match(/"pciAddr":"([^"]+)"/)![1]!;
    const file = path.join(dir, 'vfs', `${pci}.json`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.copyFileSync(future(name), file);
    return { pci, file, bytes: fs.readFileSync(file) };
  };

  it.each([
    ['vf-record.2-0.3.0.json', 'written by release 0.3.0'],
    ['vf-record.2-unnamed.json', 'written by a release newer than 0.2.0 (the file does not say which)'],
    ['vf-record.2-torn.json', 'written by release 0.3.0'],
  ])('VF record %s: load throws (not salvaged), GC lists it, the file is byte-identical', (name, by) => {
    const { pci, file, bytes } = placeRecord(name);
    const records = new VfRecords(dir);
    let err: unknown;
    try {
      records.load(pci);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FormatTooNewError);
    expect((err as Error).message).toBe(`VF record ${file} is format "vf-record" version 2, ${by}; release ${THIS_RELEASE} reads only version 1: left untouched`);
    expect((err as FormatTooNewError).code).toBe(108);
    expect(records.all().errors).toEqual([(err as Error).message]);
    expect(fs.readFileSync(file)).toEqual(bytes);
    expect(fs.readdirSync(path.dirname(file))).toEqual([path.basename(file)]);
  });

  it('queued IPAM release of a newer format: not run, not set aside, not replaced by a new entry for the same attachment', async () => {
    const pending = path.join(dir, 'ipam-pending', 'ctr-d_net1.json');
    fs.mkdirSync(path.dirname(pending), { recursive: true });
    fs.copyFileSync(future('ipam-pending.2-0.3.0.json'), pending);
    const bytes = fs.readFileSync(pending);
    const invalid = await retryPendingReleases(dir, inv, captureLogger());
    expect(invalid).toEqual([
      `queued IPAM release ${pending} is format "ipam-pending" version 2, written by release 0.3.0; release ${THIS_RELEASE} reads only version 1: left untouched`,
    ]);
    await expect(queueIpamRelease(dir, inv, 'static', Buffer.from('{"ipam":{"type":"static"}}'), { CNI_CONTAINERID: 'ctr-d', CNI_IFNAME: 'net1' })).rejects.toThrow(FormatTooNewError);
    expect(fs.readFileSync(pending)).toEqual(bytes);
    expect(fs.readdirSync(dir).sort()).toEqual(['ipam-pending']);
  });

  it('claim release note of a newer format: the agent leaves it in the queue and logs it once', async () => {
    const note = path.join(dir, 'abc.json');
    fs.copyFileSync(future('claim-release.2-0.3.0.json'), note);
    const released: unknown[] = [];
    logged.length = 0;
    const q = new ReleaseQueue({ dir, log: captureLogger(), release: async (r) => void released.push(r) });
    await q.scan();
    await q.scan();
    expect(released).toEqual([]);
    expect(fs.readdirSync(dir)).toEqual(['abc.json']);
    const errors = logged.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level === 50 && l.msg.includes('format "claim-release" version 2'));
    expect(errors).toHaveLength(1);
    expect(errors[0]?.msg).toContain('written by release 0.3.0');
  });
});

describe('hostile version fields', () => {
  const tooNew = (raw: unknown) => {
    try {
      formatVersion('vf-record', '/x.json', raw);
      return null;
    } catch (e) {
      return e as FormatTooNewError;
    }
  };

  it('only an integer above the known versions is "newer"; anything else is left to the schema (damaged, not refused)', () => {
    for (const v of [0, -1, 1.5, '2', 1e300, Number.NaN, null, [], {}]) expect(tooNew({ version: v }), String(v)).toBeNull();
    for (const raw of [null, 'text', 2, [{ version: 2 }]]) expect(tooNew(raw), JSON.stringify(raw)).toBeNull();
    expect(tooNew({ version: 2 })).toBeInstanceOf(FormatTooNewError);
    expect(tooNew({ version: Number.MAX_SAFE_INTEGER })?.version).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('a writtenBy that is not a short release name is never echoed into the message or the log', () => {
    for (const by of ['0.3.0\n{"level":60,"msg":"forged"}', 'x'.repeat(100_000), '../../etc', 42, { v: 1 }]) {
      const e = tooNew({ version: 2, writtenBy: by });
      expect(e?.message).toContain('written by a release newer than 0.2.0 (the file does not say which)');
      expect(e?.message.length).toBeLessThan(400);
    }
    expect(tooNew({ version: 2, writtenBy: '1.0.0-rc.1+build.5' })?.message).toContain('written by release 1.0.0-rc.1+build.5');
  });

  it('a required version field that is missing is not "newer" (the schema reports it); one that may be absent is version 1', () => {
    expect(formatVersion('vf-record', '/x', { pciAddr: 'a' })).toBeUndefined();
    expect(formatVersion('ipam-pending', '/x', { type: 'static' })).toBe(1);
    expect(formatVersion('attachment-index', '/x', '0000:81:10.0')).toBe(1);
  });
});

describe('the formats table', () => {
  it('docs/upgrade.md lists every format with the versions this release reads and writes', () => {
    const doc = fs.readFileSync(path.join(REPO, 'docs/upgrade.md'), 'utf8');
    for (const f of FORMATS) {
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${f.id}\` |`));
      expect(row, `docs/upgrade.md has no row for ${f.id}`).toBeDefined();
      const cells = row!.split('|').map((c) => c.trim());
      expect(cells[4], `${f.id}: reads`).toBe(f.reads.join(', '));
      expect(cells[5], `${f.id}: writes`).toBe(String(f.writes));
    }
  });

  it('this release is package.json\'s version, or the one after the last shipped release until the release bumps it', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
    expect([THIS_RELEASE, SHIPPED_RELEASES.at(-1)]).toContain(pkg.version);
    expect(SHIPPED_RELEASES).not.toContain(THIS_RELEASE);
  });
});
