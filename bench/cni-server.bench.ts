/**
 * The shim and the warm CNI server against Debian's Go host-device + static, on identical work in the
 * same run (docs/cni-server-protocol.md; issue "A thin CNI in front of a warm CNI server"):
 * a VF netdev (a veth of an emulated NIC) moves into a fresh netns with an IPv4 address and a route
 * from `static`, and DEL brings it home.
 *
 *   ours/server      dist/bin/sriov-underlay (the shim kubelet execs) → the running CNI server
 *                    (dist/bin/sriov-underlay-node --components=cni-server), warmed up first;
 *   ours/fallback    the shim with the server down: it execs the standalone beside it;
 *   ours/standalone  dist/bin/sriov-underlay-cni executed directly (the path before the shim);
 *   reference        /usr/lib/cni/host-device + static.
 * Duplicate-address detection off on both sides (host-device has none), and ours again with our
 * default (on: each IPv4 ADD listens 300 ms for an ARP answer). Sequential halves alternate cycle by
 * cycle so load from elsewhere hits them alike. The kernel's netns move alone (one RTM_NEWLINK, in
 * this process) is the floor. Peak memory is wait4's ru_maxrss of the process kubelet execs (GNU
 * time; the shim's alone, since the work is the server's). 32 parallel ADDs on 32 VFs into 32 netns:
 * wall time, and the peak memories of the 32 exec'd processes summed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Rtnl } from '../src/netlink';
import { openNetns, withNetns } from '../src/netns';
import { servedByInLog, startCniServer, type CniServer } from '../test/fixtures/cni-server-process';
import { createEmulatedNic, type EmulatedNic } from '../test/fixtures/sysfs-tree';
import { cniInvocation, createNetns, deleteNetns, DEBIAN_CNI_PATH, inspectNetns, randomSuffix } from './lib/cni';
import { expectSuccess, runForPeakRss, runParallel, runTimed, type Invocation } from './lib/process';
import { compareLine, fmt, measured, table, type Figure } from './lib/report';
import { summarize } from './lib/stats';

const ITERATIONS = 40;
const DAD_ITERATIONS = 12;
/** Cycles of the warm server with logLevel debug, for the per-step breakdown (cni/step-times.ts); untimed. */
const STEP_ITERATIONS = 15;
const RSS_CYCLES = 5;
const PARALLEL = 32;
const IFNAME = 'net1';
const ADDRESS = '10.233.0.2/24';
const ROUTE = { dst: '10.234.0.0/16', gw: '10.233.0.1' };
const IPAM = { type: 'static', addresses: [{ address: ADDRESS }], routes: [ROUTE] };
/** 2 MiB, the goal for the process kubelet execs, in the report's MB. */
const SHIM_RSS_GOAL_MB = (2 * 1024 * 1024) / 1e6;

const REPO = path.resolve(__dirname, '..', '..');
const SHIM = path.join(REPO, 'dist', 'bin', 'sriov-underlay');
const STANDALONE = path.join(REPO, 'dist', 'bin', 'sriov-underlay-cni');
const NODE = path.join(REPO, 'dist', 'bin', 'sriov-underlay-node');
const HOST_DEVICE = path.join(DEBIAN_CNI_PATH, 'host-device');

const tag = `ps${randomSuffix(2)}`;
const netnses = new Set<string>();

interface Vf {
  netdev: string;
  pci: string;
}

interface Half {
  name: string;
  short: string;
  plugin: string;
  env: Record<string, string>;
  netconf: (vf: Vf) => object;
  /** The served-by marker every call of this half must leave in its log (null: not ours). */
  servedBy: string | null;
  logFile: string | null;
  add: number[];
  del: number[];
  rss: number[];
}

const hostHas = (ifname: string) => fs.existsSync(path.join('/sys/class/net', ifname));

function netns(name: string): string {
  netnses.add(name);
  return createNetns(name);
}
function dropNetns(name: string): void {
  deleteNetns(name);
  netnses.delete(name);
}

