// vm-requires: dist/bin/sriov-underlay
// vm-requires: dist/bin/sriov-underlay-node
/**
 * DEL gives back the VF's full original state, not only the fields the netconf set and not the
 * driver's defaults: the VF starts with its own non-default VLAN, QoS, MAC, spoofchk, rate and MTU.
 */
import { readFileSync } from 'node:fs';
import { assertOk, assertRestored, cniBed, snapshot } from '../lib/cni-scenario';
import type { Scenario } from '../lib/scenario';
import { ip, waitFor } from '../lib/sh';
import { vfNetdev } from '../lib/sriov';

const OLD_MAC = '02:56:00:00:07:07';

export const scenario: Scenario = {
  timeoutSec: 180,
  async run(ctx) {
    const { t } = ctx;
    const bed = await cniBed(ctx, 2);
    const dev = vfNetdev(bed.vfs[0]!)!;
    await t.step('VF 0 pre-configured: vlan 7 qos 1, MAC, spoofchk off, max_tx_rate 50, netdev MTU 1450', async () => {
      await ip('link', 'set', 'dev', bed.pf, 'vf', '0', 'vlan', '7', 'qos', '1');
      await ip('link', 'set', 'dev', bed.pf, 'vf', '0', 'mac', OLD_MAC);
      await ip('link', 'set', 'dev', bed.pf, 'vf', '0', 'spoofchk', 'off');
      await ip('link', 'set', 'dev', bed.pf, 'vf', '0', 'max_tx_rate', '50');
      await ip('link', 'set', 'dev', dev, 'mtu', '1450');
      // igbvf adopts the PF-assigned MAC when it resets, i.e. on open.
      await ip('link', 'set', 'dev', dev, 'up');
      await waitFor(`${dev} to adopt ${OLD_MAC}`, () => readFileSync(`/sys/class/net/${dev}/address`, 'utf8').trim() === OLD_MAC, 20_000);
      await ip('link', 'set', 'dev', dev, 'down');
    });
    const before = await snapshot(bed, 0);
    t.comment(`before: ${before.line}; netdev ${JSON.stringify(before.netdev)}`);

    const pod = await bed.pod();
    const conf = bed.conf(0, '10.56.0.11/24', { mac: '02:56:00:00:01:0b' });
    const add = await bed.cni.add(pod, conf);
    if (!assertOk(t, add, 'ADD with different vlan, qos, MAC, spoofchk, trust, rate and MTU')) return;
    t.ok((await snapshot(bed, 0)).line !== before.line, 'ADD changed the VF line', before.line);
    assertOk(t, await bed.cni.del(pod, conf, add.result), 'DEL succeeds');
    await assertRestored(t, bed, 0, before, 'after DEL');
  },
};
