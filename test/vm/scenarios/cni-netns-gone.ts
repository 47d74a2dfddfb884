// vm-requires: dist/bin/sriov-underlay
// vm-requires: dist/bin/sriov-underlay-node
/**
 * The pod netns is deleted before DEL (sriov-cni #126, #349): the kernel sends the VF home under its
 * pod name, or as dev<N> when that name is taken. DEL must still find it and restore everything.
 */
import { assertOk, assertRestored, cniBed, snapshot, type VfSnapshot } from '../lib/cni-scenario';
import type { Attachment, CniResult, Netconf } from '../lib/cni';
import { ip } from '../lib/sh';
import type { Scenario } from '../lib/scenario';
import { waitVfHome } from '../lib/sriov';

export const scenario: Scenario = {
  timeoutSec: 200,
  async run(ctx) {
    const { t } = ctx;
    const bed = await cniBed(ctx, 2);
    const pods: { a: Attachment; conf: Netconf; result?: CniResult; before: VfSnapshot }[] = [];
    for (const i of [0, 1]) {
      const before = await snapshot(bed, i);
      const a = await bed.pod('net1');
      const conf = bed.conf(i, `10.56.0.${11 + i}/24`, { mac: `02:56:00:00:01:${(11 + i).toString(16).padStart(2, '0')}` });
      const add = await bed.cni.add(a, conf);
      if (!assertOk(t, add, `ADD pod ${i} (both pods call the VF net1)`)) return;
      pods.push({ a, conf, result: add.result, before });
    }
    const [p0, p1] = pods as [(typeof pods)[0], (typeof pods)[0]];
    await ip('netns', 'del', p0.a.podName!);
    t.equal(await waitVfHome(bed.vfs[0]!), 'net1', 'pod 0 netns deleted: VF 0 comes home as net1');
    await ip('netns', 'del', p1.a.podName!);
    t.match(await waitVfHome(bed.vfs[1]!), /^dev\d+$/, 'pod 1 netns deleted: VF 1 comes home renamed dev<N> (net1 is taken)');

    assertOk(t, await bed.cni.del(p1.a, p1.conf, p1.result), 'DEL pod 1 with its netns gone succeeds');
    await assertRestored(t, bed, 1, p1.before, 'after DEL of pod 1');
    assertOk(t, await bed.cni.del(p0.a, p0.conf, p0.result), 'DEL pod 0 with its netns gone succeeds');
    await assertRestored(t, bed, 0, p0.before, 'after DEL of pod 0');
    assertOk(t, await bed.cni.del(p0.a, p0.conf, p0.result), 'DEL pod 0 again succeeds (idempotent)');
  },
};
