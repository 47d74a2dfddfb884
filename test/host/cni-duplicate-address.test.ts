/**
 * Duplicate detection on the wire, with the real plugin: a rogue netns plugged into the emulated
 * NIC's fabric bridge already holds the address. ADD must fail naming the rogue's MAC, and the VF
 * must be back on the host exactly as before (name, MAC, MTU, state). Without a rogue the same ADD
 * succeeds; with detection off it succeeds despite the rogue.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCniSocket } from '../../node/agent/cni-socket';
import { silentLogger } from '../../src/log';
import type { ReportRequest } from '../../src/schemas/agent-protocol';
import { requireBinary, runCni } from '../fixtures/cni';
import { ip, ipJson, linkSnapshot, makeNetns, uniqueTag, type NetnsHandle } from '../fixtures/host-net';
import { createEmulatedNic, type EmulatedNic } from '../fixtures/sysfs-tree';

let nic: EmulatedNic;
let tmp: string;
let pod: NetnsHandle;
let rogue: NetnsHandle;
const tag = uniqueTag('ip');
const ROGUE_MAC = '02:00:00:00:dd:01';

beforeAll(() => {
  requireBinary();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cni-dup-'));
  nic = createEmulatedNic({ tag, root: path.join(tmp, 'sys'), pfs: 1, vfsPerPf: 1 });
  pod = makeNetns(`${tag}-pod`);
  rogue = makeNetns(`${tag}-rog`);
  // The rogue: a host on the same L2 segment holding 10.77.0.5 and fd00:77::5.
  ip('link', 'add', `${tag}r`, 'type', 'veth', 'peer', 'name', 'rogue', 'netns', rogue.name);
  ip('link', 'set', `${tag}r`, 'netns', nic.fabricNs);
  ip('-n', nic.fabricNs, 'link', 'set', `${tag}r`, 'master', 'br0', 'up');
  ip('-n', rogue.name, 'link', 'set', 'rogue', 'address', ROGUE_MAC, 'up');
  ip('-n', rogue.name, 'addr', 'add', '10.77.0.5/24', 'dev', 'rogue');
  ip('-n', rogue.name, 'addr', 'add', 'fd00:77::5/64', 'dev', 'rogue', 'nodad');
});
afterAll(() => {
  pod?.destroy();
  rogue?.destroy();
  nic?.destroy();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const conf = (address: string, extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.0.0',
  name: 'dupnet',
  type: 'sriov-underlay',
  deviceID: nic.vfAddrs[0],
  sysfsRoot: nic.root,
  stateDir: path.join(tmp, 'state'),
  logFile: path.join(tmp, 'cni.log'),
  mac: '02:00:00:00:aa:01',
  ipam: { type: 'static', addresses: [{ address }] },
  ...extra,
});

const vfName = () => `${tag}p0v0`;

async function expectRejected(address: string, how: RegExp): Promise<void> {
  const before = linkSnapshot(vfName());
  expect(before).not.toBeNull();
  const env = { containerId: `dup-${address.replace(/[^0-9a-f]/g, '')}`, netns: pod.path, ifName: 'net1' };
  const add = await runCni('ADD', conf(address), env);
  expect(add.code).not.toBe(0);
  const err = JSON.parse(add.stdout) as { code: number; msg: string };
  expect(err.code, err.msg).toBe(105);
  expect(err.msg, err.msg).toContain(`duplicate address: ${address.split('/')[0]} is already in use on the network by MAC ${ROGUE_MAC}`);
  expect(err.msg).toMatch(how);
  // Rolled back: the VF is home, exactly as before, and the pod netns has no trace of it.
  expect(linkSnapshot(vfName())).toEqual(before);
  expect(ipJson<{ ifname: string }[]>('-n', pod.name, 'link', 'show').map((l) => l.ifname)).toEqual(['lo']);
  expect(fs.existsSync(path.join(tmp, 'state', 'vfs', `${nic.vfAddrs[0]}.json`))).toBe(false);
  // The runtime's DEL after a failed ADD is harmless.
  expect((await runCni('DEL', conf(address), env)).code).toBe(0);
  expect(linkSnapshot(vfName())).toEqual(before);
}

describe('CNI ADD: duplicate address detection', () => {
  it('IPv4: the ARP probe finds the rogue; ADD fails naming its MAC and rolls the VF back', async () => {
    await expectRejected('10.77.0.5/24', /RFC 5227 ARP probe/);
  });

  it('IPv6: the kernel DAD fails; ADD fails naming the MAC from the rogue NA and rolls back', async () => {
    await expectRejected('fd00:77::5/64', /IPv6 duplicate address detection/);
  });

  it('a free address passes both checks (the IPv6 one is no longer tentative when ADD returns)', async () => {
    const env = { containerId: 'dup-free', netns: pod.path, ifName: 'net1' };
    const c = conf('10.77.0.6/24');
    c.ipam = { type: 'static', addresses: [{ address: '10.77.0.6/24' }, { address: 'fd00:77::6/64' }] };
    const add = await runCni('ADD', c, env);
    expect(add.code, add.stdout + add.stderr).toBe(0);
    const addrs = ipJson<{ addr_info: { local: string; tentative?: boolean; dadfailed?: boolean }[] }[]>('-n', pod.name, 'addr', 'show', 'dev', 'net1')[0]!.addr_info;
    expect(addrs.find((a) => a.local === '10.77.0.6')).toBeDefined();
    const v6 = addrs.find((a) => a.local === 'fd00:77::6');
    expect(v6).toBeDefined();
    expect(v6!.tentative ?? false).toBe(false);
    expect((await runCni('DEL', c, env)).code).toBe(0);
  });

  it('duplicateDetection: false in the netconf skips the probe (the conflict goes unnoticed)', async () => {
    const env = { containerId: 'dup-off', netns: pod.path, ifName: 'net1' };
    const c = conf('10.77.0.5/24', { duplicateDetection: false });
    const add = await runCni('ADD', c, env);
    expect(add.code, add.stdout + add.stderr).toBe(0);
    expect((await runCni('DEL', c, env)).code).toBe(0);
  });

  it('with an agent socket, the refused ADD is reported to the agent, which records the Event', async () => {
    const reports: ReportRequest[] = [];
    const sock = path.join(tmp, 'agent.sock');
    // The agent's real socket server; this pod has no registration, so the netconf's IPAM applies.
    const server = await startCniSocket(sock, async () => ({ v: 1, ok: true, registered: false }), silentLogger(), (r) => reports.push(r));
    try {
      const env = { containerId: 'dup-report', netns: pod.path, ifName: 'net1', args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web;K8S_POD_UID=uid-web' };
      const add = await runCni('ADD', conf('10.77.0.5/24', { agentSocket: sock }), env);
      expect(add.stdout).toContain('duplicate address');
      expect(reports).toEqual([
        expect.objectContaining({ op: 'report', namespace: 'demo', name: 'web', uid: 'uid-web', reason: 'DuplicateAddress', message: expect.stringContaining(`by MAC ${ROGUE_MAC}`) }),
      ]);
      expect((await runCni('DEL', conf('10.77.0.5/24', { agentSocket: sock }), env)).code).toBe(0);
    } finally {
      await server.close();
    }
  });
});
