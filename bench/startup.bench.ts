/**
 * Start-up cost of our single executable, the pod's wait before any work begins: CNI VERSION, which
 * does no work, against the Go reference plugin doing the same, and against the bare (stripped) node
 * binary the executable is built from, which is the floor a Node program cannot go below.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cniInvocation, DEBIAN_CNI_PATH } from './lib/cni';
import { expectSuccess, runForPeakRss, runTimed, type Invocation } from './lib/process';
import { compareLine, fmt, measured, table } from './lib/report';
import { summarize } from './lib/stats';

const ITERATIONS = 40;
const RSS_RUNS = 3;
const REPO = path.resolve(__dirname, '..', '..');
const OUR_BINARY = path.join(REPO, 'dist', 'bin', 'sriov-underlay-cni');
const BARE_NODE = path.join(REPO, 'dist', '.build', 'node-stripped');

interface Subject {
  name: string;
  inv: Invocation;
  /** a run that proves the program really answered */
  check?: (stdout: string) => void;
  ms: number[];
  rss: number[];
}

function version(plugin: string): Invocation {
  return cniInvocation({
    plugin,
    command: 'VERSION',
    containerId: '',
    netns: '',
    ifname: '',
    netconf: { cniVersion: '1.0.0' },
  });
}

function checkVersionReply(stdout: string): void {
  const reply = JSON.parse(stdout) as { supportedVersions?: unknown };
  if (!Array.isArray(reply.supportedVersions)) throw new Error(`VERSION reply lacks supportedVersions: ${stdout}`);
}

function main(): void {
  const reference: Subject = {
    name: 'reference (host-device VERSION)',
    inv: version(path.join(DEBIAN_CNI_PATH, 'host-device')),
    check: checkVersionReply,
    ms: [],
    rss: [],
  };
  const subjects: Subject[] = [reference];
  const ours: Subject | null = fs.existsSync(OUR_BINARY)
    ? { name: 'ours (sriov-underlay VERSION)', inv: version(OUR_BINARY), check: checkVersionReply, ms: [], rss: [] }
    : null;
  if (ours) subjects.push(ours);
  if (fs.existsSync(BARE_NODE)) {
    subjects.push({ name: 'floor (stripped node -e 0)', inv: { file: BARE_NODE, args: ['-e', '0'], env: { PATH: '/usr/bin:/bin' } }, ms: [], rss: [] });
  }

  console.log(`startup: ${ITERATIONS} runs each, alternating; peak RSS from ${RSS_RUNS} more runs under GNU time`);
  if (!ours) console.log(`ours: not built yet (${path.relative(REPO, OUR_BINARY)} missing; run npm run build) — no figures for it`);

  for (const s of subjects) {
    const first = runTimed(s.inv); // untimed warm-up: page cache, and the addon extraction if any
    expectSuccess(s.name, first);
    s.check?.(first.stdout);
  }
  for (let i = 0; i < ITERATIONS; i++) {
    for (const s of subjects) {
      const r = runTimed(s.inv);
      expectSuccess(s.name, r);
      s.ms.push(r.ms);
    }
  }
  for (let i = 0; i < RSS_RUNS; i++) {
    for (const s of subjects) {
      const r = runForPeakRss(s.inv);
      expectSuccess(s.name, r);
      s.rss.push(r.peakRssMb);
    }
  }

  const fig = (s: Subject) => {
    const t = summarize(s.ms);
    return {
      p50: measured(`${s.name} p50`, t.p50, 'ms'),
      p90: measured(`${s.name} p90`, t.p90, 'ms'),
      p99: measured(`${s.name} p99`, t.p99, 'ms'),
      rss: measured(`${s.name} peak RSS`, Math.max(...s.rss), 'MB'),
    };
  };
  console.log(
    table(
      ['', 'p50', 'p90', 'p99', 'peak RSS'],
      subjects.map((s) => {
        const f = fig(s);
        return [s.name, fmt(f.p50), fmt(f.p90), fmt(f.p99), fmt(f.rss)];
      }),
    ),
  );
  if (ours) {
    const o = fig(ours);
    const r = fig(reference);
    console.log(compareLine('start p50', o.p50, r.p50));
    console.log(compareLine('peak RSS', o.rss, r.rss, { max: 60 }));
  }
}

main();
