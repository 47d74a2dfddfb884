// Device plugin benchmarks: bundles bench/device-plugin.bench.ts and the daemon entry, then runs
// the bench. Usage: node bench/device-plugin.mjs
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'dist', 'bench');
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { 'device-plugin-bench': path.join(root, 'bench/device-plugin.bench.ts'), 'device-plugin-daemon': path.join(root, 'device-plugin/main.ts') },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  outdir: out,
  logLevel: 'error',
});
// NODE_EXTRA_CA_CERTS costs ~48 ms per node start here and is irrelevant to us.
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;
execFileSync(process.execPath, [path.join(out, 'device-plugin-bench.js'), path.join(out, 'device-plugin-daemon.js')], { env, stdio: 'inherit' });
