/**
 * Does the one executable cost the standalone CNI anything? The CNI as shipped (dist/bin/
 * sriov-underlay-cni, a link to the multi-call dist/bin/sriov-underlay-node, whose bundle holds the
 * daemon and the CLI too) against the CNI built alone from cni/entry.ts (test-only target
 * `cni-alone`, built here if missing), alternating call by call in one run:
 *   VERSION (start-up only), and an ADD+DEL cycle of a VF (a veth of an emulated NIC) into a fresh
 *   netns with the `static` IPAM plugin, and peak RSS of each call.
 * Goal: the multi-call CNI no slower than the CNI alone (ratio ≤ 1.05 at p50, within noise).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createEmulatedNic, type EmulatedNic } from '../test/fixtures/sysfs-tree';
import { cniInvocation, createNetns, deleteNetns, randomSuffix } from './lib/cni';
import { expectSuccess, runForPeakRss, runTimed } from './lib/process';
import { compareLine, fmt, measured, table } from './lib/report';
import { summarize } from './lib/stats';

const ITERATIONS = 40;
const RSS_RUNS = 3;
const REPO = path.resolve(__dirname, '..', '..');
const MULTICALL = path.join(REPO, 'dist', 'bin', 'sriov-underlay-cni');
const ALONE = path.join(REPO, 'dist', 'test', 'cni-alone');
const IPAM = { type: 'static', addresses: [{ address: '10.233.0.2/24' }] };

interface Subject {
  name: string;
  plugin: string;
  vf: { netdev: string; pciAddr: string };
  version: number[];
  add: number[];
  del: number[];
  rss: number[];
}

const tag = `ox${randomSuffix(2)}`;

function main(): void {
  if (!fs.existsSync(MULTICALL)) {
    console.log(`one-executable: ${path.relative(REPO, MULTICALL)} not built yet (npm run build) — no figures`);
    return;
  }
  // Incremental: rebuilt only when cni/ or the addon changed.
  execFileSync(process.execPath, [path.join(REPO, 'scripts', 'build.mjs'), '--only', 'cni-alone'], { cwd: REPO, stdio: 'ignore' });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `${tag}-sysfs-`));
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), `${tag}-state-`));
  let nic: EmulatedNic | undefined;
  const netns = new Set<string>();
  try {
    nic = createEmulatedNic({ tag, root, pfs: 1, vfsPerPf: 2 });
    const vfs = nic.pfs[0]?.vfs ?? [];
    const subject = (name: string, plugin: string, i: number): Subject => {
      const vf = vfs[i];
      if (!vf?.netdev) throw new Error('emulated NIC has no VF netdevs');
      return { name, plugin, vf: { netdev: vf.netdev, pciAddr: vf.pciAddr }, version: [], add: [], del: [], rss: [] };
    };
    const subjects = [subject('CNI alone (cni-alone)', ALONE, 0), subject('multi-call (sriov-underlay-cni)', MULTICALL, 1)];
    const netconf = (s: Subject) => ({ cniVersion: '1.0.0', name: 'bench', type: 'sriov-underlay', deviceID: s.vf.pciAddr, sysfsRoot: root, stateDir, ipam: IPAM, duplicateDetection: false });
    const call = (s: Subject, command: 'VERSION' | 'ADD' | 'DEL', ns: string) =>
      cniInvocation({ plugin: s.plugin, command, containerId: `bench-${ns}`, netns: ns ? `/var/run/netns/${ns}` : '', ifname: 'net1', netconf: command === 'VERSION' ? { cniVersion: '1.0.0' } : netconf(s) });

    console.log(`one-executable: ${ITERATIONS} VERSION calls and ${ITERATIONS} ADD+DEL cycles per executable, alternating; NODE_EXTRA_CA_CERTS ${process.env.NODE_EXTRA_CA_CERTS ? 'SET (figures include it)' : 'unset'}`);
    console.log(`sizes: multi-call ${(fs.statSync(MULTICALL).size / 1e6).toFixed(1)} MB, CNI alone ${(fs.statSync(ALONE).size / 1e6).toFixed(1)} MB`);
    for (let i = 0; i <= ITERATIONS + RSS_RUNS; i++) {
      for (const s of subjects) {
        const rssRun = i > ITERATIONS;
        const v = rssRun ? runForPeakRss(call(s, 'VERSION', '')) : runTimed(call(s, 'VERSION', ''));
        expectSuccess(`${s.name} VERSION`, v);
        if (!JSON.parse(v.stdout).supportedVersions) throw new Error(`${s.name} VERSION: ${v.stdout}`);
        const ns = `${tag}${s === subjects[0] ? 'a' : 'm'}${i}`;
        createNetns(ns);
        netns.add(ns);
        const a = rssRun ? runForPeakRss(call(s, 'ADD', ns)) : runTimed(call(s, 'ADD', ns));
        expectSuccess(`${s.name} ADD`, a);
        if (!a.stdout.includes('10.233.0.2/24')) throw new Error(`${s.name} ADD result lacks the address: ${a.stdout}`);
        const d = rssRun ? runForPeakRss(call(s, 'DEL', ns)) : runTimed(call(s, 'DEL', ns));
        expectSuccess(`${s.name} DEL`, d);
        if (!fs.existsSync(path.join('/sys/class/net', s.vf.netdev))) throw new Error(`${s.name} DEL did not bring ${s.vf.netdev} home`);
        deleteNetns(ns);
        netns.delete(ns);
        if (i === 0) continue; // one untimed warm-up round
        if (rssRun) s.rss.push(...[v, a, d].map((o) => (o as { peakRssMb: number }).peakRssMb));
        else {
          s.version.push((v as { ms: number }).ms);
          s.add.push((a as { ms: number }).ms);
          s.del.push((d as { ms: number }).ms);
        }
      }
    }
    const figs = subjects.map((s) => ({
      version: measured(`${s.name} VERSION p50`, summarize(s.version).p50, 'ms'),
      add: measured(`${s.name} ADD p50`, summarize(s.add).p50, 'ms'),
      del: measured(`${s.name} DEL p50`, summarize(s.del).p50, 'ms'),
      rss: measured(`${s.name} peak RSS`, Math.max(...s.rss), 'MB'),
    }));
    console.log(table(['', 'VERSION p50', 'ADD p50', 'DEL p50', 'peak RSS'], subjects.map((s, i) => [s.name, fmt(figs[i]!.version), fmt(figs[i]!.add), fmt(figs[i]!.del), fmt(figs[i]!.rss)])));
    const [alone, multi] = figs as [(typeof figs)[0], (typeof figs)[0]];
    console.log(compareLine('VERSION p50', multi.version, alone.version, { maxRatio: 1.05 }));
    console.log(compareLine('ADD p50', multi.add, alone.add, { maxRatio: 1.05 }));
    console.log(compareLine('DEL p50', multi.del, alone.del, { maxRatio: 1.05 }));
    console.log(compareLine('peak RSS', multi.rss, alone.rss, { maxRatio: 1.05 }));
  } finally {
    for (const ns of netns) deleteNetns(ns);
    nic?.destroy();
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
}

main();
