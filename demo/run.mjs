// Runs demo/main.ts under plain node (bundled on the fly, see scripts/run-ts.mjs).
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTs } from '../scripts/run-ts.mjs';

const here = dirname(fileURLToPath(import.meta.url));
process.env.SRIOV_DEMO_REPO = resolve(here, '..');
runTs(join(here, 'main.ts'), 'sriov-demo-');
