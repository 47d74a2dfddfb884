// vm-requires: dist/bin/sriov-underlay
// vm-requires: dist/bin/sriov-underlay-node
/**
 * The runtime's answer to a plugin killed during ADD is DEL. Kill ADD at random moments (spread over
 * one measured ADD), then DEL: the VF must be exactly as before, and usable again.
 */
import { assertOk, assertRestored, cniBed, nsName, snapshot } from '../lib/cni-scenario';
import { collect, sleep } from '../lib/sh';
import { linkIn, netnsDel } from '../lib/netns';
import type { Scenario } from '../lib/scenario';

const RUNS = Number(process.env.VM_SIGKILL_RUNS ?? 6);

export const scenario: Scenario = {
  timeoutSec: 300,
  async run(ctx) {
    const { t } = ctx;
    const bed = await cniBed(ctx, 1);
    const before = await snapshot(bed, 0);
    const conf = bed.conf(0, '10.56.0.11/24', { mac: '02:56:00:00:01:0b' });

    const first = await bed.pod();
    const t0 = Date.now();
    const add = await bed.cni.add(first, conf);
    const addMs = Date.now() - t0;
    if (!assertOk(t, add, 'an uninterrupted ADD succeeds')) return;
    t.comment(`uninterrupted ADD took ${addMs} ms`);
    assertOk(t, await bed.cni.del(first, conf, add.result), 'its DEL succeeds');
    await assertRestored(t, bed, 0, before, 'after the uninterrupted ADD and DEL');

    for (let run = 1; run <= RUNS; run++) {
      const pod = await bed.pod();
      // Spread the kills over the whole ADD, with a few right at the start.
      const delay = Math.round(Math.random() * addMs * 1.1);
      const child = bed.cni.spawn('ADD', pod, conf);
      const killed = sleep(delay).then(() => child.kill('SIGKILL'));
      const r = await collect(child, 120_000);
      await killed;
      t.comment(`run ${run}: SIGKILL after ${delay} ms; ADD ${r.signal ? 'was killed' : `had finished (exit ${r.code})`}`);
      assertOk(t, await bed.cni.del(pod, conf), `run ${run}: DEL after SIGKILL at ${delay} ms succeeds`);
      await assertRestored(t, bed, 0, before, `run ${run}: after DEL`);
      t.equal(await linkIn(nsName(pod), 'net1'), null, `run ${run}: nothing left in the pod netns`);
      await netnsDel(nsName(pod));
    }

    const last = await bed.pod();
    const again = await bed.cni.add(last, conf);
    assertOk(t, again, 'the VF is usable again: ADD succeeds');
    assertOk(t, await bed.cni.del(last, conf, again.result), 'and its DEL succeeds');
    await assertRestored(t, bed, 0, before, 'at the end');
  },
};
