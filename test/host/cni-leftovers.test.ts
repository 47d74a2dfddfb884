/**
 * What a crash, a power loss, an older release, a full or read-only disk, or a pod with NET_ADMIN
 * leaves behind must never block DEL or GC, and must never make the plugin forget a VF's original
 * state. The real plugin binary on veth-backed emulated VFs; leftovers come from
 * test/fixtures/state-leftovers/ or are cut from the record a real ADD wrote.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary, runCni, runCniSync } from '../fixtures/cni';
import { ip, linkNames, linkSnapshot, makeNetns, uniqueTag, type NetnsHandle } from '../fixtures/host-net';
import { createEmulatedNic, rebindVf, type EmulatedNic } from '../fixtures/sysfs-tree';

const FIX = path.join(__dirname, '../fixtures/state-leftovers');
const fixture = (name: string) => fs.readFileSync(path.join(FIX, name), 'utf8');

let nic: EmulatedNic;
let tmp: string;
const tag = uniqueTag('l');
const netnses: NetnsHandle[] = [];
const mounts: string[] = [];
let seq = 0;

function pod(name: string): NetnsHandle {
  const ns = makeNetns(`${tag}-${name}`);
  netnses.push(ns);
  return ns;
}

const vfName = (i: number) => `${tag}p0v${i}`;

/** One state dir (and log) per test, so a leftover of one test never meets another. */
function setup(vf: number, extra: Record<string, unknown> = {}) {
  const dir = path.join(tmp, `t${seq++}`);
  fs.mkdirSync(dir, { recursive: true });
  const stateDir = path.join(dir, 'state');
  const logFile = path.join(dir, 'cni.log');
  const conf = {
    cniVersion: '1.0.0',
    name: 'leftnet',
    type: 'sriov-underlay',
    deviceID: nic.vfAddrs[vf],
    sysfsRoot: nic.root,
    stateDir,
    logFile,
    ipam: { type: 'static', addresses: [{ address: `10.78.0.${10 + vf}/24` }] },
    ...extra,
  };
  const recordFile = path.join(stateDir, 'vfs', `${nic.vfAddrs[vf]}.json`);
  return { dir, stateDir, logFile, conf, recordFile, log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '') };
}

function tempFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((n) => /\.tmp-\d+$/.test(n));
}

beforeAll(() => {
  requireBinary();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cni-left-'));
  nic = createEmulatedNic({ tag, root: path.join(tmp, 'sys'), pfs: 1, vfsPerPf: 16 });
});

afterEach(() => {
  while (mounts.length) execFileSync('umount', ['-l', mounts.pop() as string]);
  while (netnses.length) netnses.pop()?.destroy();
});

