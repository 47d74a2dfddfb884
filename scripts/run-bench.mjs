#!/usr/bin/env node
/**
 * Runs every bench/*.bench.ts one after another and lets each print its own figures.
 *
 * Usage: node scripts/run-bench.mjs [name-filter...]   (npm run bench -- cni)
 *
 * Each bench is bundled by esbuild into dist/.bench/<name>.cjs (npm packages stay external and
 * resolve from the repository's node_modules), then run by node. Benchmarks run sequentially: they
 * measure time, and the machine has few cores.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BENCH_DIR = path.join(ROOT, 'bench');
const OUT_DIR = path.join(ROOT, 'dist', '.bench');

const filters = process.argv.slice(2);
const benches = fs
  .readdirSync(BENCH_DIR)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (benches.length === 0) {
  process.stderr.write(`run-bench: no bench/*.bench.ts${filters.length ? ` matching ${filters.join(', ')}` : ''}\n`);
  process.exit(1);
}

// Start-up figures must not include NODE_EXTRA_CA_CERTS loading: kubelet's environment lacks it.
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;

fs.mkdirSync(OUT_DIR, { recursive: true });
const failed = [];
for (const file of benches) {
  const name = file.replace(/\.bench\.ts$/, '');
  const outfile = path.join(OUT_DIR, `${name}.cjs`);
  process.stdout.write(`\n== ${name}\n`);
  try {
    await esbuild.build({
      entryPoints: [path.join(BENCH_DIR, file)],
      outfile,
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      packages: 'external',
      keepNames: true,
      logLevel: 'warning',
    });
  } catch (err) {
    process.stdout.write(`${name}: could not bundle: ${err.message}\n`);
    failed.push(name);
    continue;
  }
  const r = spawnSync(process.execPath, [outfile], { cwd: ROOT, env, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) {
    process.stdout.write(`${name}: FAILED (${r.signal ? `signal ${r.signal}` : `exit ${r.status}`})\n`);
    failed.push(name);
  }
}
process.stdout.write(`\n${benches.length - failed.length} of ${benches.length} benchmarks ran${failed.length ? `; failed: ${failed.join(', ')}` : ''}\n`);
process.exit(failed.length ? 1 : 0);