function invocation(h: Half, command: 'ADD' | 'DEL', vf: Vf, ns: string, containerId: string): Invocation {
  return cniInvocation({ plugin: h.plugin, command, containerId, netns: `/var/run/netns/${ns}`, ifname: IFNAME, netconf: h.netconf(vf), env: h.env });
}

function checkAdd(h: Half, stdout: string): void {
  const r = JSON.parse(stdout) as { ips?: { address?: string }[] };
  if (!r.ips?.some((ip) => ip.address === ADDRESS)) throw new Error(`${h.name} ADD result lacks ${ADDRESS}: ${stdout.trim()}`);
}

type Mode = 'verify' | 'time' | 'rss';

function cycle(h: Half, vf: Vf, i: number, mode: Mode): void {
  const ns = `${tag}${h.short}${i}`;
  netns(ns);
  try {
    const add = invocation(h, 'ADD', vf, ns, `bench-${tag}-${h.short}-${i}`);
    const del = invocation(h, 'DEL', vf, ns, `bench-${tag}-${h.short}-${i}`);
    if (mode === 'rss') {
      const a = runForPeakRss(add);
      expectSuccess(`${h.name} ADD`, a);
      const d = runForPeakRss(del);
      expectSuccess(`${h.name} DEL`, d);
      h.rss.push(a.peakRssMb, d.peakRssMb);
    } else {
      const marks = h.logFile ? servedByInLog(h.logFile).length : 0;
      const a = runTimed(add);
      expectSuccess(`${h.name} ADD`, a);
      checkAdd(h, a.stdout);
      if (mode === 'verify') {
        const seen = inspectNetns(ns, IFNAME);
        if (!seen.addrs.includes(ADDRESS) || !seen.routes.includes(`${ROUTE.dst} via ${ROUTE.gw}`)) throw new Error(`${h.name} ADD left ${JSON.stringify(seen)} in ${ns}`);
        if (hostHas(vf.netdev)) throw new Error(`${h.name} ADD left ${vf.netdev} on the host`);
      }
      const d = runTimed(del);
      expectSuccess(`${h.name} DEL`, d);
      if (mode === 'verify' && h.logFile && h.servedBy) {
        // A misconfigured bench (no shim, a dead server) must not print the wrong path's figures.
        const got = servedByInLog(h.logFile).slice(marks);
        if (got.length === 0 || got.some((m) => m !== h.servedBy)) throw new Error(`${h.name}: calls served by ${[...new Set(got)].join(', ') || 'nothing marked'}, expected ${h.servedBy}`);
      }
      if (mode === 'time') {
        h.add.push(a.ms);
        h.del.push(d.ms);
      }
    }
    if (!hostHas(vf.netdev)) throw new Error(`${h.name} DEL did not bring ${vf.netdev} home`);
  } finally {
    dropNetns(ns);
  }
}

/** The kernel's netns move alone: one RTM_NEWLINK in this process, there and back, `n` times. */
function netnsMoveMs(vf: Vf, n: number): number[] {
  const ns = `${tag}mv`;
  const nsPath = netns(ns);
  const nsFd = openNetns(nsPath);
  const homeFd = openNetns('/proc/self/ns/net');
  const rt = Rtnl.open();
  const out: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const index = rt.getLink(vf.netdev)?.index;
      if (index === undefined) throw new Error(`${vf.netdev} is not on the host`);
      const t0 = process.hrtime.bigint();
      rt.setLink(index, { netnsFd: nsFd });
      out.push(Number(process.hrtime.bigint() - t0) / 1e6);
      withNetns(nsFd, () => {
        const there = Rtnl.open();
        try {
          const l = there.getLink(vf.netdev);
          if (!l) throw new Error(`${vf.netdev} did not arrive in ${ns}`);
          there.setLink(l.index, { netnsFd: homeFd });
        } finally {
          there.close();
        }
      });
    }
  } finally {
    rt.close();
    fs.closeSync(nsFd);
    fs.closeSync(homeFd);
    dropNetns(ns);
  }
  return out;
}

