/**
 * What the real igb driver accepts and refuses PF-side, through iproute2. The CNI's error paths must
 * surface exactly these answers, so the facts are pinned here.
 */
import type { Scenario } from '../lib/scenario';
import { findPf, pfUp, setNumVfs, trySetVf, vfView, sleep } from '../lib/sriov';

export const scenario: Scenario = {
  async run({ t }) {
    const pf = await t.step('PF found', () => findPf());
    await t.step('2 VFs created', () => setNumVfs(pf, 2));

    t.equal(await trySetVf(pf, 0, 'vlan', '100', 'qos', '3'), '', 'vlan 100 qos 3 accepted');
    t.equal(await trySetVf(pf, 0, 'mac', '02:56:00:00:00:01'), '', 'mac accepted');
    t.equal(await trySetVf(pf, 0, 'spoofchk', 'off'), '', 'spoofchk off accepted');
    t.equal(await trySetVf(pf, 0, 'trust', 'on'), '', 'trust on accepted');
    const v = await vfView(pf, 0);
    t.equal([v.vlan, v.qos, v.mac, v.spoofchk, v.trust], [100, 3, '02:56:00:00:00:01', false, true], 'VF 0 reads back vlan, qos, mac, spoofchk, trust');
    const v1 = await vfView(pf, 1);
    t.equal([v1.vlan, v1.qos, v1.mac, v1.spoofchk, v1.trust], [0, 0, '00:00:00:00:00:00', true, false], 'VF 1 untouched');

    t.match(await trySetVf(pf, 0, 'min_tx_rate', '10'), /Invalid argument/, 'min_tx_rate refused with EINVAL');
    t.match(await trySetVf(pf, 0, 'state', 'enable'), /Operation not supported/, 'link state enable refused with EOPNOTSUPP');
    t.match(await trySetVf(pf, 0, 'state', 'disable'), /Operation not supported/, 'link state disable refused with EOPNOTSUPP');
    t.match(await trySetVf(pf, 0, 'max_tx_rate', '100'), /Invalid argument/, 'max_tx_rate refused with EINVAL while the PF link is down');
    const refused = await vfView(pf, 0);
    t.equal([refused.minTxRate, refused.maxTxRate, refused.linkState], [0, 0, 'auto'], 'refused settings left rates and link state unchanged');

    const tUp = Date.now();
    await t.step('PF up with carrier', () => pfUp(pf));
    t.comment(`carrier ${Date.now() - tUp} ms after up`);
    // The watchdog that records the link speed runs after carrier; allow it a few seconds.
    let err = 'not tried';
    for (let i = 0; i < 20 && err !== ''; i++) {
      err = await trySetVf(pf, 0, 'max_tx_rate', '100');
      if (err) await sleep(500);
    }
    t.equal(err, '', 'max_tx_rate 100 accepted once the PF has link');
    t.comment(`max_tx_rate accepted ${Date.now() - tUp} ms after up`);
    t.equal((await vfView(pf, 0)).maxTxRate, 100, 'max_tx_rate reads back 100');
    t.match(await trySetVf(pf, 0, 'max_tx_rate', '2000'), /Invalid argument/, 'max_tx_rate above the 1000 Mb/s link speed refused with EINVAL');
    t.equal((await vfView(pf, 0)).maxTxRate, 100, 'refused max_tx_rate left the rate at 100');
    t.match(await trySetVf(pf, 0, 'min_tx_rate', '10'), /Invalid argument/, 'min_tx_rate still refused with link up');

    t.equal(await trySetVf(pf, 0, 'vlan', '0'), '', 'vlan 0 accepted');
    t.equal(await trySetVf(pf, 0, 'max_tx_rate', '0'), '', 'max_tx_rate 0 accepted');
    const cleared = await vfView(pf, 0);
    t.equal([cleared.vlan, cleared.qos, cleared.maxTxRate], [0, 0, 0], 'vlan 0 clears vlan and qos; rate 0 clears the limit');
  },
};
