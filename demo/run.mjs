// Runs demo/main.ts under plain node: bundles it with esbuild (a dev dependency) into a temporary
// file, the way test/fakes/kube-apiserver/run.mjs does.
import { buildSync } from 'esbuild';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
process.env.SRIOV_DEMO_REPO = resolve(here, '..');
const dir = mkdtempSync(join(tmpdir(), 'sriov-demo-'));
const out = join(dir, 'main.cjs');
buildSync({ entryPoints: [join(here, 'main.ts')], bundle: true, platform: 'node', format: 'cjs', target: 'node20', outfile: out, logLevel: 'error' });
try {
  createRequire(import.meta.url)(out);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
