/**
 * Entry of the one Node executable (dist/bin/sriov-underlay-node; see exe/programs.ts for the
 * names and docs/packaging.md). The SEA's main script is this dispatcher and the standalone CNI,
 * loaded by a dynamic import that esbuild defers; the node daemon and the CLI are bundles of their
 * own carried as assets (exe/program-asset.ts), so the CNI path evaluates nothing of either and
 * compiles none of their source.
 */
import { runProgramAsset } from './program-asset';
import { chooseProgram } from './programs';

// argv[0] as the caller passed it keeps a link's name (a SEA's argv[0] is its resolved path);
// the executable's own path names a renamed copy.
const choice = chooseProgram([process.argv0, process.execPath], process.argv.slice(2));
// Each program reads its arguments from process.argv.slice(2), as it does when run on its own.
process.argv.splice(2, Infinity, ...choice.args);

if (choice.program === 'cni') void import('../cni/entry');
else runProgramAsset(choice.program);
