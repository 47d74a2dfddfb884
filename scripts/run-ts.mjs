// Run a TypeScript entry under plain node: bundle it with esbuild (a dev dependency) into a
// temporary file, load it, and remove the file (once loaded, the module no longer needs it).
import { buildSync } from 'esbuild';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function runTs(entry, tmpPrefix = 'sriov-underlay-run-') {
  const dir = mkdtempSync(join(tmpdir(), tmpPrefix));
  const out = join(dir, 'main.cjs');
  buildSync({ entryPoints: [entry], bundle: true, platform: 'node', format: 'cjs', target: 'node20', outfile: out, logLevel: 'error' });
  try {
    createRequire(import.meta.url)(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
