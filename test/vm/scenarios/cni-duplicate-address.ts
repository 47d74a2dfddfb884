// vm-requires: dist/bin/sriov-underlay
// vm-requires: dist/bin/sriov-underlay-node
/**
 * Duplicate detection on real VFs: a rogue (another VF of the same PF, in its own netns, on the same
 * VLAN) already holds the address. ADD of a pod registered with it fails with code 105 naming the
 * rogue's MAC, for IPv4 (ARP probe) and IPv6 (kernel DAD), and the VF is rolled back exactly. A free
 * address on the same wire still attaches.
 */
import { assertOk, assertRestored, cniBed, nsName, snapshot } from '../lib/cni-scenario';
import { addrUp, netnsAdd, netnsDel, ping, uniq, waitCarrier } from '../lib/netns';
import type { Scenario } from '../lib/scenario';
import { ip } from '../lib/sh';
import { vfNetdev } from '../lib/sriov';

const ROGUE_MAC = '02:56:00:00:0d:01';

export const scenario: Scenario = {
  timeoutSec: 240,
  async run(ctx) {
    const { t, defer } = ctx;
    const bed = await cniBed(ctx, 2);
    // The rogue: VF 1 on VLAN 100 (the netconf's), in its own netns, holding the addresses.
    const rogue = uniq('vtr');
    defer(() => netnsDel(rogue));
    await netnsAdd(rogue);
    await ip('link', 'set', 'dev', bed.pf, 'vf', '1', 'vlan', '100', 'mac', ROGUE_MAC);
    const dev = vfNetdev(bed.vfs[1]!);
    if (!t.ok(dev !== null, 'VF 1 has a netdev for the rogue')) return;
    await ip('link', 'set', 'dev', dev!, 'netns', rogue, 'name', 'rogue');
    await addrUp(rogue, 'rogue', '10.56.0.21/24');
    await ip('-n', rogue, 'addr', 'add', 'fd00:56::21/64', 'dev', 'rogue', 'nodad');
    await t.step('rogue has carrier', () => waitCarrier(rogue, 'rogue'));

    for (const [address, how] of [['10.56.0.21/24', /RFC 5227 ARP probe/], ['fd00:56::21/64', /IPv6 duplicate address detection/]] as const) {
      const before = await snapshot(bed, 0);
      const pod = await bed.pod();
      const add = await bed.cni.add(pod, bed.conf(0, address));
      t.ok(add.error?.code === 105, `ADD ${address}: refused with code 105`, add.stdout);
      t.ok((add.error?.msg ?? '').includes(`by MAC ${ROGUE_MAC}`), `ADD ${address}: the error names the rogue's MAC`, add.error?.msg);
      t.ok(how.test(add.error?.msg ?? ''), `ADD ${address}: the error says how it was found`, add.error?.msg);
      await assertRestored(t, bed, 0, before, `after the refused ADD of ${address}`);
      assertOk(t, await bed.cni.del(pod, bed.conf(0, address)), `DEL after the refused ADD of ${address}`);
    }

    const before = await snapshot(bed, 0);
    const pod = await bed.pod();
    const conf = bed.conf(0, '10.56.0.22/24');
    const add = await bed.cni.add(pod, conf);
    if (assertOk(t, add, 'ADD of a free address on the same wire succeeds')) {
      await t.step('pod net1 has carrier', () => waitCarrier(nsName(pod), 'net1'));
      t.ok(await ping(nsName(pod), '10.56.0.21'), 'the pod reaches the rogue (same VLAN: the probe saw the real wire)');
    }
    assertOk(t, await bed.cni.del(pod, conf, add.result), 'DEL');
    await assertRestored(t, bed, 0, before, 'after DEL');
  },
};
