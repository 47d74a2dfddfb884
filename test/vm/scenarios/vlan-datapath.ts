/** VF-to-VF traffic through the emulated NIC's switch, separated by the PF-side VLAN. */
import type { Scenario } from '../lib/scenario';
import { addrUp, moveTo, netnsAdd, netnsDel, ping, uniq, waitCarrier } from '../lib/netns';
import { findPf, pfUp, setNumVfs, trySetVf, vfNetdev } from '../lib/sriov';

export const scenario: Scenario = {
  async run({ t, defer }) {
    const pf = await t.step('PF found', () => findPf());
    const vfs = await t.step('4 VFs created', () => setNumVfs(pf, 4));
    await t.step('PF up with carrier', () => pfUp(pf));
    const vlans = [100, 100, 200, 200];
    const ns: string[] = [];
    for (const [i, vlan] of vlans.entries()) {
      t.equal(await trySetVf(pf, i, 'vlan', String(vlan)), '', `VF ${i} on VLAN ${vlan}`);
      const n = uniq('vtp');
      ns.push(n);
      defer(() => netnsDel(n));
      await netnsAdd(n);
      await t.step(`VF ${i} moved into its netns as net1 with 10.56.0.${i + 1}/24`, async () => {
        await moveTo(vfNetdev(vfs[i]!)!, n, 'net1');
        await addrUp(n, 'net1', `10.56.0.${i + 1}/24`);
      });
    }
    for (const [i, n] of ns.entries()) await t.step(`VF ${i} has carrier`, () => waitCarrier(n, 'net1'));
    const [a, b, c, d] = ns as [string, string, string, string];
    t.ok(await ping(a, '10.56.0.2'), 'VLAN 100: VF 0 pings VF 1');
    t.ok(await ping(b, '10.56.0.1'), 'VLAN 100: VF 1 pings VF 0');
    t.ok(await ping(c, '10.56.0.4'), 'VLAN 200: VF 2 pings VF 3 (its own VLAN works)');
    t.ok(!(await ping(c, '10.56.0.1', 2)), 'VF 2 on VLAN 200 cannot reach VF 0 on VLAN 100');
    t.ok(!(await ping(a, '10.56.0.4', 2)), 'VF 0 on VLAN 100 cannot reach VF 3 on VLAN 200');
    void d;
  },
};
