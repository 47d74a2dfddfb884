// vm-requires: dist/bin/sriov-underlay
// vm-requires: dist/bin/sriov-underlay-node
/**
 * Options the igb driver refuses: ADD must fail with a clear CNI error naming the field and leave the
 * VF exactly as it was (sriov-cni #119 leaves it half-configured), and the VF must stay usable.
 */
import { assertOk, assertRestored, cniBed, nsName, snapshot } from '../lib/cni-scenario';
import { linkIn } from '../lib/netns';
import type { Scenario } from '../lib/scenario';

const CASES = [
  { what: 'min_tx_rate on igb', overrides: { min_tx_rate: 10 }, field: /min_tx_rate/ },
  { what: 'max_tx_rate above the link speed', overrides: { max_tx_rate: 2000 }, field: /max_tx_rate/ },
];

export const scenario: Scenario = {
  timeoutSec: 200,
  async run(ctx) {
    const { t } = ctx;
    const bed = await cniBed(ctx, 1);
    const before = await snapshot(bed, 0);
    for (const c of CASES) {
      const pod = await bed.pod();
      const add = await bed.cni.add(pod, bed.conf(0, '10.56.0.11/24', { mac: '02:56:00:00:01:0b', ...c.overrides }));
      t.ok(add.code !== 0 && add.error !== undefined, `${c.what}: ADD fails with a CNI error object on stdout`, add.stdout || add.stderr);
      t.equal(add.error?.code, 102, `${c.what}: error code 102 (driver refused)`);
      const text = `${add.error?.msg ?? ''} ${add.error?.details ?? ''}`;
      t.match(text, c.field, `${c.what}: the error names the field`);
      t.match(text, /EINVAL|invalid argument/i, `${c.what}: the error carries the driver's errno`);
      await assertRestored(t, bed, 0, before, `${c.what}: rollback`);
      t.equal(await linkIn(nsName(pod), 'net1'), null, `${c.what}: nothing left in the pod netns`);
    }
    // The failed ADDs left no lock or marker behind: a valid ADD on the same VF works.
    const pod = await bed.pod();
    const conf = bed.conf(0, '10.56.0.11/24');
    const add = await bed.cni.add(pod, conf);
    assertOk(t, add, 'a valid ADD on the same VF succeeds afterwards');
    assertOk(t, await bed.cni.del(pod, conf, add.result), 'its DEL succeeds');
    await assertRestored(t, bed, 0, before, 'after that DEL');
  },
};
