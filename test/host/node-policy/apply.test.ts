/**
 * The node policy applied to a node whose sysfs is generated with a kernel behind it (FakeKernel)
 * and whose PF netdevs are real veths: VF counts, holds while VFs are in use, MTU and link,
 * idempotence across restarts, externallyManaged, driver binding, and bad input.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VfRecords } from '../../../src/state/vf-records';
import type { NodePolicyStatus } from '../../../node/policy/status';
import { loadVfio } from '../../fixtures/sysfs-kernel';
import { PF2_PCI, PF_PCI, PolicyNode, vfPci } from './harness';

let node: PolicyNode;
beforeEach(() => {
  node = new PolicyNode();
});
afterEach(async () => {
  await node.cleanup();
});

const cond = (s: NodePolicyStatus, type: string, pci = PF_PCI) => s.pfs.find((p) => p.pciAddr === pci)?.conditions.find((c) => c.type === type);

describe('node policy: VF counts', () => {
  it('0 -> 4 -> 6 VFs, through 0 as the kernel requires; a second pass writes nothing', async () => {
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 4 }] });
    let s = await node.daemon().applyOnce();
    expect(node.numVfs()).toBe(4);
    expect(node.virtfns()).toEqual(['virtfn0', 'virtfn1', 'virtfn2', 'virtfn3']);
    expect(node.kernel.writes).toEqual([`bus/pci/devices/${PF_PCI}/sriov_numvfs <- 4`]);
    expect(cond(s, 'Applied')).toMatchObject({ status: 'True', reason: 'Applied', message: 'sriov_numvfs 0 -> 4' });

    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 6 }] });
    const d = node.daemon();
    s = await d.applyOnce();
    expect(node.numVfs()).toBe(6);
    expect(node.kernel.writes.slice(1)).toEqual([`bus/pci/devices/${PF_PCI}/sriov_numvfs <- 0`, `bus/pci/devices/${PF_PCI}/sriov_numvfs <- 6`]);
    expect(s.pfs[0]!.actual).toMatchObject({ numVfs: 6, totalVfs: 8 });

    // Idempotent: the same daemon again, and a restarted one, write nothing.
    await d.applyOnce();
    s = await node.daemon().applyOnce();
    expect(node.kernel.writes).toHaveLength(3);
    expect(cond(s, 'Applied')).toMatchObject({ status: 'True', reason: 'AlreadyMatching' });
  });

  it('6 -> 2 is held while a VF is allocated (kubelet checkpoint), and applied once it is freed', async () => {
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 6 }] });
    const d = node.daemon();
    await d.applyOnce();
    node.allocate([vfPci(0x91, 1)]);
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 2 }] });
    const writes = node.kernel.writes.length;
    let s = await d.applyOnce();
    expect(node.numVfs()).toBe(6);
    expect(node.kernel.writes).toHaveLength(writes);
    expect(cond(s, 'Blocked')).toMatchObject({ status: 'True', message: `sriov_numvfs 6 -> 2 held: VF ${vfPci(0x91, 1)} in use by pod uid uid-1234`, pods: ['pod uid uid-1234'] });
    expect(cond(s, 'Applied')).toMatchObject({ status: 'False', reason: 'Held' });

    node.allocate([]); // kubelet dropped the pod
    s = await d.applyOnce();
    expect(node.numVfs()).toBe(2);
    expect(cond(s, 'Blocked')).toBeUndefined();
  });

  it('with the device plugin in-process: fenced before the write, looked at again, unfenced after', async () => {
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 2 }] });
    const d = node.daemon();
    await d.applyOnce();
    const calls: string[] = [];
    d.fence = async (pf, on) => {
      calls.push(`${pf} ${on} after ${node.kernel.writes.length} writes`);
    };
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 3 }] });
    await d.applyOnce();
    expect(calls).toEqual([`${node.pfName} true after 1 writes`, `${node.pfName} false after 3 writes`]);
    expect(node.numVfs()).toBe(3);

    // kubelet allocates a VF in the moment before the fence holds: the second look catches it.
    calls.length = 0;
    d.fence = async (pf, on) => {
      calls.push(`${pf} ${on}`);
      if (on) node.allocate([vfPci(0x91, 2)]);
    };
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 1 }] });
    let s = await d.applyOnce();
    expect(calls).toEqual([`${node.pfName} true`, `${node.pfName} false`]);
    expect(node.numVfs()).toBe(3);
    expect(cond(s, 'Blocked')?.message).toBe(`sriov_numvfs 3 -> 1 held: VF ${vfPci(0x91, 2)} in use by pod uid uid-1234`);

    // An Allocate the device plugin answered that kubelet has not checkpointed yet counts too.
    node.allocate([]);
    d.allocatedByPlugin = (pci) => pci === vfPci(0x91, 0);
    s = await d.applyOnce();
    expect(node.numVfs()).toBe(3);
    expect(cond(s, 'Blocked')?.message).toBe(`sriov_numvfs 3 -> 1 held: VF ${vfPci(0x91, 0)} in use by a pod the device plugin just allocated it to`);
  });

  it('Events: Applied, then Blocked once (not on every pass), then Applied again', async () => {
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 3 }] });
    const d = node.daemon();
    const events: string[] = [];
    d.eventSink = (e) => events.push(`${e.type} ${e.reason}: ${e.message}`);
    await d.applyOnce();
    node.allocate([vfPci(0x91, 0)]);
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 1 }] });
    await d.applyOnce();
    await d.applyOnce();
    node.allocate([]);
    await d.applyOnce();
    expect(events).toEqual([
      `Normal NodePolicyApplied: PF ${node.pfName}: sriov_numvfs 0 -> 3`,
      `Warning NodePolicyBlocked: PF ${node.pfName}: sriov_numvfs 3 -> 1 held: VF ${vfPci(0x91, 0)} in use by pod uid uid-1234`,
      `Normal NodePolicyApplied: PF ${node.pfName}: sriov_numvfs 3 -> 1`,
    ]);
  });

  it('a VF the CNI holds (its record) blocks with the pod named; an unreadable checkpoint blocks everything', async () => {
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 4 }] });
    const d = node.daemon();
    await d.applyOnce();
    await new VfRecords(node.stateDir).write({
      version: 1, pciAddr: vfPci(0x91, 3), networkName: 'n', containerId: 'c0ffee', ifName: 'net1', netns: '/proc/1/ns/net',
      pod: { namespace: 'db', name: 'mysql-0', uid: 'u' }, phase: 'ready', createdAt: new Date().toISOString(),
      original: { pfNetdev: node.pfName, vfIndex: 3, userspace: false, vf: null, netdev: null }, cniVersion: '1.0.0',
    });
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 8 }] });
    let s = await d.applyOnce();
    expect(node.numVfs()).toBe(4);
    expect(cond(s, 'Blocked')?.message).toBe(`sriov_numvfs 4 -> 8 held: VF ${vfPci(0x91, 3)} in use by pod db/mysql-0`);

    fs.rmSync(path.join(node.stateDir, 'vfs'), { recursive: true });
    fs.writeFileSync(node.checkpoint, '{"Data": {"PodDeviceEntries": [{"PodUID": 1'); // half-written
    s = await d.applyOnce();
    expect(node.numVfs()).toBe(4);
    expect(cond(s, 'Blocked')?.message).toMatch(/^sriov_numvfs 4 -> 8 held: cannot tell which VFs are free \(kubelet checkpoint .*not JSON/);
    fs.rmSync(node.checkpoint);
    await d.applyOnce();
    expect(node.numVfs()).toBe(8);
  });
});

describe('node policy: PF MTU and link, externallyManaged', () => {
  it('sets the MTU and brings the link up once; a restart writes nothing', async () => {
    expect(node.link()).toEqual({ mtu: 1500, up: false });
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], mtu: 9000, linkUp: true }] });
    const s = await node.daemon().applyOnce();
    expect(node.link()).toEqual({ mtu: 9000, up: true });
    expect(cond(s, 'Applied')?.message).toBe('mtu 1500 -> 9000; link up');
    expect(s.pfs[0]!.actual).toMatchObject({ mtu: 9000, linkUp: true });
    const again = await node.daemon().applyOnce();
    expect(cond(again, 'Applied')?.reason).toBe('AlreadyMatching');
  });

  it('externallyManaged never writes: it reports the difference', async () => {
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 4, mtu: 9000, externallyManaged: true }] });
    const before = node.snapshot();
    let s = await node.daemon().applyOnce();
    expect(node.kernel.writes).toEqual([]);
    expect(node.snapshot()).toBe(before);
    expect(cond(s, 'Applied')).toMatchObject({ status: 'False', reason: 'ExternallyManagedMismatch', message: 'mtu is 1500, the policy says 9000; sriov_numvfs is 0, the policy says 4' });
    // Someone else makes it so: verified.
    node.kernel.write(path.join(node.root, 'bus/pci/devices', PF_PCI, 'sriov_numvfs'), '4');
    node.rtnl.setLink(node.rtnl.getLink(node.pfName)!.index, { mtu: 9000 });
    s = await node.daemon().applyOnce();
    expect(node.kernel.writes).toHaveLength(1); // only the test's own write
    expect(cond(s, 'Applied')).toMatchObject({ status: 'True', reason: 'Verified' });
  });
});

describe('node policy: VF drivers', () => {
  it('binds a VF range to vfio-pci and back; the rest stay on igbvf', async () => {
    loadVfio(node.root, false);
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 8 }, { name: 'dpdk', pfNames: [`${node.pfName}#4-7`], vfDriver: 'vfio-pci' }] });
    let s = await node.daemon().applyOnce();
    expect(Array.from({ length: 8 }, (_, j) => node.driver(vfPci(0x91, j)))).toEqual(['igbvf', 'igbvf', 'igbvf', 'igbvf', 'vfio-pci', 'vfio-pci', 'vfio-pci', 'vfio-pci']);
    expect(fs.existsSync(path.join(node.root, 'bus/pci/devices', vfPci(0x91, 4), 'net'))).toBe(false);
    expect(s.pfs[0]!.actual.vfDrivers).toEqual(['igbvf', 'igbvf', 'igbvf', 'igbvf', 'vfio-pci', 'vfio-pci', 'vfio-pci', 'vfio-pci']);
    expect(s.pfs[0]!.desired.vfDrivers).toEqual([{ vfs: '4-7', driver: 'vfio-pci' }]);

    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 8 }, { name: 'dpdk', pfNames: [`${node.pfName}#4-7`], vfDriver: 'netdevice' }] });
    s = await node.daemon().applyOnce();
    expect(Array.from({ length: 8 }, (_, j) => node.driver(vfPci(0x91, j)))).toEqual(Array(8).fill('igbvf'));
    expect(cond(s, 'Applied')?.message).toContain('vf 4 vfio-pci -> igbvf');
  });

  it('an allocated VF keeps its driver (held), the free ones move', async () => {
    loadVfio(node.root, false);
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 4 }] });
    await node.daemon().applyOnce();
    node.allocate([vfPci(0x91, 2)]);
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 4 }, { name: 'dpdk', pfNames: [`${node.pfName}#2-3`], vfDriver: 'vfio-pci' }] });
    const s = await node.daemon().applyOnce();
    expect(node.driver(vfPci(0x91, 2))).toBe('igbvf');
    expect(node.driver(vfPci(0x91, 3))).toBe('vfio-pci');
    expect(cond(s, 'Blocked')?.message).toBe(`driver change held: VF ${vfPci(0x91, 2)} in use by pod uid uid-1234`);
  });

  it('vfio-pci without an IOMMU (and without no-IOMMU mode) or not loaded: says so, leaves the VFs alone', async () => {
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 2 }] });
    await node.daemon().applyOnce();
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 2, vfDriver: 'vfio-pci' }] });
    let s = await node.daemon().applyOnce();
    expect(cond(s, 'Failed')?.message).toBe('vfio-pci is not loaded on this node (modprobe vfio-pci); VFs 0,1 left alone');
    for (let j = 0; j < 2; j++) fs.rmSync(path.join(node.root, 'bus/pci/devices', vfPci(0x91, j), 'iommu_group'));
    loadVfio(node.root, false);
    const before = node.snapshot();
    s = await node.daemon().applyOnce();
    expect(cond(s, 'Failed')?.message).toMatch(/^no IOMMU for VFs 0,1 .*left alone$/);
    expect(node.snapshot()).toBe(before);
    loadVfio(node.root, true);
    s = await node.daemon().applyOnce();
    expect([node.driver(vfPci(0x91, 0)), node.driver(vfPci(0x91, 1))]).toEqual(['vfio-pci', 'vfio-pci']);
    expect(cond(s, 'Applied')?.status).toBe('True');
  });
});

describe('node policy: faults', () => {
  it('killed between "0" and "6" in sriov_numvfs: the next daemon converges', async () => {
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 4 }] });
    await node.daemon().applyOnce();
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 6 }] });
    node.kernel.failAfter = node.kernel.writes.length + 2; // dies right before writing 6
    const s = await node.daemon().applyOnce();
    expect(node.numVfs()).toBe(0);
    expect(cond(s, 'Failed')?.message).toMatch(/crashed before write/);
    node.kernel.failAfter = 0;
    await node.daemon().applyOnce();
    expect(node.numVfs()).toBe(6);
    expect(node.virtfns()).toHaveLength(6);
  });

  it('killed between unbind and probe: the VF is left unbound, the next daemon binds it', async () => {
    loadVfio(node.root, false);
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 1, vfDriver: 'vfio-pci' }] });
    node.kernel.failAfter = 4; // numvfs, driver_override, unbind, [probe]
    await node.daemon().applyOnce();
    expect(node.driver(vfPci(0x91, 0))).toBeNull();
    node.kernel.failAfter = 0;
    await node.daemon().applyOnce();
    expect(node.driver(vfPci(0x91, 0))).toBe('vfio-pci');
  });
});

describe('node policy: bad input leaves the node exactly as it was', () => {
  const cases: Array<[string, (n: PolicyNode) => unknown, RegExp]> = [
    ['numVfs above sriov_totalvfs', (n) => ({ policies: [{ name: 'big', pfNames: [n.pfName], numVfs: 9 }] }), /entry "big": field "numVfs": 9 is more than PF npa\w+ supports \(sriov_totalvfs 8\)/],
    ['an unknown PF', () => ({ policies: [{ name: 'ghost', pfNames: ['ens9f9'], numVfs: 2 }] }), /entry "ghost": field "pfNames": no SR-IOV PF "ens9f9" on this node/],
    ['overlapping entries', (n) => ({ policies: [{ name: 'x', pfNames: [n.pfName], numVfs: 2 }, { name: 'y', rootDevices: [PF_PCI], numVfs: 4 }] }), /entry "x": field "pfNames": overlaps entry "y": numVfs 2 vs 4/],
    ['a VF range past the end', (n) => ({ policies: [{ name: 'r', pfNames: [`${n.pfName}#2-5`], numVfs: 4, vfDriver: 'vfio-pci' }] }), /entry "r": field "pfNames": VF range 2-5 of PF npa\w+ goes past its last VF \(4 VFs: 0-3\)/],
    ['malformed YAML', () => 'policies: [ {name: a, numVfs: ', /ConfigMap sriov-underlay\/node-policy key "pools.yaml": not valid JSON or YAML/],
    ['a wrong type', (n) => ({ policies: [{ name: 't', pfNames: [n.pfName], numVfs: 'four' }] }), /key "pools.yaml": policies\[0\] "t": field "numVfs": /],
    ['an unknown field', (n) => ({ policies: [{ name: 'u', pfNames: [n.pfName], numVFs: 4 }] }), /policies\[0\] "u": field "\(root\)": Unrecognized key: "numVFs"/],
    ['a huge file', () => `policies: []\n#${'x'.repeat(300_000)}`, /bytes, more than the 262144 allowed/],
    ['an envelope that is not a list', () => ({ policies: { name: 'a' } }), /field "policies": /],
  ];
  for (const [what, policy, message] of cases) {
    it(what, async () => {
      // Leave the node in a known, non-trivial state first: 2 VFs, MTU 1500.
      node.setPolicy({ policies: [{ name: 'base', pfNames: [node.pf2Name], numVfs: 2 }] });
      await node.daemon().applyOnce();
      node.setPolicy({ policies: [] });
      const before = node.snapshot();
      const writes = node.kernel.writes.length;
      node.setPolicy(policy(node));
      const s = await node.daemon().applyOnce();
      expect(node.kernel.writes).toHaveLength(writes);
      expect(node.snapshot()).toBe(before);
      expect(s.rejected.join('\n')).toMatch(message);
    });
  }

  it('an overlap rejects both entries whole, and a valid entry for another PF still applies', async () => {
    node.setPolicy({ policies: [
      { name: 'x', pfNames: [node.pfName], numVfs: 2, mtu: 9000 },
      { name: 'y', pfNames: [`${node.pfName}#0-1`], vfDriver: 'vfio-pci' },
      { name: 'z', pfNames: [`${node.pfName}#1`], vfDriver: 'netdevice' },
      { name: 'ok', pfNames: [node.pf2Name], numVfs: 3 },
    ] });
    const s = await node.daemon().applyOnce();
    expect(node.numVfs(PF2_PCI)).toBe(3);
    expect(s.rejected.filter((r) => /overlaps/.test(r))).toHaveLength(2);
    expect(s.rejected.join('\n')).toMatch(/entry "y".*overlaps entry "z": both set vfDriver for VFs 0-1 \/ 1/);
    // x does not overlap anyone: it applies (its MTU), nothing of y or z does.
    expect(node.link().mtu).toBe(9000);
    expect(node.numVfs()).toBe(2);
    expect([node.driver(vfPci(0x91, 0)), node.driver(vfPci(0x91, 1))]).toEqual(['igbvf', 'igbvf']);
  });

  it('a nodeSelector: applied where the labels match, held where the labels cannot be read', async () => {
    node.setPolicy({ policies: [{ name: 'sel', nodeSelector: { 'sriov-underlay.io/fabric': 'a' }, pfNames: [node.pfName], numVfs: 2 }] });
    let s = await node.daemon({ 'sriov-underlay.io/fabric': 'b' }).applyOnce();
    expect(node.numVfs()).toBe(0);
    expect(s.pfs).toEqual([]);
    s = await node.daemon(null).applyOnce();
    expect(node.numVfs()).toBe(0);
    expect(s.rejected.join()).toMatch(/entry "sel": field "nodeSelector": this node's labels are unknown/);
    await node.daemon({ 'sriov-underlay.io/fabric': 'a' }).applyOnce();
    expect(node.numVfs()).toBe(2);
  });

  it('an unusable file keeps the previous policy (nothing is undone, nothing new is done)', async () => {
    node.setPolicy({ policies: [{ name: 'a', pfNames: [node.pfName], numVfs: 2 }] });
    const d = node.daemon();
    await d.applyOnce();
    node.setPolicy('{not yaml');
    const s = await d.applyOnce();
    expect(node.numVfs()).toBe(2);
    expect(cond(s, 'Applied')?.status).toBe('True');
    expect(s.rejected[0]).toMatch(/not valid JSON or YAML/);
  });
});
