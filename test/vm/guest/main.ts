/**
 * The guest-side runner (PID 1's child, chrooted into the host userland). Reads the job run.sh wrote
 * into the results share, and for each scenario: resets the VM, runs the scenario in its own node
 * process with a timeout, and appends its result lines to results.tap (which the host tails).
 */
import { spawn } from 'node:child_process';
import { appendFileSync, createWriteStream, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { IP, run } from '../lib/sh';
import { findPf, setNumVfs } from '../lib/sriov';
import type { Scenario } from '../lib/scenario';

interface Job {
  project: string;
  out: string;
  /** cniMode: the CNI matrix's mode for this run of a CNI scenario (server | fallback). */
  scenarios: { name: string; file: string; cniMode?: string }[];
}

const job = JSON.parse(readFileSync(process.env.VM_JOB ?? '/run/vmout/job.json', 'utf8')) as Job;
const results = join(job.out, 'results.tap');
const emit = (line: string): void => {
  appendFileSync(results, line + '\n');
  process.stdout.write(line + '\n');
};

/** Back to a clean VM: no netns, no VFs, PF down, no dummy netdevs. */
async function reset(): Promise<void> {
  await run(IP, ['-all', 'netns', 'delete']);
  rmSync('/run/vmtest', { recursive: true, force: true }); // scenario state (CNI stateDir)
  const pf = findPf();
  await setNumVfs(pf, 0);
  await run(IP, ['link', 'set', 'dev', pf, 'down']);
  // Scenarios create dummies to take names; drop every one left behind.
  const r = await run(IP, ['-j', 'link', 'show', 'type', 'dummy']);
  for (const l of JSON.parse(r.stdout || '[]') as { ifname: string }[]) await run(IP, ['link', 'del', 'dev', l.ifname]);
}

function runOne(name: string, file: string, timeoutSec: number, cniMode?: string): Promise<string | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(__dirname, 'run-one.js'), file], {
      env: { ...process.env, VM_PROJECT: job.project, VM_OUT: job.out, ...(cniMode ? { SRIOV_UNDERLAY_TEST_CNI: cniMode } : {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stderr.pipe(createWriteStream(join(job.out, `${name}.stderr.log`)));
    let passed = 0;
    let failed = 0;
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.startsWith('ok ')) passed++;
      else if (line.startsWith('not ok ')) failed++;
      emit(line);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutSec * 1000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) resolve(`timed out after ${timeoutSec}s`);
      else if (signal) resolve(`killed by ${signal}`);
      // run-one exits 1 only after printing a failing line; anything else is a crash.
      else if (code === 1 && failed > 0) resolve(null);
      else if (code !== 0) resolve(`crashed with exit ${code} (see ${name}.stderr.log)`);
      else if (passed === 0) resolve('reported no assertion');
      else resolve(null);
    });
  });
}

async function main(): Promise<void> {
  emit(`# guest: kernel ${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}, node ${process.version}, up ${readFileSync('/proc/uptime', 'utf8').split(' ')[0]}s`);
  for (const { name: base, file, cniMode } of job.scenarios) {
    const name = cniMode ? `${base}[${cniMode}]` : base;
    const t0 = Date.now();
    try {
      await reset();
    } catch (err) {
      emit(`not ok - ${name}: reset before the scenario: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    const { scenario } = require(file) as { scenario: Scenario };
    const problem = await runOne(name, file, scenario.timeoutSec ?? 150, cniMode);
    if (problem) emit(`not ok - ${name}: ${problem}`);
    emit(`# ${name}: ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  }
  emit('# guest done');
}

main().catch((err) => {
  emit(`not ok - guest runner: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  emit('# guest done');
});
