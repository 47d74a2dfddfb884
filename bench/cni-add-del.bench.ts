/**
 * CNI ADD and DEL, ours against the Go reference, on identical work in the same run:
 * a VF netdev (a veth of an emulated NIC) is moved into a fresh netns, gets an IPv4 address and a
 * route from the `static` IPAM plugin, and DEL brings it home again.
 *
 * Reference: Debian's containernetworking-plugins `host-device` + `static`.
 * Ours: dist/bin/sriov-underlay (`npm run build`), resolving `deviceID` in a generated sysfs tree.
 * The two alternate cycle by cycle, so load from anything else on the machine hits both alike.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createEmulatedNic, type EmulatedNic } from '../test/fixtures/sysfs-tree';
import { cniInvocation, createNetns, deleteNetns, DEBIAN_CNI_PATH, inspectNetns, randomSuffix } from './lib/cni';
import { expectSuccess, runForPeakRss, runTimed, type Invocation } from './lib/process';
import { compareLine, fmt, measured, table, type Figure } from './lib/report';
import { summarize } from './lib/stats';

const ITERATIONS = 50;
const RSS_CYCLES = 5;
const IFNAME = 'net1';
const ADDRESS = '10.231.0.2/24';
const ROUTE = { dst: '10.232.0.0/16', gw: '10.231.0.1' };
const IPAM = { type: 'static', addresses: [{ address: ADDRESS }], routes: [ROUTE] };

const REPO = path.resolve(__dirname, '..', '..');
const OUR_BINARY = path.join(REPO, 'dist', 'bin', 'sriov-underlay-cni');
const REFERENCE_BINARY = path.join(DEBIAN_CNI_PATH, 'host-device');

interface Half {
  name: string;
  short: string;
  plugin: string;
  /** the VF's host netdev, which must be gone after ADD and back after DEL */
  hostIf: string;
  netconf: object;
  add: number[];
  del: number[];
  rss: number[];
}

const tag = `pk${randomSuffix(2)}`;
const created = new Set<string>();

function hostHas(ifname: string): boolean {
  return fs.existsSync(path.join('/sys/class/net', ifname));
}

function invocation(half: Half, command: 'ADD' | 'DEL', ns: string, containerId: string): Invocation {
  return cniInvocation({
    plugin: half.plugin,
    command,
    containerId,
    netns: `/var/run/netns/${ns}`,
    ifname: IFNAME,
    netconf: half.netconf,
  });
}

/** The ADD result must carry the address we asked for: a plugin that does nothing fails here. */
function checkAddResult(half: Half, stdout: string): void {
  const result = JSON.parse(stdout) as { ips?: { address?: string }[] };
  if (!result.ips?.some((ip) => ip.address === ADDRESS)) {
    throw new Error(`${half.name} ADD result lacks ${ADDRESS}: ${stdout.trim()}`);
  }
}

type Mode = 'verify' | 'time' | 'rss';

function cycle(half: Half, i: number, mode: Mode): void {
  const ns = `${tag}${half.short}${i}`;
  const containerId = `bench-${tag}-${half.short}-${i}`;
  createNetns(ns);
  created.add(ns);
  try {
    const add = invocation(half, 'ADD', ns, containerId);
    const del = invocation(half, 'DEL', ns, containerId);
    if (mode === 'rss') {
      const a = runForPeakRss(add);
      expectSuccess(`${half.name} ADD`, a);
      const d = runForPeakRss(del);
      expectSuccess(`${half.name} DEL`, d);
      half.rss.push(a.peakRssMb, d.peakRssMb);
    } else {
      const a = runTimed(add);
      expectSuccess(`${half.name} ADD`, a);
      checkAddResult(half, a.stdout);
      if (mode === 'verify') {
        const seen = inspectNetns(ns, IFNAME);
        if (!seen.addrs.includes(ADDRESS) || !seen.routes.includes(`${ROUTE.dst} via ${ROUTE.gw}`)) {
          throw new Error(`${half.name} ADD left ${IFNAME} in ${ns} with ${JSON.stringify(seen)}`);
        }
        if (hostHas(half.hostIf)) throw new Error(`${half.name} ADD left ${half.hostIf} on the host`);
      }
      const d = runTimed(del);
      expectSuccess(`${half.name} DEL`, d);
      if (mode === 'time') {
        half.add.push(a.ms);
        half.del.push(d.ms);
      }
    }
    if (!hostHas(half.hostIf)) throw new Error(`${half.name} DEL did not bring ${half.hostIf} home`);
  } finally {
    deleteNetns(ns);
    created.delete(ns);
  }
}