afterAll(() => {
  nic?.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('crash leftovers never block DEL or GC', () => {
  it('temp files of every writer (fresh and stale) are skipped, stale ones cleaned, and DEL and GC succeed', async () => {
    const ns = pod('tmp');
    const t = setup(0);
    const before = linkSnapshot(vfName(0));
    const env = { containerId: 'c-tmp', netns: ns.path, ifName: 'net1' };
    expect((await runCni('ADD', t.conf, env)).code).toBe(0);
    const partial = fixture('temp-file.partial');
    const leftovers = [
      `vfs/${nic.vfAddrs[0]}.json.tmp-424242`,
      `vfs/${nic.vfAddrs[5]}.json.tmp-424243`,
      'attachments/c-tmp_net1.tmp-424244',
      'ipam-pending/c-old_net1.json.tmp-424245',
      'ipam-pending/c-new_net1.json.tmp-424246',
      'claim-releases/c-old-net1.json.tmp-424247',
    ];
    for (const l of leftovers) {
      fs.mkdirSync(path.dirname(path.join(t.stateDir, l)), { recursive: true });
      fs.writeFileSync(path.join(t.stateDir, l), partial);
    }
    // Two of them are an hour old (a writer killed long ago), the others could be a live writer's.
    const old = new Date(Date.now() - 3_600_000);
    for (const l of [leftovers[1], leftovers[3]]) fs.utimesSync(path.join(t.stateDir, l as string), old, old);

    const del = await runCni('DEL', t.conf, env);
    expect(del.code, del.stdout).toBe(0);
    expect(linkSnapshot(vfName(0))).toEqual(before);
    expect(linkNames(ns.name)).toEqual(['lo']);
    const gc = runCniSync('GC', { ...t.conf, cniVersion: '1.1.0', ipam: undefined, deviceID: undefined, 'cni.dev/valid-attachments': [] });
    expect(gc.code, gc.stdout).toBe(0);
    // The stale ones in the dirs DEL and GC read are gone; a fresh one might be a live writer's.
    expect(fs.existsSync(path.join(t.stateDir, leftovers[1] as string))).toBe(false);
    expect(fs.existsSync(path.join(t.stateDir, leftovers[3] as string))).toBe(false);
    expect(fs.existsSync(path.join(t.stateDir, leftovers[4] as string))).toBe(true);
  });

  it.each([
    ['truncated', 'ipam-pending.truncated.json'],
    ['empty', 'ipam-pending.empty.json'],
  ])('a %s queued IPAM release is set aside, DEL and GC still succeed', async (_kind, file) => {
    const ns = pod(`q${_kind.slice(0, 3)}`);
    const t = setup(1);
    const before = linkSnapshot(vfName(1));
    const env = { containerId: 'c-queue', netns: ns.path, ifName: 'net1' };
    expect((await runCni('ADD', t.conf, env)).code).toBe(0);
    fs.mkdirSync(path.join(t.stateDir, 'ipam-pending'), { recursive: true });
    fs.writeFileSync(path.join(t.stateDir, 'ipam-pending', 'c-crashed_net1.json'), fixture(file));
    const del = await runCni('DEL', t.conf, env);
    expect(del.code, del.stdout).toBe(0);
    expect(linkSnapshot(vfName(1))).toEqual(before);
    expect(fs.readdirSync(path.join(t.stateDir, 'ipam-pending'))).toEqual([]);
    // Kept for the operator, outside the dir release 0.1.0 reads whole after a rollback.
    const aside = fs.readdirSync(path.join(t.stateDir, 'ipam-pending.set-aside'));
    expect(aside.filter((n) => n.startsWith('c-crashed_net1.json.bad-'))).toHaveLength(1);
    expect(t.log()).toMatch(/set aside as ipam-pending\.set-aside\/c-crashed_net1\.json\.bad-\d+, not run/);
    const gc = runCniSync('GC', { ...t.conf, cniVersion: '1.1.0', ipam: undefined, deviceID: undefined });
    expect(gc.code, gc.stdout).toBe(0);
  });

  it('a VF record in an older format: DEL restores the VF exactly from the original state it holds', async () => {
    const ns = pod('fmt0');
    const t = setup(2, { mtu: 1300, mac: '02:00:00:00:02:02' });
    const before = linkSnapshot(vfName(2));
    const env = { containerId: 'c-fmt0', netns: ns.path, ifName: 'net1' };
    expect((await runCni('ADD', t.conf, env)).code).toBe(0);
    const rec = JSON.parse(fs.readFileSync(t.recordFile, 'utf8')) as Record<string, unknown>;
    const old = fixture('vf-record.format0.json')
      .replace('@PCI@', String(rec.pciAddr))
      .replace('@NETWORK@', String(rec.networkName))
      .replace('@CID@', String(rec.containerId))
      .replace('@IFNAME@', String(rec.ifName))
      .replace('@NETNS@', String(rec.netns))
      .replace('@ORIGINAL@', JSON.stringify(rec.original))
      .replace('@IPAM@', JSON.stringify(rec.ipam));
    fs.writeFileSync(t.recordFile, old);
    const del = await runCni('DEL', t.conf, env);
    expect(del.code, del.stdout).toBe(0);
    expect(linkSnapshot(vfName(2))).toEqual(before);
    expect(linkNames(ns.name)).toEqual(['lo']);
    expect(fs.existsSync(t.recordFile)).toBe(false);
    expect(fs.readdirSync(path.dirname(t.recordFile)).filter((n) => n.includes('.bad-'))).toHaveLength(1);
    expect(t.log()).toMatch(/restoring the original state it still holds/);
  });

  it.each([
    ['empty', (s: string) => s.slice(0, 0)],
    ['cut after the holder', (s: string) => s.slice(0, s.indexOf('"original"') + 20)],
    ['cut near the end', (s: string) => s.slice(0, s.length - 3)],
  ])('a VF record %s: DEL succeeds, sets it aside, says the original is lost, and the next ADD works', async (_kind, cut) => {
    const vf = 3;
    const ns = pod(`cut${seq}`);
    const t = setup(vf);
    const env = { containerId: 'c-cut', netns: ns.path, ifName: 'net1' };
    expect((await runCni('ADD', t.conf, env)).code).toBe(0);
    fs.writeFileSync(t.recordFile, cut(fs.readFileSync(t.recordFile, 'utf8')));
    const del = await runCni('DEL', t.conf, env);
    expect(del.code, del.stdout).toBe(0);
    expect(t.log()).toMatch(/original state lost/);
    expect(fs.existsSync(t.recordFile)).toBe(false);
    expect(fs.readdirSync(path.dirname(t.recordFile)).filter((n) => n.includes('.bad-'))).toHaveLength(1);
    // What the kernel does for a physical VF when the pod netns dies: it comes home.
    ip('-n', ns.name, 'link', 'set', 'net1', 'down');
    ip('-n', ns.name, 'link', 'set', 'net1', 'netns', '1', 'name', vfName(vf));
    const ns2 = pod(`cut${seq}b`);
    const env2 = { containerId: 'c-cut2', netns: ns2.path, ifName: 'net1' };
    const again = await runCni('ADD', t.conf, env2);
    expect(again.code, again.stdout).toBe(0);
    expect((await runCni('DEL', t.conf, env2)).code).toBe(0);
  });

  it('a damaged record that still names another attachment is left alone by a stale DEL', async () => {
    const ns = pod('owner');
    const t = setup(4);
    const env = { containerId: 'c-owner', netns: ns.path, ifName: 'net1' };
    expect((await runCni('ADD', t.conf, env)).code).toBe(0);
    const text = fs.readFileSync(t.recordFile, 'utf8');
    fs.writeFileSync(t.recordFile, text.slice(0, text.indexOf('"original"') + 5));
    const stale = await runCni('DEL', t.conf, { containerId: 'c-someone-else', netns: ns.path, ifName: 'net1' });
    expect(stale.code, stale.stdout).toBe(0);
    expect(linkNames(ns.name)).toContain('net1');
    expect(fs.readFileSync(t.recordFile, 'utf8')).toBe(text.slice(0, text.indexOf('"original"') + 5));
  });
});

describe('the pod renamed, re-addressed or moved its VF (NET_ADMIN)', () => {
  it('renamed and new MAC inside the pod: DEL finds it by identity and restores it exactly', async () => {
    const ns = pod('ren');
    const t = setup(6, { mac: '02:00:00:00:06:06', mtu: 1400 });
    const before = linkSnapshot(vfName(6));
    const env = { containerId: 'c-ren', netns: ns.path, ifName: 'net1' };
    expect((await runCni('ADD', t.conf, env)).code).toBe(0);
    ip('-n', ns.name, 'link', 'set', 'net1', 'down');
    ip('-n', ns.name, 'link', 'set', 'net1', 'name', 'eth9', 'address', '02:00:00:00:99:99');
    // ... and plants a decoy under the old name, which DEL must not take for the VF.
    ip('-n', ns.name, 'link', 'add', 'net1', 'type', 'veth', 'peer', 'name', 'decoy');
    const del = await runCni('DEL', t.conf, env);
    expect(del.code, del.stdout).toBe(0);
    expect(linkSnapshot(vfName(6))).toEqual(before);
    expect(linkNames(ns.name).sort()).toEqual(['decoy', 'lo', 'net1']);
    expect(fs.existsSync(t.recordFile)).toBe(false);
  });

  it('moved into another netns: DEL fails and keeps the record; once it is back, DEL restores it', async () => {
    const ns = pod('mv');
    const other = pod('mvo');
    const t = setup(7, { mac: '02:00:00:00:07:07' });
    const before = linkSnapshot(vfName(7));
    const env = { containerId: 'c-mv', netns: ns.path, ifName: 'net1' };
    expect((await runCni('ADD', t.conf, env)).code).toBe(0);
    ip('-n', ns.name, 'link', 'set', 'net1', 'netns', other.name);
    const del = await runCni('DEL', t.conf, env);
    expect(del.code).toBe(1);
    expect(del.json?.msg).toMatch(/not found .* record \(original state\) is kept/);
    expect(fs.existsSync(t.recordFile)).toBe(true);
    // The pod moves it back under yet another name: the retried DEL finds it by ifindex.
    ip('-n', other.name, 'link', 'set', 'net1', 'netns', ns.name, 'name', 'eth5');
    const retry = await runCni('DEL', t.conf, env);
    expect(retry.code, retry.stdout).toBe(0);
    expect(linkSnapshot(vfName(7))).toEqual(before);
  });

  it('VF lost when the pod netns died: DEL lets the pod go, keeps the record, and the next ADD restores from it first', async () => {
    const ns = pod('lost');
    const other = pod('losto');
    const t = setup(8, { mac: '02:00:00:00:08:08', mtu: 1280 });
    const before = linkSnapshot(vfName(8));
    const env = { containerId: 'c-lost', netns: ns.path, ifName: 'net1' };
    expect((await runCni('ADD', t.conf, env)).code).toBe(0);
    ip('-n', ns.name, 'link', 'set', 'net1', 'down');
    ip('-n', ns.name, 'link', 'set', 'net1', 'name', 'eth9', 'address', '02:00:00:00:88:88', 'netns', other.name);
    ns.destroy();
    const del = await runCni('DEL', t.conf, env);
    expect(del.code, del.stdout).toBe(0);
    expect(t.log()).toMatch(/record kept/);
    expect(fs.existsSync(t.recordFile)).toBe(true);
    // The other netns dies too: the kernel brings the VF home under the pod's name and MAC, and
    // sysfs names it there (the emulated tree is told, as the kernel's would be).
    ip('-n', other.name, 'link', 'set', 'eth9', 'netns', '1', 'name', `${tag}dev8`);
    rebindVf(nic.root, nic.vfAddrs[8] as string, 'igbvf', `${tag}dev8`);
    other.destroy();
    const ns2 = pod('lost2');
    const env2 = { containerId: 'c-lost2', netns: ns2.path, ifName: 'net1' };
    const add = await runCni('ADD', { ...t.conf, mac: undefined, mtu: undefined }, env2);
    expect(add.code, add.stdout).toBe(0);
    expect((await runCni('DEL', t.conf, env2)).code).toBe(0);
    rebindVf(nic.root, nic.vfAddrs[8] as string, 'igbvf', vfName(8));
    // Restored to the state before the first ADD, not to what the pod left.
    expect(linkSnapshot(vfName(8))).toEqual(before);
  });
});

describe('full and read-only state dir', () => {
  function tmpfs(dir: string, size: string) {
    fs.mkdirSync(dir, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir]);
    mounts.push(dir);
  }
  function fill(dir: string) {
    try {
      fs.writeFileSync(path.join(dir, 'filler'), Buffer.alloc(4 << 20));
    } catch (e) {
      expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
    }
  }
  function readOnly(dir: string) {
    execFileSync('mount', ['--bind', dir, dir]);
    mounts.push(dir);
    execFileSync('mount', ['-o', 'remount,bind,ro', dir]);
  }

  it('ENOSPC: ADD fails cleanly with the VF untouched; DEL of an earlier ADD still restores the VF', async () => {
    const t = setup(9, { mac: '02:00:00:00:09:09' });
    tmpfs(t.stateDir, '256k');
    const before = [9, 10].map((i) => linkSnapshot(vfName(i)));
    const ns = pod('full');
    const env = { containerId: 'c-full', netns: ns.path, ifName: 'net1' };
    expect((await runCni('ADD', t.conf, env)).code).toBe(0);
    fill(t.stateDir);
    const ns2 = pod('full2');
    const add = await runCni('ADD', { ...t.conf, deviceID: nic.vfAddrs[10] }, { containerId: 'c-full2', netns: ns2.path, ifName: 'net1' });
    expect(add.code).toBe(1);
    expect(add.json?.msg).toMatch(/ENOSPC/);
    expect(linkSnapshot(vfName(10))).toEqual(before[1]);
    expect(linkNames(ns2.name)).toEqual(['lo']);
    expect(tempFiles(t.stateDir)).toEqual([]);
    const del = await runCni('DEL', t.conf, env);
    expect(del.code, del.stdout).toBe(0);
    expect(linkSnapshot(vfName(9))).toEqual(before[0]);
    expect(t.log()).toMatch(/could not queue the IPAM release; releasing it now/);
  });

  it('read-only: ADD fails cleanly with the VF untouched; DEL still restores the VF and says what it could not persist', async () => {
    const t = setup(11, { mac: '02:00:00:00:11:11' });
    const before = [11, 12].map((i) => linkSnapshot(vfName(i)));
    const ns = pod('ro');
    const env = { containerId: 'c-ro', netns: ns.path, ifName: 'net1' };
    expect((await runCni('ADD', t.conf, env)).code).toBe(0);
    readOnly(t.stateDir);
    const ns2 = pod('ro2');
    const add = await runCni('ADD', { ...t.conf, deviceID: nic.vfAddrs[12] }, { containerId: 'c-ro2', netns: ns2.path, ifName: 'net1' });
    expect(add.code).toBe(1);
    expect(add.json?.msg).toMatch(/read-only|EROFS/);
    expect(linkSnapshot(vfName(12))).toEqual(before[1]);
    expect(linkNames(ns2.name)).toEqual(['lo']);
    const del = await runCni('DEL', t.conf, env);
    expect(del.code, del.stdout).toBe(0);
    expect(linkSnapshot(vfName(11))).toEqual(before[0]);
    expect(linkNames(ns.name)).toEqual(['lo']);
    expect(t.log()).toMatch(/could not be removed from the state dir/);
    // Writable again: the leftover record is harmless, a second DEL finishes the job.
    execFileSync('umount', [mounts.pop() as string]);
    expect((await runCni('DEL', t.conf, env)).code).toBe(0);
    expect(fs.existsSync(t.recordFile)).toBe(false);
    expect(linkSnapshot(vfName(11))).toEqual(before[0]);
  });
});