interface ParallelFigures {
  wall: Figure;
  rssSum: Figure;
  /** Which path served the 32 ADDs of each round (a starved server makes shims fall back). */
  served: string;
}

/** 32 ADDs at once, each its own VF and netns; then 32 DELs at once. Twice: timed, then under GNU time. */
async function parallel(h: Half, vfs: Vf[]): Promise<ParallelFigures> {
  const run = async (round: string, rss: boolean) => {
    const nss = vfs.map((_, i) => `${tag}${h.short}${round}${i}`);
    nss.forEach((n) => netns(n));
    try {
      const adds = await runParallel(vfs.map((vf, i) => invocation(h, 'ADD', vf, nss[i] as string, `par-${tag}-${h.short}${round}-${i}`)), rss);
      adds.outcomes.forEach((o, i) => expectSuccess(`${h.name} parallel ADD ${i}`, o));
      adds.outcomes.forEach((o) => checkAdd(h, o.stdout));
      const dels = await runParallel(vfs.map((vf, i) => invocation(h, 'DEL', vf, nss[i] as string, `par-${tag}-${h.short}${round}-${i}`)));
      dels.outcomes.forEach((o, i) => expectSuccess(`${h.name} parallel DEL ${i}`, o));
      for (const vf of vfs) if (!hostHas(vf.netdev)) throw new Error(`${h.name} parallel DEL did not bring ${vf.netdev} home`);
      const paths = new Map<string, number>();
      if (h.logFile) {
        for (let i = 0; i < vfs.length; i++) {
          const m = [...new Set(servedByInLog(h.logFile, { container: `par-${tag}-${h.short}${round}-${i}`, cmd: 'ADD' }))].join('+') || 'unmarked';
          paths.set(m, (paths.get(m) ?? 0) + 1);
        }
      }
      return { ...adds, served: [...paths].map(([k, n]) => `${k} ${n}`).join(', ') };
    } finally {
      nss.forEach(dropNetns);
    }
  };
  const timed = await run('t', false);
  const mem = await run('m', true);
  return {
    wall: measured(`${h.name} ${vfs.length} parallel ADDs, wall`, timed.wallMs, 'ms'),
    rssSum: measured(`${h.name} ${vfs.length} parallel ADDs, summed peak RSS`, mem.peakRssMb.reduce((a, b) => a + b, 0), 'MB'),
    served: `timed round: ${timed.served || 'not ours'}; memory round: ${mem.served || 'not ours'}`,
  };
}

/** Median per step of the "<cmd> step times" lines in a half's log, with the shim's wall time beside them. */
function stepBreakdown(h: Half, cmd: 'ADD' | 'DEL'): string {
  const per = new Map<string, number[]>();
  const totals: number[] = [];
  for (const line of fs.readFileSync(h.logFile as string, 'utf8').split('\n')) {
    if (!line.includes(`"${cmd} step times"`)) continue;
    const j = JSON.parse(line) as { steps: Record<string, number>; totalMs: number };
    totals.push(j.totalMs);
    for (const [k, v] of Object.entries(j.steps)) per.set(k, [...(per.get(k) ?? []), v]);
  }
  if (!totals.length) throw new Error(`${h.name}: no "${cmd} step times" lines in ${h.logFile}`);
  const wall = summarize(cmd === 'ADD' ? h.add : h.del).p50;
  const rows = [...per].map(([k, v]) => [k, `${summarize(v).p50.toFixed(2)} ms`]);
  rows.push(['in runCni (total)', `${summarize(totals).p50.toFixed(2)} ms`], ['shim wall time', `${wall.toFixed(2)} ms`]);
  return `${cmd}:\n${table(['step', 'p50'], rows)}`;
}

function p50(label: string, samples: number[]): Figure {
  return measured(label, summarize(samples).p50, 'ms');
}

