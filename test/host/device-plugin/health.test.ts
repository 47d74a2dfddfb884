/**
 * Health through the real kernel: PF netdevs are veths of an emulated NIC, and taking the PF's
 * fabric-side peer down drops the PF's carrier. The daemon learns it from src/netlink's link
 * monitor and pushes the change through ListAndWatch.
 */
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { createEmulatedNic, type EmulatedNic } from '../../fixtures/sysfs-tree';
import { harness, type Harness } from './harness';

let h: Harness | undefined;
let nic: EmulatedNic | undefined;
afterEach(async () => {
  await h?.cleanup();
  nic?.destroy();
  h = nic = undefined;
});

const R = 'sriov-underlay.io/vf';

/** An emulated NIC with two PFs of two VFs each, one pool over both; returns the NIC's tag. */
async function twoPfs(): Promise<string> {
  const tag = `dp${randomBytes(1).toString('hex')}`;
  h = await harness({
    mode: 'legacy',
    pfs: (sysfs) => {
      nic = createEmulatedNic({ tag, root: sysfs, pfs: 2, vfsPerPf: 2 });
    },
    config: { resourceList: [{ resourceName: 'vf', selectors: { pfNames: [`${tag}p0`, `${tag}p1`] } }] },
  });
  return tag;
}

describe('health from PF carrier', () => {
  it('PF carrier down -> its VFs Unhealthy; up -> Healthy again; other PFs untouched', async () => {
    const tag = await twoPfs();
    const hh = h!;
    const n = nic!;
    await hh.startDaemon({ rescanMs: 60_000 }); // no rescan help: the netlink event must do it
    const health = () => Object.fromEntries((hh.kubelet.devices(R) ?? []).map((d) => [d.ID, d.health]));
    const pf0 = n.pfs[0]!.vfs.map((v) => v.pciAddr);
    const pf1 = n.pfs[1]!.vfs.map((v) => v.pciAddr);
    await hh.kubelet.waitFor('4 healthy VFs', () => Object.values(health()).filter((x) => x === 'Healthy').length === 4);

    n.setPfCarrier(0, false);
    await hh.kubelet.waitFor('PF0 VFs unhealthy', () => pf0.every((id) => health()[id] === 'Unhealthy'));
    expect(pf1.map((id) => health()[id])).toEqual(['Healthy', 'Healthy']);
    await expect(hh.kubelet.allocate(R, [pf0[0]!])).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: `Allocate: device "${pf0[0]}" of pool ${R} is Unhealthy: PF ${tag}p0 has no carrier`,
    });

    n.setPfCarrier(0, true);
    await hh.kubelet.waitFor('PF0 VFs healthy again', () => pf0.every((id) => health()[id] === 'Healthy'));
    expect(Object.values(health())).toEqual(['Healthy', 'Healthy', 'Healthy', 'Healthy']);
  });

  it('fenced by the node policy: the PF\'s VFs Unhealthy and refused; unfenced: Healthy again', async () => {
    const tag = await twoPfs();
    const hh = h!;
    const d = await hh.startDaemon({ rescanMs: 60_000 });
    const health = () => Object.fromEntries((hh.kubelet.devices(R) ?? []).map((x) => [x.ID, x.health]));
    const pf0 = nic!.pfs[0]!.vfs.map((v) => v.pciAddr);
    await hh.kubelet.waitFor('4 healthy VFs', () => Object.values(health()).filter((x) => x === 'Healthy').length === 4);
    await d.fence(`${tag}p0`, true);
    // Once fence() resolves, the plugin refuses them, whatever kubelet has heard yet.
    await expect(hh.kubelet.allocate(R, [pf0[0]!])).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: `Allocate: device "${pf0[0]}" of pool ${R} is Unhealthy: PF ${tag}p0: the node policy is about to re-create its VFs`,
    });
    await hh.kubelet.waitFor('PF0 VFs unhealthy', () => pf0.every((id) => health()[id] === 'Unhealthy'));
    expect(Object.values(health()).filter((x) => x === 'Healthy')).toHaveLength(2);
    await d.fence(`${tag}p0`, false);
    await hh.kubelet.waitFor('healthy again', () => Object.values(health()).every((x) => x === 'Healthy'));
  });
});
