/**
 * Process entry of the standalone CNI executable (a single executable with a code cache, no
 * startup snapshot: see docs/packaging.md). The only place the CNI touches the process: it reads
 * the environment and fd 0, writes fd 1 and exits; everything between is cni/main.ts's runCni,
 * which the CNI server runs too.
 */
import * as fs from 'node:fs';
import { runCni } from './main';

function readStdin(): Buffer {
  try {
    return fs.readFileSync(0);
  } catch {
    return Buffer.alloc(0);
  }
}

// Exit at once: the result and the logs are written synchronously, and tearing the runtime down
// gracefully costs the pod ~10 ms for nothing.
void runCni({ env: process.env, stdin: readStdin() }).then(({ stdout, exitCode }) => {
  for (let off = 0; off < stdout.length; ) off += fs.writeSync(1, stdout, off);
  process.exit(exitCode);
});
