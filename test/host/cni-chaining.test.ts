/**
 * Chaining the way libcni runs a conflist: each plugin gets the previous plugin's result as
 * prevResult, CHECK gets the cached final result, DEL runs in reverse order. Here with Debian's
 * reference plugins before us (host-device) and after us (tuning).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CNI_PATH, requireBinary, runCniSync } from '../fixtures/cni';
import { ip, linkNames, linkSnapshot, makeNetns, uniqueTag, type NetnsHandle } from '../fixtures/host-net';
import { createEmulatedNic, type EmulatedNic } from '../fixtures/sysfs-tree';

const tag = uniqueTag('h');
let nic: EmulatedNic;
let tmp: string;
let ns: NetnsHandle;
const other = `${tag}x`;

beforeAll(() => {
  requireBinary();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cni-chain-'));
  nic = createEmulatedNic({ tag, root: path.join(tmp, 'sys'), pfs: 1, vfsPerPf: 1 });
  ns = makeNetns(`${tag}-pod`);
  ip('link', 'add', other, 'type', 'veth', 'peer', 'name', `${other}p`);
});
afterAll(() => {
  ns?.destroy();
  try {
    ip('link', 'del', other);
  } catch {
    /* moved or gone with the netns */
  }
  nic?.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function runPlugin(type: string, command: string, conf: object, ifName: string): { code: number | null; out: Record<string, unknown> | null; raw: string } {
  const bin = type === 'sriov-underlay' ? undefined : path.join('/usr/lib/cni', type);
  if (!bin) {
    const r = runCniSync(command, conf, { containerId: 'chain', netns: ns.path, ifName });
    return { code: r.code, out: r.json, raw: r.stdout };
  }
  const r = spawnSync(bin, [], {
    input: JSON.stringify(conf),
    encoding: 'utf8',
    env: { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: 'chain', CNI_NETNS: ns.path, CNI_IFNAME: ifName, CNI_PATH },
  });
  let out: Record<string, unknown> | null = null;
  try {
    out = JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    /* DEL prints nothing */
  }
  return { code: r.status, out, raw: r.stdout + r.stderr };
}

const base = { cniVersion: '1.0.0', name: 'chain' };
const ours = () => ({
  type: 'sriov-underlay',
  deviceID: nic.vfAddrs[0],
  sysfsRoot: nic.root,
  stateDir: path.join(tmp, 'state'),
  logFile: path.join(tmp, 'cni.log'),
  mtu: 1400,
  ipam: { type: 'static', addresses: [{ address: '10.88.0.2/24' }] },
});

it('a conflist [sriov-underlay, tuning]: ADD passes our result on, CHECK and reverse DEL work', () => {
  const vfBefore = linkSnapshot(`${tag}p0v0`);
  // libcni gives the whole list one CNI_IFNAME.
  const chain = [ours(), { type: 'tuning', sysctl: { 'net.ipv4.conf.net1.arp_ignore': '1' } }];
  let prev: Record<string, unknown> | undefined;
  for (const conf of chain) {
    const r = runPlugin(conf.type, 'ADD', { ...base, ...conf, ...(prev ? { prevResult: prev } : {}) }, 'net1');
    expect(r.code, `${conf.type} ADD: ${r.raw}`).toBe(0);
    prev = r.out as Record<string, unknown>;
  }
  expect(prev).toMatchObject({ interfaces: [{ name: 'net1' }], ips: [{ address: '10.88.0.2/24', interface: 0 }] });
  expect(ip('netns', 'exec', ns.name, 'cat', '/proc/sys/net/ipv4/conf/net1/arp_ignore').trim()).toBe('1');
  for (const conf of chain) {
    const r = runPlugin(conf.type, 'CHECK', { ...base, ...conf, prevResult: prev }, 'net1');
    expect(r.code, `${conf.type} CHECK: ${r.raw}`).toBe(0);
  }
  for (const conf of [...chain].reverse()) {
    const r = runPlugin(conf.type, 'DEL', { ...base, ...conf, prevResult: prev }, 'net1');
    expect(r.code, `${conf.type} DEL: ${r.raw}`).toBe(0);
  }
  expect(linkSnapshot(`${tag}p0v0`)).toEqual(vfBefore);
  expect(linkNames(ns.name)).toEqual(['lo']);
});

it('after another plugin (host-device): its interfaces and IPs are kept and ours appended', () => {
  const vfBefore = linkSnapshot(`${tag}p0v0`);
  const first = { type: 'host-device', device: other, ipam: { type: 'static', addresses: [{ address: '192.168.77.2/24' }] } };
  const a = runPlugin('host-device', 'ADD', { ...base, ...first }, 'eth0');
  expect(a.code, a.raw).toBe(0);
  const b = runPlugin('sriov-underlay', 'ADD', { ...base, ...ours(), prevResult: a.out }, 'net1');
  expect(b.code, b.raw).toBe(0);
  expect(b.out).toMatchObject({
    interfaces: [{ name: 'eth0' }, { name: 'net1' }],
    ips: [
      { address: '192.168.77.2/24', interface: 0 },
      { address: '10.88.0.2/24', interface: 1 },
    ],
  });
  expect(linkNames(ns.name).sort()).toEqual(['eth0', 'lo', 'net1']);
  // Our CHECK looks only at our own interface's addresses in the merged result.
  const c = runPlugin('sriov-underlay', 'CHECK', { ...base, ...ours(), prevResult: b.out }, 'net1');
  expect(c.code, c.raw).toBe(0);
  expect(runPlugin('sriov-underlay', 'DEL', { ...base, ...ours(), prevResult: b.out }, 'net1').code).toBe(0);
  expect(runPlugin('host-device', 'DEL', { ...base, ...first, prevResult: a.out }, 'eth0').code).toBe(0);
  expect(linkSnapshot(`${tag}p0v0`)).toEqual(vfBefore);
  expect(linkNames(ns.name)).toEqual(['lo']);
});
