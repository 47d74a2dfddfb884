/**
 * The CNI binary on real netns and veth-backed emulated VFs. PF-side VF calls cannot succeed on
 * veth (no VF table); they are proven on a real driver in the VM tier. Everything else runs the
 * production path end to end.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCni, runCniSync } from '../fixtures/cni';
import { cniBed } from '../fixtures/cni-bed';
import { captureArp, ip, ipJson, linkNames, linkSnapshot } from '../fixtures/host-net';

const bed = cniBed({ tagPrefix: 'c', vfs: 24, network: 'hostnet' });
const { pod, vfName, netconf, tag } = bed;

// Debian's reference plugins (static IPAM) speak up to CNI 1.0.0; 1.1.0 tests run without IPAM.
const staticIpam = (addr: string) => ({
  type: 'static',
  addresses: [{ address: addr, gateway: '10.77.0.1' }],
  routes: [{ dst: '10.99.0.0/16' }],
});

beforeAll(() => {
  // Altnames make restore honest: DEL must bring them back too (sriov-cni #445).
  ip('link', 'property', 'add', 'dev', vfName(0), 'altname', `${tag}alt0`);
});

describe('ADD / CHECK / DEL on an emulated VF', () => {
  it('moves the VF in under the pod name, configures it, and DEL restores it exactly', async () => {
    const p = pod('a');
    const before = linkSnapshot(vfName(0));
    expect(before?.altnames).toEqual([`${tag}alt0`]);
    const conf = netconf(0, { mtu: 1400, mac: '02:11:22:33:44:55', ipam: staticIpam('10.77.0.10/24') });
    const env = { containerId: 'c-a', netns: p.path, ifName: 'net1', args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=db;K8S_POD_NAME=mysql-0;K8S_POD_UID=u1' };
    const add = await runCni('ADD', conf, env);
    expect(add.stderr).toBe('');
    expect(add.code, add.stdout).toBe(0);
    expect(add.json).toMatchObject({
      cniVersion: '1.0.0',
      interfaces: [{ name: 'net1', mac: '02:11:22:33:44:55', sandbox: p.path }],
      ips: [{ address: '10.77.0.10/24', gateway: '10.77.0.1', interface: 0 }],
    });
    expect(linkNames()).not.toContain(vfName(0));
    const inPod = linkSnapshot('net1', p.name);
    expect(inPod).toMatchObject({ address: '02:11:22:33:44:55', mtu: 1400, up: true });
    const addrs = ipJson<Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>>('-n', p.name, 'addr', 'show', 'dev', 'net1');
    expect(addrs[0]?.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toContain('10.77.0.10/24');
    expect(ip('-n', p.name, 'route', 'show', '10.99.0.0/16')).toContain('via 10.77.0.1 dev net1');
    expect(fs.readFileSync(path.join(bed.tmp, 'cni.log'), 'utf8')).toContain('"cmd":"ADD"');

    const check = await runCni('CHECK', { ...conf, prevResult: add.json }, env);
    expect(check.code, check.stdout).toBe(0);

    const del = await runCni('DEL', conf, env);
    expect(del.code, del.stdout).toBe(0);
    expect(del.stdout).toBe('');
    expect(linkSnapshot(vfName(0))).toEqual(before);
    expect(linkNames(p.name)).toEqual(['lo']);
    expect(fs.readdirSync(path.join(bed.stateDir, 'vfs'))).toEqual([]);

    const again = await runCni('DEL', conf, env);
    expect(again.code, again.stdout).toBe(0);
    expect(linkSnapshot(vfName(0))).toEqual(before);
  });

  it('announces the address with a gratuitous ARP seen on the fabric', async () => {
    const p = pod('garp');
    const conf = netconf(15, { mac: '02:00:00:00:15:15', ipam: staticIpam('10.77.0.15/24') });
    const env = { containerId: 'c-garp', netns: p.path, ifName: 'net1' };
    const seen = await captureArp(bed.nic.fabricNs, bed.nic.fabricPeer(bed.nic.vfAddrs[15] as string), async () => {
      expect((await runCni('ADD', conf, env)).code).toBe(0);
    });
    expect(seen).toContainEqual(expect.objectContaining({ senderMac: '02:00:00:00:15:15', senderIp: '10.77.0.15', targetIp: '10.77.0.15' }));
    expect((await runCni('DEL', conf, env)).code).toBe(0);
  });

  it('CHECK names what drifted', async () => {
    const p = pod('chk');
    const conf = netconf(1, { mtu: 1450, ipam: staticIpam('10.77.0.11/24') });
    const env = { containerId: 'c-chk', netns: p.path, ifName: 'net1' };
    const add = await runCni('ADD', conf, env);
    expect(add.code, add.stdout).toBe(0);
    ip('-n', p.name, 'link', 'set', 'net1', 'mtu', '1300');
    const check = await runCni('CHECK', { ...conf, prevResult: add.json }, env);
    expect(check.code).toBe(1);
    expect(check.json?.msg).toMatch(/net1 MTU is 1300, expected 1450/);
    ip('-n', p.name, 'link', 'set', 'net1', 'mtu', '1450');
    ip('-n', p.name, 'addr', 'del', '10.77.0.11/24', 'dev', 'net1');
    const check2 = await runCni('CHECK', { ...conf, prevResult: add.json }, env);
    expect(check2.json?.msg).toMatch(/lacks address 10\.77\.0\.11\/24/);
    expect((await runCni('DEL', conf, env)).code).toBe(0);
  });

  it('answers CNI 1.1.0 with the interface MTU and the VF PCI address', async () => {
    const p = pod('v11');
    const conf = netconf(14, { cniVersion: '1.1.0', mtu: 1500 });
    const env = { containerId: 'c-v11', netns: p.path, ifName: 'net1' };
    const add = await runCni('ADD', conf, env);
    expect(add.code, add.stdout).toBe(0);
    expect(add.json).toMatchObject({ cniVersion: '1.1.0', interfaces: [{ name: 'net1', mtu: 1500, sandbox: p.path, pciID: bed.nic.vfAddrs[14] }], ips: [] });
    expect((await runCni('DEL', conf, env)).code).toBe(0);
  });

  it('answers in the result version asked for', async () => {
    for (const [i, v] of [[2, '0.3.1'], [3, '0.4.0'], [4, '1.0.0']] as const) {
      const p = pod(`v${i}`);
      const conf = { ...netconf(i, { ipam: staticIpam(`10.77.0.${20 + i}/24`) }), cniVersion: v };
      const env = { containerId: `c-v${i}`, netns: p.path, ifName: 'net1' };
      const add = await runCni('ADD', conf, env);
      expect(add.code, add.stdout).toBe(0);
      expect(add.json?.cniVersion).toBe(v);
      const ips = add.json?.ips as Array<Record<string, unknown>>;
      if (v === '1.0.0') expect(ips[0]).not.toHaveProperty('version');
      else expect(ips[0]).toMatchObject({ version: '4' });
      expect((add.json?.interfaces as Array<Record<string, unknown>>)[0]).not.toHaveProperty('pciID');
      expect((await runCni('DEL', conf, env)).code).toBe(0);
    }
  });
});

describe('refusals and rollback', () => {
  it('a PF-side setting on a PF with no VF table fails clearly and changes nothing', async () => {
    const p = pod('novft');
    const before = linkSnapshot(vfName(5));
    const add = await runCni('ADD', netconf(5, { vlan: 100, ipam: staticIpam('10.77.0.30/24') }), { containerId: 'c-nv', netns: p.path, ifName: 'net1' });
    expect(add.code).toBe(1);
    expect(add.json).toMatchObject({ code: 102 });
    expect(add.json?.msg).toMatch(/reports no VF table.*vlan/);
    expect(linkSnapshot(vfName(5))).toEqual(before);
    expect(linkNames(p.name)).toEqual(['lo']);
    expect(fs.existsSync(path.join(bed.stateDir, 'vfs', `${bed.nic.vfAddrs[5]}.json`))).toBe(false);
  });

  it('a failing step after the move rolls the VF back home', async () => {
    const p = pod('rb');
    const before = linkSnapshot(vfName(6));
    // A route via a gateway that is not on-link fails inside the pod netns, after the move and
    // after MAC, MTU and addresses were applied.
    const ipam = { type: 'static', addresses: [{ address: '10.77.0.31/24' }], routes: [{ dst: '10.99.0.0/16', gw: '192.0.2.1' }] };
    const add = await runCni('ADD', netconf(6, { mtu: 1300, mac: '02:00:00:00:06:06', ipam }), { containerId: 'c-rb', netns: p.path, ifName: 'net1' });
    expect(add.code).toBe(1);
    expect(add.json?.msg).toMatch(/add route 10\.99\.0\.0\/16 via 192\.0\.2\.1/);
    expect(linkSnapshot(vfName(6))).toEqual(before);
    expect(linkNames(p.name)).toEqual(['lo']);
  });

  it('refuses a VF held by another live container, and a stale DEL never touches it (#219)', async () => {
    const a = pod('own1');
    const b = pod('own2');
    const conf = netconf(7, { ipam: staticIpam('10.77.0.40/24') });
    expect((await runCni('ADD', conf, { containerId: 'c-old', netns: a.path, ifName: 'net1' })).code).toBe(0);
    const busy = await runCni('ADD', conf, { containerId: 'c-new', netns: b.path, ifName: 'net1' });
    expect(busy.code).toBe(1);
    expect(busy.json?.msg).toMatch(/in use by container c-old/);
    expect((await runCni('DEL', conf, { containerId: 'c-old', netns: a.path, ifName: 'net1' })).code).toBe(0);
    expect((await runCni('ADD', conf, { containerId: 'c-new', netns: b.path, ifName: 'net1' })).code).toBe(0);
    const serving = linkSnapshot('net1', b.name);
    // The old container's DEL arrives late, after the VF went to the new pod.
    const late = await runCni('DEL', conf, { containerId: 'c-old', netns: a.path, ifName: 'net1' });
    expect(late.code).toBe(0);
    expect(linkSnapshot('net1', b.name)).toEqual(serving);
    expect((await runCni('DEL', conf, { containerId: 'c-new', netns: b.path, ifName: 'net1' })).code).toBe(0);
  });

  it('takes over a VF whose holder netns died without DEL, restoring it first', async () => {
    const a = pod('dead');
    const b = pod('heir');
    const before = linkSnapshot(vfName(8));
    const conf = netconf(8, { mtu: 1300, ipam: staticIpam('10.77.0.41/24') });
    expect((await runCni('ADD', conf, { containerId: 'c-dead', netns: a.path, ifName: 'net1' })).code).toBe(0);
    // What the kernel does for a physical netdev when its netns dies: it comes home, renamed if
    // its name is taken. veth would be destroyed instead, so the test moves it out the same way.
    ip('-n', a.name, 'link', 'set', 'net1', 'netns', '1', 'name', `${tag}dev8`);
    a.destroy();
    const add = await runCni('ADD', conf, { containerId: 'c-heir', netns: b.path, ifName: 'net1' });
    expect(add.code, add.stdout).toBe(0);
    expect((await runCni('DEL', conf, { containerId: 'c-heir', netns: b.path, ifName: 'net1' })).code).toBe(0);
    expect(linkSnapshot(vfName(8))).toEqual(before);
  });

  it('DEL after the netns was deleted (VF already home under another name) restores everything', async () => {
    const a = pod('gone');
    const before = linkSnapshot(vfName(9));
    const conf = netconf(9, { mtu: 1280, mac: '02:00:00:00:09:09', ipam: staticIpam('10.77.0.42/24') });
    const env = { containerId: 'c-gone', netns: a.path, ifName: 'net1' };
    expect((await runCni('ADD', conf, env)).code).toBe(0);
    ip('-n', a.name, 'link', 'set', 'net1', 'netns', '1', 'name', `${tag}dev9`);
    a.destroy();
    const del = await runCni('DEL', conf, env);
    expect(del.code, del.stdout).toBe(0);
    expect(linkSnapshot(vfName(9))).toEqual(before);
    expect(linkNames()).not.toContain(`${tag}dev9`);
  });

  it('DEL with no state and no netns succeeds', async () => {
    const del = await runCni('DEL', netconf(10), { containerId: 'never-added', ifName: 'net1' });
    expect(del.code, del.stdout).toBe(0);
  });
});

describe('concurrency', () => {
  it('16 parallel ADDs on 16 VFs all succeed, and all DELs restore', async () => {
    const vfs = Array.from({ length: 16 }, (_, i) => 8 + i);
    const befores = vfs.map((i) => linkSnapshot(vfName(i)));
    const pods = vfs.map((i) => pod(`par${i}`));
    const adds = await Promise.all(
      vfs.map((i, k) => runCni('ADD', netconf(i, { ipam: staticIpam(`10.77.0.${100 + i}/24`) }), { containerId: `c-par${i}`, netns: pods[k]!.path, ifName: 'net1' })),
    );
    for (const a of adds) expect(a.code, a.stdout).toBe(0);
    const dels = await Promise.all(
      vfs.map((i, k) => runCni('DEL', netconf(i, { ipam: staticIpam(`10.77.0.${100 + i}/24`) }), { containerId: `c-par${i}`, netns: pods[k]!.path, ifName: 'net1' })),
    );
    for (const d of dels) expect(d.code, d.stdout).toBe(0);
    vfs.forEach((i, k) => expect(linkSnapshot(vfName(i))).toEqual(befores[k]));
  });

  it('2 concurrent ADDs on one VF: exactly one wins, the other fails cleanly', async () => {
    const a = pod('race1');
    const b = pod('race2');
    const conf = netconf(11, { ipam: staticIpam('10.77.0.50/24') });
    const [r1, r2] = await Promise.all([
      runCni('ADD', conf, { containerId: 'c-r1', netns: a.path, ifName: 'net1' }),
      runCni('ADD', conf, { containerId: 'c-r2', netns: b.path, ifName: 'net1' }),
    ]);
    const codes = [r1.code, r2.code].sort();
    expect(codes).toEqual([0, 1]);
    const loser = r1.code === 1 ? r1 : r2;
    expect(loser.json?.msg).toMatch(/in use by container/);
    const winner = r1.code === 0 ? { id: 'c-r1', ns: a } : { id: 'c-r2', ns: b };
    expect(linkNames(winner.ns.name)).toContain('net1');
    expect((await runCni('DEL', conf, { containerId: winner.id, netns: winner.ns.path, ifName: 'net1' })).code).toBe(0);
  });
});

describe('GC, STATUS, VERSION', () => {
  it('GC restores every VF of this network whose attachment is not valid', async () => {
    const keep = pod('gck');
    const drop = pod('gcd');
    const before = linkSnapshot(vfName(12));
    const c1 = netconf(12, { cniVersion: '1.1.0' });
    const c2 = netconf(13, { cniVersion: '1.1.0' });
    expect((await runCni('ADD', c1, { containerId: 'c-gcd', netns: drop.path, ifName: 'net1' })).code).toBe(0);
    expect((await runCni('ADD', c2, { containerId: 'c-gck', netns: keep.path, ifName: 'net1' })).code).toBe(0);
    const gc = runCniSync('GC', { ...c1, deviceID: undefined, 'cni.dev/valid-attachments': [{ containerID: 'c-gck', ifname: 'net1' }] });
    expect(gc.code, gc.stdout).toBe(0);
    expect(linkSnapshot(vfName(12))).toEqual(before);
    expect(linkNames(keep.name)).toContain('net1');
    expect((await runCni('DEL', c2, { containerId: 'c-gck', netns: keep.path, ifName: 'net1' })).code).toBe(0);
  });

  it('STATUS reports ready, and not ready when the state dir cannot be written', () => {
    expect(runCniSync('STATUS', netconf(0, { cniVersion: '1.1.0' })).code).toBe(0);
    const blocker = path.join(bed.tmp, 'file-not-dir');
    fs.writeFileSync(blocker, 'x');
    const bad = runCniSync('STATUS', netconf(0, { cniVersion: '1.1.0', stateDir: path.join(blocker, 'state') }));
    expect(bad.code).toBe(1);
    expect(bad.json).toMatchObject({ code: 50 });
  });

  it('VERSION lists the supported versions; old versions are refused for new verbs', () => {
    const v = runCniSync('VERSION', { cniVersion: '1.1.0' });
    expect(v.json).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    const gc = runCniSync('GC', { ...netconf(0), cniVersion: '1.0.0' });
    expect(gc.json).toMatchObject({ code: 1 });
    const old = runCniSync('ADD', { ...netconf(0), cniVersion: '0.2.0' }, { containerId: 'x', netns: '/proc/self/ns/net', ifName: 'net1' });
    expect(old.json).toMatchObject({ code: 1 });
  });
});
