// Runs the fake API server's main.ts under plain node (bundled on the fly, see scripts/run-ts.mjs).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTs } from '../../../scripts/run-ts.mjs';

runTs(join(dirname(fileURLToPath(import.meta.url)), 'main.ts'), 'fake-apiserver-');
