/**
 * What loading the native addon from an unnamed inode (src/native.ts loadAddonBytes: O_TMPFILE,
 * write, dlopen /proc/self/fd/N, at every start) costs a fresh process, against the reference of
 * dlopen'ing an already extracted file by name (what the executables did before, reusing
 * /run/sriov-underlay/sriov_native-<crc>-<size>.node). Each sample is a new node process that
 * times only its load, so page cache and dynamic linker state are those of a real start.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadAddonBytes } from '../src/native';
import { compareLine, fmt, measured, table } from './lib/report';
import { summarize } from './lib/stats';

const RUNS = 60;
const REPO = path.resolve(__dirname, '..', '..');
const ADDON = path.join(REPO, 'native', 'build', 'Release', 'sriov_native.node');

type Variant = 'unnamed' | 'named';

/** In the child: load once, print the milliseconds it took. */
function child(variant: Variant, arg: string): void {
  // A single executable has the bytes mapped already (getRawAsset): reading them is not timed.
  const bytes = variant === 'unnamed' ? fs.readFileSync(ADDON) : undefined;
  const t = process.hrtime.bigint();
  let setns: unknown;
  if (bytes) {
    setns = loadAddonBytes<{ setns: unknown }>(bytes, [arg]).setns;
  } else {
    fs.statSync(arg); // the old fast path: a stat, then dlopen by name
    const mod = { exports: {} as { setns?: unknown } };
    process.dlopen(mod, arg);
    setns = mod.exports.setns;
  }
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (typeof setns !== 'function') throw new Error('addon did not load');
  process.stdout.write(`${ms}\n`);
}

function main(): void {
  if (!fs.existsSync(ADDON)) {
    console.log(`addon-load: ${path.relative(REPO, ADDON)} missing (npm run build:native) — no figures`);
    return;
  }
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'addon-load-'));
  try {
    const named = path.join(scratch, 'sriov_native-extracted.node');
    fs.copyFileSync(ADDON, named);
    // /dev/shm: the tmpfs a real start would use (/run on a node).
    const args: Record<Variant, string> = { unnamed: '/dev/shm', named };
    const ms: Record<Variant, number[]> = { unnamed: [], named: [] };
    const once = (v: Variant) => {
      const r = spawnSync(process.execPath, [__filename, '--child', v, args[v]], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${v}: ${r.stderr}`);
      return Number(r.stdout.trim());
    };
    once('unnamed');
    once('named');
    for (let i = 0; i < RUNS; i++) {
      ms.unnamed.push(once('unnamed'));
      ms.named.push(once('named'));
    }
    const f = (v: Variant, label: string) => {
      const s = summarize(ms[v]);
      return { label, p50: measured(`${label} p50`, s.p50, 'ms'), p90: measured(`${label} p90`, s.p90, 'ms') };
    };
    const ours = f('unnamed', 'ours (O_TMPFILE + dlopen /proc/self/fd)');
    const ref = f('named', 'reference (dlopen of an extracted file)');
    console.log(`addon-load: ${RUNS} fresh processes each, alternating; addon ${fs.statSync(ADDON).size} bytes`);
    console.log(table(['', 'p50', 'p90'], [ours, ref].map((x) => [x.label, fmt(x.p50), fmt(x.p90)])));
    console.log(compareLine('load p50', ours.p50, ref.p50));
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') child(process.argv[3] as Variant, process.argv[4]!);
else main();
