/**
 * Process entry of the CNI executable (a single executable with a code cache, no startup snapshot:
 * see docs/packaging.md).
 */
import { run } from './main';

// Exit at once: the result and the logs are written synchronously, and tearing the runtime down
// gracefully costs the pod ~10 ms for nothing.
void run().then((code) => process.exit(code));
