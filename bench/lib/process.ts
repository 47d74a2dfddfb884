/**
 * Running a child process the way a benchmark needs: timed, or under GNU time for its peak RSS.
 *
 * Why GNU time (`/usr/bin/time -f %M`) and not /proc polling: a CNI plugin lives 2–30 ms, so a
 * poller sees it a few times at best and misses the peak, or misses the process entirely. GNU time
 * reads ru_maxrss from wait4(), the kernel's own high-water mark, which is exact however short the
 * process. wait4 folds in the peak of the descendants the child waited for, so the figure is the
 * largest single process of the plugin's tree (e.g. the plugin or the IPAM plugin it delegates to).
 * The wrapper adds its own fork/exec, so peak RSS is measured in separate runs from the timings.
 */
import { spawn as spawnAsync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const GNU_TIME = '/usr/bin/time';

export interface Invocation {
  file: string;
  args?: string[];
  /** The complete environment: nothing is inherited, as with kubelet or a container runtime. */
  env: Record<string, string>;
  stdin?: string;
}

export interface Outcome {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface TimedOutcome extends Outcome {
  ms: number;
}

function spawn(file: string, args: string[], inv: Invocation): Outcome {
  const r = spawnSync(file, args, {
    env: inv.env,
    input: inv.stdin ?? '',
    encoding: 'utf8',
    maxBuffer: 16 << 20,
  });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Wall-clock time from spawn to exit, as seen by the caller (spawn overhead included, alike for all). */
export function runTimed(inv: Invocation): TimedOutcome {
  const start = process.hrtime.bigint();
  const out = spawn(inv.file, inv.args ?? [], inv);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  return { ...out, ms };
}

export interface RssOutcome extends Outcome {
  /** Peak resident set size in MB (10^6 bytes) */
  peakRssMb: number;
}

export function runForPeakRss(inv: Invocation): RssOutcome {
  if (!fs.existsSync(GNU_TIME)) {
    throw new Error(`${GNU_TIME} not found: install Debian's "time" package (GNU time) to measure peak RSS`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-rss-'));
  const report = path.join(dir, 'rss');
  try {
    const out = spawn(GNU_TIME, ['-f', '%M', '-o', report, inv.file, ...(inv.args ?? [])], inv);
    const kb = Number.parseInt(fs.readFileSync(report, 'utf8').trim().split('\n').pop() ?? '', 10);
    if (!Number.isFinite(kb)) throw new Error(`GNU time wrote no max RSS for ${inv.file}`);
    return { ...out, peakRssMb: (kb * 1024) / 1e6 };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Throw with everything the process said when it did not exit 0. */
export function expectSuccess(what: string, out: Outcome): void {
  if (out.status === 0) return;
  throw new Error(
    `${what} failed (${out.signal ? `signal ${out.signal}` : `exit ${out.status}`})\n` +
      `stdout: ${out.stdout.trim() || '(empty)'}\nstderr: ${out.stderr.trim() || '(empty)'}`,
  );
}

export interface ParallelOutcome {
  /** From the first spawn to the last exit. */
  wallMs: number;
  outcomes: Outcome[];
  /** Per process (with `rss`): its ru_maxrss from wait4 (GNU time), in MB. */
  peakRssMb: number[];
}

/**
 * Start every invocation at once (as kubelet does when a node boots with many pods) and wait for all.
 * With `rss`, each runs under GNU time for its peak RSS (a separate run from the timed one: the
 * wrapper's own fork/exec would be in the wall time).
 */
export function runParallel(invs: Invocation[], rss = false): Promise<ParallelOutcome> {
  const dir = rss ? fs.mkdtempSync(path.join(os.tmpdir(), 'bench-prss-')) : '';
  const start = process.hrtime.bigint();
  const runs = invs.map(
    (inv, i) =>
      new Promise<Outcome>((resolve, reject) => {
        const [file, args] = rss ? [GNU_TIME, ['-f', '%M', '-o', path.join(dir, `${i}`), inv.file, ...(inv.args ?? [])]] : [inv.file, inv.args ?? []];
        const child = spawnAsync(file, args, { env: inv.env, stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        child.stdin.on('error', () => {});
        child.stdin.end(inv.stdin ?? '');
        child.on('error', reject);
        child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
      }),
  );
  return Promise.all(runs)
    .then((outcomes) => {
      const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
      const peakRssMb = rss
        ? invs.map((_, i) => {
            const kb = Number.parseInt(fs.readFileSync(path.join(dir, `${i}`), 'utf8').trim().split('\n').pop() ?? '', 10);
            if (!Number.isFinite(kb)) throw new Error(`GNU time wrote no max RSS for ${invs[i]?.file}`);
            return (kb * 1024) / 1e6;
          })
        : [];
      return { wallMs, outcomes, peakRssMb };
    })
    .finally(() => {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });
}
