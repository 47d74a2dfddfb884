/**
 * A physical netdev goes back to the host when its netns dies, under its in-netns name, or renamed
 * `dev<ifindex>` by the kernel when that name is taken. The CNI's DEL must find it either way.
 */
import type { Scenario } from '../lib/scenario';
import { moveTo, netnsAdd, netnsDel, uniq } from '../lib/netns';
import { findPf, setNumVfs, vfNetdevState, waitVfHome } from '../lib/sriov';
import { ip } from '../lib/sh';

export const scenario: Scenario = {
  async run({ t, defer }) {
    const pf = await t.step('PF found', () => findPf());
    const vfs = await t.step('3 VFs created', () => setNumVfs(pf, 3));
    const before = vfs.map((v) => vfNetdevState(v)!);
    const ns = [uniq('vtr'), uniq('vtr'), uniq('vtr')];
    for (const [i, n] of ns.entries()) {
      defer(() => netnsDel(n));
      await netnsAdd(n);
      await t.step(`VF ${i} (${before[i]!.name}) moved into a netns as net1`, () => moveTo(before[i]!.name, n, 'net1'));
      t.equal(vfNetdevState(vfs[i]!), null, `VF ${i} has no netdev in the host netns while in the pod`);
    }

    await ip('netns', 'del', ns[0]!);
    const home0 = await t.step('VF 0 back on the host after its netns is deleted', () => waitVfHome(vfs[0]!));
    t.equal(home0, 'net1', 'VF 0 keeps its in-netns name (net1 is free on the host)');
    t.equal(vfNetdevState(vfs[0]!)?.mac, before[0]!.mac, 'VF 0 keeps its MAC');

    await ip('netns', 'del', ns[1]!);
    const home1 = await t.step('VF 1 back on the host after its netns is deleted', () => waitVfHome(vfs[1]!));
    t.match(home1, /^dev\d+$/, 'VF 1 renamed dev<N> by the kernel (net1 is taken by VF 0)');
    t.equal(vfNetdevState(vfs[1]!)?.mac, before[1]!.mac, 'VF 1 keeps its MAC');

    // A name taken by an unrelated host netdev (dummy) has the same effect.
    await ip('link', 'add', 'net2', 'type', 'dummy');
    await ip('-n', ns[2]!, 'link', 'set', 'dev', 'net1', 'name', 'net2');
    await ip('netns', 'del', ns[2]!);
    const home2 = await t.step('VF 2 back on the host after its netns is deleted', () => waitVfHome(vfs[2]!));
    t.match(home2, /^dev\d+$/, 'VF 2 renamed dev<N> (its name net2 is taken by a dummy)');
    t.ok((await ip('-d', 'link', 'show', 'dev', 'net2')).includes('dummy'), 'the dummy keeps the name net2');
  },
};
