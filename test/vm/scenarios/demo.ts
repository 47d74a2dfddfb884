// vm-requires: dist/bin/sriov-underlay-cni
// vm-requires: dist/bin/sriov-underlay-node
/**
 * `npm run demo -- --vm`: the same demo (demo/flow.ts) on real SR-IOV VFs, the 82576's igb PF and
 * igbvf VFs, with the full settings of configmaps/ (real VLANs, max_tx_rate, spoofchk, trust) except
 * min_tx_rate, which igb refuses. Both networks share the one PF, so VLAN isolation is the NIC's.
 * Also a scenario of the whole VM tier: it fails unless every step of the demo passes.
 */
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfigMaps, poolsFor, withoutMinRates } from '../../../demo/configmaps';
import { runDemo, type Platform } from '../../../demo/flow';
import { Teardown } from '../../../demo/teardown';
import type { Scenario } from '../lib/scenario';
import { ping } from '../lib/netns';
import { ip } from '../lib/sh';
import { findPf, pfPci, pfUp, setNumVfs, vfLines } from '../lib/sriov';

export const scenario: Scenario = {
  timeoutSec: 600,
  async run({ t, project, outDir, defer }) {
    const pf = await t.step('an igb PF netdev exists', () => findPf());
    await t.step('PF up with carrier (max_tx_rate needs the link)', () => pfUp(pf));
    const vfs = await t.step('6 VFs', () => setNumVfs(pf, 6));
    // The fake API server listens on 127.0.0.1: the guest's loopback must be up.
    await t.step('loopback up', () => ip('link', 'set', 'lo', 'up'));
    const workDir = '/run/demo';
    rmSync(workDir, { recursive: true, force: true });
    mkdirSync(workDir, { recursive: true });
    const teardown = new Teardown();
    defer(async () => {
      const failures = await teardown.run();
      t.equal(failures, [], 'teardown: daemon, fake kubelet and fake API stopped, pod netns deleted');
      cpSync(join(workDir, 'logs'), join(outDir, 'logs'), { recursive: true });
    });

    const cms = loadConfigMaps(project);
    const vm = withoutMinRates(cms);
    // One PF here: VLAN 100's pool takes VFs 0-3 (as on ens1f0), VLAN 200's the rest (the example's
    // second port, 0000:01:00.1, does not exist in this VM).
    const pools = poolsFor(cms, { pfNames: { ens1f0: pf }, rootDevices: { '0000:01:00.1': `${pfPci(pf)}#4-5` } });
    const platform: Platform = {
      mode: 'vm',
      repo: project,
      tag: 'dmvm',
      workDir,
      sysfsRoot: '/sys',
      networks: vm.networks,
      registrations: vm.registrations,
      pools: cms.pools,
      poolsText: pools.text,
      registered: { networks: vm.networks, registrations: vm.registrations },
      notes: [
        ...(vm.note ? [vm.note] : []),
        `real SR-IOV: ${pf} (${pfPci(pf)}, igb) with ${vfs.length} igbvf VFs; both networks on this one PF, VLANs set per VF by the PF`,
        `pool selectors name the example card's ports; here they are: ${pools.changes.join(', ')}`,
      ],
      enforcement: { vlan: 'PF', qos: 'PF', explain: `VM mode: VLAN, rates, spoofchk and trust are applied by the igb PF for each VF and read back (its VF lines below).` },
      cniPath: '/usr/lib/cni',
      ip: (...args) => ip(...args),
      ping: (ns, addr) => ping(ns, addr, 2),
      vfLines: (p) => vfLines(p).then((l) => l.filter(Boolean)),
    };
    const summary = await t.step('the demo ran to the end', () => runDemo(platform, (line) => t.comment(line || ' '), teardown));
    t.equal(summary.pods, 3, 'three pods scheduled (Allocate + CNI ADD)');
    // The CNI matrix: every ADD and DEL was served by the path this run chose.
    const want = process.env.SRIOV_UNDERLAY_TEST_CNI === 'fallback' ? 'fallback:no-socket' : 'server';
    t.equal(summary.servedBy, Array(6).fill(want), `the 3 ADDs and 3 DELs went through the shim, served by ${want}`);
    t.equal(summary.reachable, 2, 'app-a and app-b (VLAN 100) reach each other');
    t.equal(summary.isolated, 2, 'app-c (VLAN 200) reaches neither, even with an address in their subnet');
    for (const v of summary.vfLines) {
      const want = [v.vlan ? `vlan ${v.vlan}` : null, v.maxTxRateMbps ? `max_tx_rate ${v.maxTxRateMbps}Mbps` : null].filter((x): x is string => x !== null);
      t.ok(v.line !== undefined && want.every((w) => v.line!.includes(w)), `${v.pod}: the PF's VF line shows ${want.join(' and ')}`, v.line ?? 'no VF line');
    }
    t.equal(summary.vfLines.length, 3, 'a VF line for each pod');
    t.equal(summary.restored, summary.vfs, `every VF (${summary.vfs}) restored: netdev name, MAC, MTU and the PF's VF line`);
  },
};
