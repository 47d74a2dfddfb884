// Runs main.ts under plain node: bundles it with esbuild (a dev dependency) into a temporary file.
import { buildSync } from 'esbuild';
import { mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(mkdtempSync(join(tmpdir(), 'fake-apiserver-')), 'main.cjs');
buildSync({ entryPoints: [join(here, 'main.ts')], bundle: true, platform: 'node', format: 'cjs', target: 'node20', outfile: out, logLevel: 'error' });
createRequire(import.meta.url)(out);
