// vm-requires: dist/bin/sriov-underlay
// vm-requires: dist/bin/sriov-underlay-node
/**
 * A pod with NET_ADMIN renames its VF, changes its MAC, plants a decoy under the old name, or moves
 * the VF into another netns. On real igbvf the kernel names the VF's PCI parent (IFLA_PARENT_DEV_NAME),
 * so DEL finds it wherever the pod put it in its netns and restores everything; a VF moved out of
 * reach keeps its record (DEL fails, nothing forgotten) until the kernel brings it home.
 */
import { assertOk, assertRestored, cniBed, nsName, snapshot } from '../lib/cni-scenario';
import { describe } from '../lib/cni';
import { netnsAdd, netnsDel, uniq } from '../lib/netns';
import { ip } from '../lib/sh';
import type { Scenario } from '../lib/scenario';
import { waitVfHome } from '../lib/sriov';

export const scenario: Scenario = {
  timeoutSec: 240,
  async run(ctx) {
    const { t } = ctx;
    const bed = await cniBed(ctx, 2);

    // VF 0: renamed, new MAC, and a decoy named net1 inside the pod.
    const before0 = await snapshot(bed, 0);
    const a0 = await bed.pod('net1');
    const conf0 = bed.conf(0, '10.57.0.11/24', { mac: '02:57:00:00:01:11' });
    const add0 = await bed.cni.add(a0, conf0);
    if (!assertOk(t, add0, 'ADD pod 0')) return;
    const ns0 = nsName(a0);
    const parent = JSON.parse(await ip('-n', ns0, '-d', '-j', 'link', 'show', 'dev', 'net1')) as { parentdev?: string }[];
    t.equal(parent[0]?.parentdev, bed.vfs[0], 'the kernel names the VF netdev\'s PCI parent inside the pod');
    await ip('-n', ns0, 'link', 'set', 'net1', 'down');
    await ip('-n', ns0, 'link', 'set', 'net1', 'name', 'eth9', 'address', '02:57:00:00:99:99');
    await ip('-n', ns0, 'link', 'add', 'net1', 'type', 'dummy');
    assertOk(t, await bed.cni.del(a0, conf0, add0.result), 'DEL after the pod renamed its VF, changed its MAC and planted a decoy');
    await assertRestored(t, bed, 0, before0, 'renamed VF');
    t.ok((await ip('-n', ns0, '-br', 'link')).includes('net1'), 'the decoy stays in the pod');

    // VF 1: moved into another netns by the pod.
    const before1 = await snapshot(bed, 1);
    const a1 = await bed.pod('net1');
    const conf1 = bed.conf(1, '10.57.0.12/24', { mac: '02:57:00:00:01:12' });
    const add1 = await bed.cni.add(a1, conf1);
    if (!assertOk(t, add1, 'ADD pod 1')) return;
    const hideout = uniq('vth');
    ctx.defer(() => netnsDel(hideout));
    await netnsAdd(hideout);
    await ip('-n', nsName(a1), 'link', 'set', 'net1', 'down');
    await ip('-n', nsName(a1), 'link', 'set', 'net1', 'netns', hideout, 'name', 'eth7', 'address', '02:57:00:00:77:77');
    const lost = await bed.cni.del(a1, conf1, add1.result);
    t.ok(lost.code !== 0 && /record \(original state\) is kept/.test(lost.error?.msg ?? ''), 'DEL of a VF moved out of the pod fails and keeps its record', describe(lost));
    await ip('netns', 'del', hideout);
    t.equal(await waitVfHome(bed.vfs[1]!), 'eth7', 'that netns deleted: the VF comes home under the pod\'s name');
    assertOk(t, await bed.cni.del(a1, conf1, add1.result), 'the retried DEL finds it on the host');
    await assertRestored(t, bed, 1, before1, 'moved VF');
  },
};
