/**
 * The state-dir readers on real files: temp files of any writer, empty and truncated JSON, and a VF
 * record in an older format (test/fixtures/state-leftovers/).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listEntries, removeFile, removeFileDurable, replaceFile, setAside, STALE_TEMP_MS, syncVisible, writeFileDurable } from '../../src/state/atomic-file';
import { readJsonState } from '../../src/state/bounded-file';
import { VfRecords } from '../../src/state/vf-records';

const FIX = path.join(__dirname, '../fixtures/state-leftovers');
let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leftovers-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const original = {
  pfNetdev: 'ens1f0',
  vfIndex: 2,
  userspace: false,
  vf: { mac: '00:00:00:00:00:00', vlan: 0, qos: 0, vlanProto: '802.1Q', spoofchk: true, trust: false, linkState: 'auto', minTxRate: 0, maxTxRate: 0 },
  netdev: { name: 'ens1f0v2', mac: '6a:1b:2c:3d:4e:5f', mtu: 1500, up: false, altnames: [] },
};
const record = {
  version: 1,
  pciAddr: '0000:3b:10.2',
  networkName: 'n',
  containerId: 'c1',
  ifName: 'net1',
  netns: '/var/run/netns/p',
  phase: 'ready',
  createdAt: '2026-01-01T00:00:00.000Z',
  original,
  cniVersion: '1.0.0',
};

describe('listEntries', () => {
  it('never returns temp or set-aside files, removes only stale temp files', () => {
    const partial = fs.readFileSync(path.join(FIX, 'temp-file.partial'));
    for (const n of ['a.json', 'a.json.tmp-12', 'b.json.tmp-13', '.q1.tmp', '.q2.tmp', 'c.json.bad-1700000000000', 'd.txt']) fs.writeFileSync(path.join(dir, n), partial);
    const old = new Date(Date.now() - STALE_TEMP_MS - 5_000);
    fs.utimesSync(path.join(dir, 'b.json.tmp-13'), old, old);
    fs.utimesSync(path.join(dir, '.q2.tmp'), old, old); // the release queue's writer names its temp files so
    expect(listEntries(dir, '.json')).toEqual(['a.json']);
    expect(fs.readdirSync(dir).sort()).toEqual(['.q1.tmp', 'a.json', 'a.json.tmp-12', 'c.json.bad-1700000000000', 'd.txt']);
    expect(listEntries(path.join(dir, 'missing'))).toEqual([]);
  });
});

describe('readJsonState and setAside', () => {
  it('tells missing, empty, truncated and good files apart', async () => {
    const f = (n: string) => path.join(dir, n);
    fs.copyFileSync(path.join(FIX, 'ipam-pending.empty.json'), f('e.json'));
    fs.copyFileSync(path.join(FIX, 'ipam-pending.truncated.json'), f('t.json'));
    await writeFileDurable(f('g.json'), '{"a":1}', { dir: true });
    expect(readJsonState(f('none.json'), 1024)).toEqual({ state: 'missing' });
    expect(readJsonState(f('e.json'), 1024)).toMatchObject({ state: 'damaged', reason: 'the file is empty' });
    expect(readJsonState(f('t.json'), 1024)).toMatchObject({ state: 'damaged', reason: expect.stringMatching(/^not valid JSON/) });
    expect(readJsonState(f('g.json'), 1024)).toEqual({ state: 'ok', value: { a: 1 } });
    const aside = setAside(f('t.json'), 42);
    expect(aside).toBe(`${f('t.json')}.bad-42`);
    expect(fs.readFileSync(aside as string, 'utf8')).toBe(fs.readFileSync(path.join(FIX, 'ipam-pending.truncated.json'), 'utf8'));
  });
});

describe('VfRecords.load on damaged records', () => {
  const recs = () => new VfRecords(dir);
  const write = (text: string) => {
    fs.mkdirSync(path.join(dir, 'vfs'), { recursive: true });
    fs.writeFileSync(recs().vfFile(record.pciAddr), text);
  };

  it('a good record loads as is', () => {
    write(JSON.stringify(record));
    expect(recs().load(record.pciAddr)).toEqual({ rec: record });
  });

  it('an older format keeps its original state, holder and IPAM; identity from the file name', () => {
    write(
      fs
        .readFileSync(path.join(FIX, 'vf-record.format0.json'), 'utf8')
        .replace('@PCI@', 'ignored')
        .replace('@NETWORK@', 'n')
        .replace('@CID@', 'c1')
        .replace('@IFNAME@', 'net1')
        .replace('@NETNS@', '/var/run/netns/p')
        .replace('@ORIGINAL@', JSON.stringify(original))
        .replace('@IPAM@', '{"type":"host-local"}'),
    );
    const { rec, damaged } = recs().load(record.pciAddr);
    expect(rec).toBeUndefined();
    expect(damaged?.reason).toMatch(/field "version"/);
    expect(damaged?.salvaged).toMatchObject({ pciAddr: record.pciAddr, containerId: 'c1', ifName: 'net1', netns: '/var/run/netns/p', original, ipam: { type: 'host-local' } });
  });

  it('truncated: the holder fields it still has, no original', () => {
    const text = JSON.stringify(record);
    write(text.slice(0, text.indexOf('"original"') + 30));
    const { damaged } = recs().load(record.pciAddr);
    expect(damaged?.salvaged).toBeNull();
    expect(damaged?.holder).toEqual({ containerId: 'c1', ifName: 'net1', netns: '/var/run/netns/p' });
    expect(() => recs().read(record.pciAddr)).toThrow(/is unusable: not valid JSON/);
  });

  it('an original that does not validate is never used', () => {
    write(JSON.stringify({ ...record, version: 0, original: { ...original, netdev: { name: 'x' } } }));
    expect(recs().load(record.pciAddr).damaged?.salvaged).toBeNull();
  });

  it('all() returns good and damaged records and skips temp files', () => {
    write('');
    fs.writeFileSync(path.join(dir, 'vfs', '0000:3b:10.3.json'), JSON.stringify({ ...record, pciAddr: '0000:3b:10.3' }));
    fs.writeFileSync(path.join(dir, 'vfs', '0000:3b:10.4.json.tmp-77'), '{"vers');
    const all = recs().all();
    expect(all.records.map((r) => r.pciAddr)).toEqual(['0000:3b:10.3']);
    expect(all.damaged.map((d) => [d.pciAddr, d.reason])).toEqual([[record.pciAddr, 'the file is empty']]);
  });
});

describe('replaceFile and removeFile (the writers without every fsync)', () => {
  it('replace whole contents, synced or not, and leave no temp file', async () => {
    const f = path.join(dir, 'sub', 'r.json');
    await writeFileDurable(f, '{"a":1}', { dir: false });
    expect(fs.readFileSync(f, 'utf8')).toBe('{"a":1}');
    replaceFile(f, '{"a":22}');
    expect(fs.readFileSync(f, 'utf8')).toBe('{"a":22}');
    await syncVisible(f);
    expect(fs.readdirSync(path.dirname(f))).toEqual(['r.json']);
  });

  it('never write through a symlink planted under the temp name; the target keeps its content', async () => {
    const f = path.join(dir, 'r.json');
    const victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'keep');
    await writeFileDurable(f, 'old', { dir: true });
    fs.symlinkSync(victim, `${f}.tmp-${process.pid}`);
    expect(() => replaceFile(f, 'new')).toThrow(/ELOOP/);
    await expect(writeFileDurable(f, 'new', { dir: true })).rejects.toThrow(/ELOOP/);
    expect(fs.readFileSync(victim, 'utf8')).toBe('keep');
    expect(fs.readFileSync(f, 'utf8')).toBe('old');
  });

  it('removeFile says whether it removed, and clears a killed writer\'s temp files beside the file', async () => {
    const f = path.join(dir, 'q.json');
    await writeFileDurable(f, '{}', { dir: true });
    fs.writeFileSync(`${f}.tmp-99999`, '{"half');
    expect(removeFile(f)).toBe(true);
    expect(fs.readdirSync(dir)).toEqual([]);
    expect(removeFile(f)).toBe(false);
    expect(() => removeFileDurable(f)).not.toThrow();
  });

  it('an attachment index a power loss left empty, torn or pointing elsewhere reads as no VF, never as a wrong path', async () => {
    const records = new VfRecords(dir);
    await records.write({ ...record, phase: 'adding' } as never);
    expect(records.attachmentPci('c1', 'net1')).toBe('0000:3b:10.2');
    const idx = path.join(dir, 'attachments', 'c1_net1');
    for (const text of ['', '0000:3b:1', '0000:3b:10.2\u0000\u0000', '../../etc/passwd', 'x'.repeat(10_000)]) {
      fs.writeFileSync(idx, text);
      expect(records.attachmentPci('c1', 'net1')).toBeUndefined();
    }
    // The record it pointed to is untouched: GC and the next ADD on the VF restore from it.
    expect(records.read('0000:3b:10.2')?.containerId).toBe('c1');
  });

  it('update replaces the record whole; remove drops record and index', async () => {
    const records = new VfRecords(dir);
    await records.write({ ...record, phase: 'adding' } as never);
    await records.update({ ...record, phase: 'ready' } as never);
    expect(records.read('0000:3b:10.2')?.phase).toBe('ready');
    const removed = records.remove(record);
    expect(records.read('0000:3b:10.2')).toBeUndefined(); // gone at once, durable when it settles
    await removed;
    expect(records.attachmentPci('c1', 'net1')).toBeUndefined();
    expect(fs.readdirSync(path.join(dir, 'vfs'))).toEqual([]);
    expect(fs.readdirSync(path.join(dir, 'attachments'))).toEqual([]);
  });
});
