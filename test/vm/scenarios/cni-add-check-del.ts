// vm-requires: dist/bin/sriov-underlay
// vm-requires: dist/bin/sriov-underlay-node
/**
 * ADD, CHECK and DEL on a real VF with every PF-side option igb accepts, verified with iproute2 on
 * the PF and inside the pod netns; CHECK must catch drift on both sides; DEL restores exactly.
 */
import { assertOk, assertRestored, cniBed, nsName, snapshot } from '../lib/cni-scenario';
import { addrsIn, linkIn } from '../lib/netns';
import type { Scenario } from '../lib/scenario';
import { ip } from '../lib/sh';
import { vfNetdevState, vfView } from '../lib/sriov';

const MAC = '02:56:00:00:01:0b';

export const scenario: Scenario = {
  timeoutSec: 180,
  async run(ctx) {
    const { t } = ctx;
    const bed = await cniBed(ctx, 2);
    const before = await snapshot(bed, 0);
    const other = await snapshot(bed, 1);
    const pod = await bed.pod();
    const ns = nsName(pod);
    const conf = bed.conf(0, '10.56.0.11/24', { mac: MAC });

    const add = await bed.cni.add(pod, conf);
    if (!assertOk(t, add, 'ADD succeeds')) return;
    const iface = add.result?.interfaces?.find((i) => i.name === 'net1');
    t.ok(iface !== undefined && iface.sandbox === pod.netns, 'ADD result names net1 in the pod netns', JSON.stringify(add.result));
    t.equal(iface?.mac, MAC, 'ADD result carries the MAC');
    t.ok(add.result?.ips?.some((x) => x.address === '10.56.0.11/24') ?? false, 'ADD result carries the static IPAM address', JSON.stringify(add.result?.ips));
    t.ok(add.result !== undefined, 'stdout is exactly one JSON result (no log lines)', add.stdout);

    const v = await vfView(bed.pf, 0);
    t.equal(
      { vlan: v.vlan, qos: v.qos, mac: v.mac, spoofchk: v.spoofchk, trust: v.trust, maxTxRate: v.maxTxRate },
      { vlan: 100, qos: 3, mac: MAC, spoofchk: true, trust: true, maxTxRate: 100 },
      'PF side (ip -d link show PF): vlan 100 qos 3, MAC, spoofchk on, trust on, max_tx_rate 100',
    );
    t.equal((await snapshot(bed, 1)).line, other.line, 'the other VF is untouched');
    t.equal(vfNetdevState(bed.vfs[0]!), null, 'the VF netdev left the host netns');
    const l = await linkIn(ns, 'net1');
    t.equal(l && { mac: l.address, mtu: l.mtu }, { mac: MAC, mtu: 1400 }, 'in the pod: net1 with the MAC and MTU 1400');
    t.ok((await ip('-n', ns, 'link', 'show', 'dev', 'net1')).includes(',UP'), 'in the pod: net1 is up');
    t.equal(await addrsIn(ns, 'net1'), ['10.56.0.11/24'], 'in the pod: net1 has 10.56.0.11/24');

    assertOk(t, await bed.cni.check(pod, conf, add.result), 'CHECK succeeds on the configured VF');
    await ip('-n', ns, 'link', 'set', 'dev', 'net1', 'mtu', '1300');
    const badMtu = await bed.cni.check(pod, conf, add.result);
    t.ok(badMtu.code !== 0 && /mtu/i.test(badMtu.error?.msg ?? ''), 'CHECK fails and names the MTU after it changed in the pod', badMtu.stdout);
    await ip('-n', ns, 'link', 'set', 'dev', 'net1', 'mtu', '1400');
    await ip('link', 'set', 'dev', bed.pf, 'vf', '0', 'vlan', '101', 'qos', '3');
    const badVlan = await bed.cni.check(pod, conf, add.result);
    t.ok(badVlan.code !== 0 && /vlan/i.test(badVlan.error?.msg ?? ''), 'CHECK fails and names the VLAN after it changed on the PF', badVlan.stdout);
    await ip('link', 'set', 'dev', bed.pf, 'vf', '0', 'vlan', '100', 'qos', '3');
    assertOk(t, await bed.cni.check(pod, conf, add.result), 'CHECK succeeds again once both are put back');

    assertOk(t, await bed.cni.del(pod, conf, add.result), 'DEL succeeds');
    await assertRestored(t, bed, 0, before, 'after DEL');
    t.equal(await linkIn(ns, 'net1'), null, 'after DEL: no net1 left in the pod netns');
    assertOk(t, await bed.cni.del(pod, conf, add.result), 'a second DEL succeeds (idempotent)');
    await assertRestored(t, bed, 0, before, 'after the second DEL');
  },
};