async function main(): Promise<void> {
  if (!fs.existsSync(HOST_DEVICE)) throw new Error(`${HOST_DEVICE} missing: install Debian's containernetworking-plugins`);
  const missing = [SHIM, STANDALONE, NODE].filter((b) => !fs.existsSync(b));
  if (missing.length) {
    console.log(`cni-server: not built yet (${missing.map((b) => path.relative(REPO, b)).join(', ')} missing; run npm run build) — no figures`);
    return;
  }
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `${tag}-sysfs-`));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `${tag}-work-`));
  let nic: EmulatedNic | undefined;
  let server: CniServer | undefined;
  try {
    // 5 sequential halves + the netns move + 2 x 32 parallel.
    nic = createEmulatedNic({ tag, root, pfs: 1, vfsPerPf: 6 + 2 * PARALLEL });
    const vfs: Vf[] = (nic.pfs[0]?.vfs ?? []).map((v) => ({ netdev: v.netdev as string, pci: v.pciAddr }));
    server = await startCniServer({ socket: path.join(work, 'run', 'cni.sock'), logFile: path.join(work, 'server.log'), bin: NODE });
    const socketEnv = { SRIOV_UNDERLAY_CNI_SOCKET: server.socket };
    const downEnv = { SRIOV_UNDERLAY_CNI_SOCKET: path.join(work, 'no-server', 'cni.sock') };
    const ours = (name: string, short: string, plugin: string, env: Record<string, string>, servedBy: string | null, dad: boolean, logLevel = 'info'): Half => {
      const logFile = path.join(work, `${short}.log`);
      return {
        name,
        short,
        plugin,
        env,
        servedBy,
        logFile,
        // Every call logs (at info) its served-by marker; the bench checks it on the verify cycle.
        netconf: (vf) => ({ cniVersion: '1.0.0', name: 'bench', type: 'sriov-underlay', deviceID: vf.pci, sysfsRoot: root, stateDir: path.join(work, 'state'), logFile, logLevel, ipam: IPAM, duplicateDetection: dad }),
        add: [],
        del: [],
        rss: [],
      };
    };
    const reference: Half = {
      name: 'reference (host-device)',
      short: 'r',
      plugin: HOST_DEVICE,
      env: {},
      servedBy: null,
      logFile: null,
      netconf: (vf) => ({ cniVersion: '1.0.0', name: 'bench', type: 'host-device', device: vf.netdev, ipam: IPAM }),
      add: [],
      del: [],
      rss: [],
    };
    const srv = ours('ours, server', 's', SHIM, socketEnv, 'server', false);
    const fallback = ours('ours, fallback', 'f', SHIM, downEnv, 'fallback:no-socket', false);
    const standalone = ours('ours, standalone', 'a', STANDALONE, downEnv, null, false);
    const srvDad = ours('ours, server, DAD on', 'd', SHIM, socketEnv, 'server', true);
    const halves: [Half, Vf][] = [reference, srv, fallback, standalone].map((h, i) => [h, vfs[i] as Vf]);
    const dadHalf: [Half, Vf] = [srvDad, vfs[4] as Vf];

    console.log(
      `cni-server: ${ITERATIONS} ADD+DEL cycles per half, alternating (${DAD_ITERATIONS} with DAD on); a veth VF into a fresh netns with ${ADDRESS} and a route; ` +
        `peak RSS from ${RSS_CYCLES} more cycles under GNU time; ${PARALLEL} parallel ADDs; load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    );
    // Untimed: checks the work and the path (served-by), and warms the server and caches alike.
    for (const [h, vf] of [...halves, dadHalf]) for (let w = 0; w < 3; w++) cycle(h, vf, w, w === 0 ? 'verify' : 'time');
    for (const [h] of [...halves, dadHalf]) {
      h.add.length = 0;
      h.del.length = 0;
    }
    for (let i = 1; i <= ITERATIONS; i++) for (const [h, vf] of halves) cycle(h, vf, 10 + i, 'time');
    for (let i = 1; i <= DAD_ITERATIONS; i++) cycle(...dadHalf, 100 + i, 'time');
    for (let i = 1; i <= RSS_CYCLES; i++) for (const [h, vf] of [...halves, dadHalf]) cycle(h, vf, 200 + i, 'rss');
    const move = p50('kernel netns move alone p50', netnsMoveMs(vfs[5] as Vf, ITERATIONS));
    // Apart from the timed halves (debug logging costs a little): where a warm server call's time goes.
    const stepHalf = ours('ours, server, step times', 'p', SHIM, socketEnv, 'server', false, 'debug');
    for (let i = 1; i <= STEP_ITERATIONS; i++) cycle(stepHalf, vfs[1] as Vf, 300 + i, 'time');

    const parVfs = vfs.slice(6);
    const parRef = await parallel(reference, parVfs.slice(0, PARALLEL));
    const parSrv = await parallel(srv, parVfs.slice(PARALLEL, 2 * PARALLEL));

    const rows = [...halves, dadHalf].map(([h]) => {
      const a = summarize(h.add);
      const d = summarize(h.del);
      return [h.name, `${a.p50.toFixed(1)} ms`, `${a.p90.toFixed(1)} ms`, `${d.p50.toFixed(1)} ms`, `${d.p90.toFixed(1)} ms`, `${Math.max(...h.rss).toFixed(2)} MB`];
    });
    console.log(table(['', 'ADD p50', 'ADD p90', 'DEL p50', 'DEL p90', 'peak RSS (exec\'d process)'], rows));
    console.log(`kernel's netns move alone (one RTM_NEWLINK, in-process): p50 ${fmt(move)}`);
    console.log(`\nwarm server, where a call's time goes (p50 of ${STEP_ITERATIONS} calls with logLevel debug; the rest of the shim's wall time is its exec, the socket and the server's read and reply):`);
    for (const cmd of ['ADD', 'DEL'] as const) console.log(stepBreakdown(stepHalf, cmd));

    const f = (h: Half) => ({
      add: p50(`${h.name} ADD p50`, h.add),
      del: p50(`${h.name} DEL p50`, h.del),
      rss: measured(`${h.name} peak RSS`, Math.max(...h.rss), 'MB'),
    });
    const r = f(reference);
    const s = f(srv);
    const fb = f(fallback);
    const sa = f(standalone);
    const dad = f(srvDad);
    console.log('\nwarm server vs Go host-device + static (DAD off on both):');
    console.log(compareLine('ADD p50', s.add, r.add, { maxRatio: 0.8 }));
    console.log(compareLine('DEL p50', s.del, r.del, { maxRatio: 0.8 }));
    console.log(compareLine('exec\'d RSS', s.rss, r.rss, { max: Number(SHIM_RSS_GOAL_MB.toFixed(2)) }));
    console.log(`ADD p50 − the netns move alone: ${(s.add.value - move.value).toFixed(1)} ms (stretch goal ≤ 5 ms: ${s.add.value - move.value <= 5 ? 'met' : 'MISSED'})`);
    console.log('\nour default (DAD on) vs Go host-device + static (which has none):');
    console.log(compareLine('ADD p50', dad.add, r.add));
    console.log(compareLine('DEL p50', dad.del, r.del));
    console.log(`\n${PARALLEL} parallel ADDs on ${PARALLEL} VFs, server vs Go:`);
    console.log(compareLine('wall', parSrv.wall, parRef.wall, { maxRatio: 0.8 }));
    console.log(compareLine('sum peak RSS', parSrv.rssSum, parRef.rssSum, { maxRatio: 1 }));
    console.log(`served by (ours): ${parSrv.served}`);
    console.log('\nserver down: the shim\'s fallback vs the standalone executed directly (today\'s path):');
    console.log(compareLine('ADD p50', fb.add, sa.add, { maxRatio: 1.05 }));
    console.log(compareLine('DEL p50', fb.del, sa.del));
    console.log(compareLine('peak RSS', fb.rss, sa.rss));
    console.log(`load average at the end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    await server?.stop();
    for (const n of [...netnses]) dropNetns(n);
    nic?.destroy();
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack ?? e.message : String(e));
  process.exit(1);
});
