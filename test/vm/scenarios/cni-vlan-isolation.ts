// vm-requires: dist/bin/sriov-underlay
// vm-requires: dist/bin/sriov-underlay-node
/** Pods attached by the CNI: two on VLAN 100 reach each other, VLAN 200 pods are isolated from them. */
import { assertOk, assertRestored, cniBed, nsName, snapshot, type VfSnapshot } from '../lib/cni-scenario';
import type { Attachment, CniResult, Netconf } from '../lib/cni';
import { ping, waitCarrier } from '../lib/netns';
import type { Scenario } from '../lib/scenario';

export const scenario: Scenario = {
  timeoutSec: 240,
  async run(ctx) {
    const { t } = ctx;
    const bed = await cniBed(ctx, 4);
    const plan = [
      { vlan: 100, addr: '10.56.0.11' },
      { vlan: 100, addr: '10.56.0.12' },
      { vlan: 200, addr: '10.56.0.13' },
      { vlan: 200, addr: '10.56.0.14' },
    ];
    const pods: { a: Attachment; conf: Netconf; result?: CniResult; before: VfSnapshot }[] = [];
    for (const [i, p] of plan.entries()) {
      const before = await snapshot(bed, i);
      const a = await bed.pod();
      // No MAC in the netconf: igbvf's random MAC must work; vlanQoS only with the VLAN.
      const conf = bed.conf(i, `${p.addr}/24`, { vlan: p.vlan, vlanQoS: 0, max_tx_rate: 0 });
      const add = await bed.cni.add(a, conf);
      assertOk(t, add, `ADD pod ${i} on VLAN ${p.vlan} (${p.addr})`);
      pods.push({ a, conf, result: add.result, before });
    }
    if (pods.every((p) => p.result)) {
      for (const [i, p] of pods.entries()) await t.step(`pod ${i} net1 has carrier`, () => waitCarrier(nsName(p.a), 'net1'));
      const ns = pods.map((p) => nsName(p.a));
      t.ok(await ping(ns[0]!, '10.56.0.12'), 'VLAN 100: pod 0 pings pod 1');
      t.ok(await ping(ns[1]!, '10.56.0.11'), 'VLAN 100: pod 1 pings pod 0');
      t.ok(await ping(ns[2]!, '10.56.0.14'), 'VLAN 200: pod 2 pings pod 3 (its VLAN works)');
      t.ok(!(await ping(ns[2]!, '10.56.0.11', 2)), 'pod 2 on VLAN 200 cannot reach pod 0 on VLAN 100');
      t.ok(!(await ping(ns[0]!, '10.56.0.13', 2)), 'pod 0 on VLAN 100 cannot reach pod 2 on VLAN 200');
    }
    for (const [i, p] of pods.entries()) {
      assertOk(t, await bed.cni.del(p.a, p.conf, p.result), `DEL pod ${i}`);
      await assertRestored(t, bed, i, p.before, `after DEL of pod ${i}`);
    }
  },
};