function debianVersion(pkg: string): string {
  try {
    return execFileSync('dpkg-query', ['-W', '-f', '${Version}', pkg], { encoding: 'utf8' }).trim();
  } catch {
    return 'version unknown';
  }
}

function figures(half: Half): { addP50: Figure; addP90: Figure; delP50: Figure; delP90: Figure; rss: Figure } {
  const add = summarize(half.add);
  const del = summarize(half.del);
  return {
    addP50: measured(`${half.name} ADD p50`, add.p50, 'ms'),
    addP90: measured(`${half.name} ADD p90`, add.p90, 'ms'),
    delP50: measured(`${half.name} DEL p50`, del.p50, 'ms'),
    delP90: measured(`${half.name} DEL p90`, del.p90, 'ms'),
    rss: measured(`${half.name} peak RSS`, Math.max(...half.rss), 'MB'),
  };
}

function main(): void {
  if (!fs.existsSync(REFERENCE_BINARY)) {
    throw new Error(`${REFERENCE_BINARY} missing: install Debian's containernetworking-plugins`);
  }
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `${tag}-sysfs-`));
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), `${tag}-state-`));
  let nic: EmulatedNic | undefined;
  try {
    nic = createEmulatedNic({ tag, root, pfs: 1, vfsPerPf: 2 });
    const [refVf, ourVf] = nic.pfs[0]?.vfs ?? [];
    if (!refVf?.netdev || !ourVf?.netdev) throw new Error('emulated NIC has no VF netdevs');
    const reference: Half = {
      name: 'reference',
      short: 'r',
      plugin: REFERENCE_BINARY,
      hostIf: refVf.netdev,
      netconf: { cniVersion: '1.0.0', name: 'bench', type: 'host-device', device: refVf.netdev, ipam: IPAM },
      add: [],
      del: [],
      rss: [],
    };
    const ours: Half | null = fs.existsSync(OUR_BINARY)
      ? {
          name: 'ours',
          short: 'o',
          plugin: OUR_BINARY,
          hostIf: ourVf.netdev,
          netconf: {
            cniVersion: '1.0.0',
            name: 'bench',
            type: 'sriov-underlay',
            deviceID: ourVf.pciAddr,
            sysfsRoot: root,
            stateDir,
            ipam: IPAM,
            // Identical work: host-device does no ARP probe (ours costs ~300 ms when on; docs/ipam.md).
            duplicateDetection: false,
          },
          add: [],
          del: [],
          rss: [],
        }
      : null;
    const halves = ours ? [reference, ours] : [reference];

    console.log(
      `cni-add-del: ${ITERATIONS} ADD+DEL cycles per plugin, alternating; a veth VF into a fresh netns ` +
        `with ${ADDRESS} and a route; peak RSS from ${RSS_CYCLES} more cycles under GNU time`,
    );
    console.log(`reference: host-device + static, Debian containernetworking-plugins ${debianVersion('containernetworking-plugins')}`);
    if (!ours) console.log(`ours: not built yet (${path.relative(REPO, OUR_BINARY)} missing; run npm run build) — no figures for it`);

    // One untimed cycle each: checks the work really happens, and warms caches alike for both.
    for (const h of halves) cycle(h, 0, 'verify');
    for (let i = 1; i <= ITERATIONS; i++) for (const h of halves) cycle(h, i, 'time');
    for (let i = 1; i <= RSS_CYCLES; i++) for (const h of halves) cycle(h, ITERATIONS + i, 'rss');

    const rows = halves.map((h) => {
      const f = figures(h);
      return [h.name === 'ours' ? 'ours (sriov-underlay)' : 'reference (host-device)', fmt(f.addP50), fmt(f.addP90), fmt(f.delP50), fmt(f.delP90), fmt(f.rss)];
    });
    console.log(table(['', 'ADD p50', 'ADD p90', 'DEL p50', 'DEL p90', 'peak RSS'], rows));
    if (ours) {
      const o = figures(ours);
      const r = figures(reference);
      console.log(compareLine('ADD p50', o.addP50, r.addP50, { maxRatio: 1.3 }));
      console.log(compareLine('ADD p90', o.addP90, r.addP90, { maxRatio: 1.3 }));
      console.log(compareLine('DEL p50', o.delP50, r.delP50));
      console.log(compareLine('DEL p90', o.delP90, r.delP90));
      console.log(compareLine('peak RSS', o.rss, r.rss, { max: 60 }));
    } else {
      console.log('goals (ours): ADD ≤ 1.3× reference, peak RSS ≤ 60 MB — not measurable until ours is built');
    }
  } finally {
    for (const ns of created) deleteNetns(ns);
    nic?.destroy();
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
}

main();
