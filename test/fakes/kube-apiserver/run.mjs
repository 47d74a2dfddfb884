// Runs main.ts under plain node: bundles it with esbuild (a dev dependency) into a temporary file.
import { buildSync } from 'esbuild';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'fake-apiserver-'));
const out = join(dir, 'main.cjs');
buildSync({ entryPoints: [join(here, 'main.ts')], bundle: true, platform: 'node', format: 'cjs', target: 'node20', outfile: out, logLevel: 'error' });
try {
  createRequire(import.meta.url)(out);
} finally {
  // The module is loaded; the bundle file is no longer needed.
  rmSync(dir, { recursive: true, force: true });
}
