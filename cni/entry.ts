/**
 * Process entry of the CNI executable. The single executable is built with a V8 startup snapshot:
 * every module below is already loaded and initialised in the snapshot, and only `run` executes at
 * start. Under plain node (tests, bundles) it simply runs.
 */
import * as v8 from 'node:v8';
import { run } from './main';

// Exit at once: the result and the logs are written synchronously, and tearing the runtime down
// gracefully costs the pod ~10 ms for nothing.
const start = () => void run().then((code) => process.exit(code));

if (v8.startupSnapshot.isBuildingSnapshot()) v8.startupSnapshot.setDeserializeMainFunction(start);
else start();
