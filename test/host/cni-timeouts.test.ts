/**
 * A hung IPAM plugin or a VF held by another call must not hang the CNI, hold a VF's lock, or stop
 * GC. The IPAM plugin here is a real executable that never answers (a shell script in its own
 * CNI_PATH dir, next to Debian's plugins), and the lock is held by util-linux flock(1).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { CNI_PATH, requireBinary, runCni } from '../fixtures/cni';
import { linkNames, linkSnapshot, makeNetns, uniqueTag, type NetnsHandle } from '../fixtures/host-net';
import { createEmulatedNic, type EmulatedNic } from '../fixtures/sysfs-tree';

let nic: EmulatedNic;
let tmp: string;
let pluginDir: string;
const tag = uniqueTag('t');
const netnses: NetnsHandle[] = [];
const holders: ChildProcess[] = [];

function pod(name: string): NetnsHandle {
  const ns = makeNetns(`${tag}-${name}`);
  netnses.push(ns);
  return ns;
}
const vfName = (i: number) => `${tag}p0v${i}`;
/** Running, not a zombie waiting for its reaper. */
const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

beforeAll(() => {
  requireBinary();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cni-to-'));
  pluginDir = path.join(tmp, 'plugins');
  fs.mkdirSync(pluginDir);
  // Answers ADD through Debian's static plugin, hangs on DEL (and leaves a grandchild behind).
  fs.writeFileSync(
    path.join(pluginDir, 'hang-on-del'),
    `#!/bin/sh\nif [ "$CNI_COMMAND" = DEL ]; then echo $$ > "${tmp}/hung.pid"; sleep 600 & echo $! > "${tmp}/grandchild.pid"; wait; fi\nexec /usr/lib/cni/static\n`,
    { mode: 0o755 },
  );
  nic = createEmulatedNic({ tag, root: path.join(tmp, 'sys'), pfs: 1, vfsPerPf: 6 });
});
const killGroup = (c: ChildProcess) => {
  try {
    if (c.pid) process.kill(-c.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
};
afterEach(() => {
  while (holders.length) killGroup(holders.pop() as ChildProcess);
  while (netnses.length) netnses.pop()?.destroy();
});
afterAll(() => {
  // Only left running when the plugin under test failed to kill them.
  for (const f of ['hung.pid', 'grandchild.pid']) {
    const pid = Number(fs.existsSync(path.join(tmp, f)) ? fs.readFileSync(path.join(tmp, f), 'utf8') : 0);
    if (pid > 1 && alive(pid)) process.kill(pid, 'SIGKILL');
  }
  nic?.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function conf(vf: number, extra: Record<string, unknown> = {}) {
  return {
    cniVersion: '1.0.0',
    name: 'tonet',
    type: 'sriov-underlay',
    deviceID: nic.vfAddrs[vf],
    sysfsRoot: nic.root,
    stateDir: path.join(tmp, 'state'),
    logFile: path.join(tmp, 'cni.log'),
    ...extra,
  };
}
const hangIpam = { type: 'hang-on-del', addresses: [{ address: '10.79.0.2/24' }] };
const ipamEnv = () => ({ CNI_PATH: `${pluginDir}:${CNI_PATH}`, SRIOV_UNDERLAY_IPAM_TIMEOUT_MS: '8000' });

it('a hung IPAM DEL is killed (with what it started) at the timeout; DEL restores the VF, queues the release, and never holds the VF lock for it', async () => {
  const a = pod('a');
  const b = pod('b');
  const before = linkSnapshot(vfName(0));
  const envA = { containerId: 'c-hang', netns: a.path, ifName: 'net1', extra: ipamEnv() };
  expect((await runCni('ADD', conf(0, { ipam: hangIpam }), envA)).code).toBe(0);
  let delDone = false;
  const del = runCni('DEL', conf(0, { ipam: hangIpam }), envA, 60_000).finally(() => (delDone = true));
  // While DEL waits on the hung plugin, the VF is already free for the next pod.
  while (!fs.existsSync(path.join(tmp, 'hung.pid'))) await new Promise((r) => setTimeout(r, 20));
  const next = await runCni('ADD', conf(0, { ipam: { type: 'static', addresses: [{ address: '10.79.0.3/24' }] } }), { containerId: 'c-next', netns: b.path, ifName: 'net1' });
  expect(next.code, next.stdout).toBe(0);
  // ... taken by the next pod while that DEL was still waiting on the hung plugin.
  expect(delDone).toBe(false);
  expect(alive(Number(fs.readFileSync(path.join(tmp, 'hung.pid'), 'utf8')))).toBe(true);
  const d = await del;
  expect(d.signal).toBeNull();
  expect(d.code, d.stdout).toBe(0);
  expect(linkNames(a.name)).toEqual(['lo']);
  const hung = Number(fs.readFileSync(path.join(tmp, 'hung.pid'), 'utf8'));
  const grandchild = Number(fs.readFileSync(path.join(tmp, 'grandchild.pid'), 'utf8'));
  expect(alive(hung)).toBe(false);
  expect(alive(grandchild)).toBe(false);
  expect(fs.readdirSync(path.join(tmp, 'state', 'ipam-pending'))).toEqual(['c-hang_net1.json']);
  expect(fs.readFileSync(path.join(tmp, 'cni.log'), 'utf8')).toMatch(/did not answer within 8000 ms; killed/);
  expect((await runCni('DEL', conf(0, { ipam: { type: 'static', addresses: [{ address: '10.79.0.3/24' }] } }), { containerId: 'c-next', netns: b.path, ifName: 'net1' })).code).toBe(0);
  expect(linkSnapshot(vfName(0))).toEqual(before);
  fs.rmSync(path.join(tmp, 'state', 'ipam-pending'), { recursive: true });
}, 120_000);

it('GC goes on past a VF whose lock it cannot take, reports it, and the next GC collects it', async () => {
  const p1 = pod('g1');
  const p2 = pod('g2');
  const befores = [1, 2].map((i) => linkSnapshot(vfName(i)));
  const c = (vf: number) => conf(vf, { cniVersion: '1.1.0', name: 'tonet-gc' });
  expect((await runCni('ADD', c(1), { containerId: 'c-g1', netns: p1.path, ifName: 'net1' })).code).toBe(0);
  expect((await runCni('ADD', c(2), { containerId: 'c-g2', netns: p2.path, ifName: 'net1' })).code).toBe(0);
  // Another CNI call holds the first VF (its own process group: flock and its child go together) (the lower PCI address, so GC meets it first).
  const lockFile = path.join(tmp, 'state', 'locks', `${nic.vfAddrs[1]}.lock`);
  const holder = spawn('flock', [lockFile, 'sleep', '600'], { stdio: 'ignore', detached: true });
  holders.push(holder);
  await new Promise((r) => setTimeout(r, 300));
  const sweep = { ...c(1), deviceID: undefined, 'cni.dev/valid-attachments': [] };
  const gc = await runCni('GC', sweep, {}, 60_000);
  expect(gc.code).toBe(1);
  expect(gc.json?.msg).toMatch(new RegExp(`${nic.vfAddrs[1]}: VF ${nic.vfAddrs[1]} is locked`));
  expect(linkSnapshot(vfName(2))).toEqual(befores[1]);
  expect(linkNames(p1.name)).toContain('net1');
  killGroup(holder);
  await new Promise((r) => holder.once('exit', r));
  const again = await runCni('GC', sweep);
  expect(again.code, again.stdout).toBe(0);
  expect(linkSnapshot(vfName(1))).toEqual(befores[0]);
}, 120_000);
