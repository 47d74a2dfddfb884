/**
 * Runs a program the one executable carries as a SEA asset (the node daemon, the CLI): its bundle
 * `<name>.cjs` and, when V8 accepts it, the code cache `<name>.cjs.cache` the build made for it.
 *
 * Why assets rather than one bundle: the CNI is the SEA's main script, so a CNI call reads,
 * compiles and deserialises only its own 0.26 MB. With the daemon and the CLI in the same main
 * script (5 MB), every CNI call paid for building that source string and its code cache:
 * 1.4× the CPU and +12 MB RSS (docs/packaging.md, "One executable").
 *
 * The contract with scripts/build.mjs: the asset names, and the wrapper below (the code cache is
 * only valid for the exact source it was made from).
 */
import * as path from 'node:path';
import * as vm from 'node:vm';

/** Kept identical in scripts/build.mjs (PROGRAM_WRAPPER): the code cache is made for this text. */
export const WRAP_HEAD = '(function (exports, require, module, __filename, __dirname) {';
export const WRAP_TAIL = '\n})';

interface Sea {
  getAsset(key: string): ArrayBuffer;
  getAsset(key: string, encoding: string): string;
}

export function runProgramAsset(name: 'daemon' | 'cli'): void {
  const sea = require('node:sea') as Sea;
  const file = `${name}.cjs`;
  const source = sea.getAsset(file, 'utf8');
  let cachedData: Buffer | undefined;
  try {
    cachedData = Buffer.from(sea.getAsset(`${file}.cache`));
  } catch {
    cachedData = undefined; // built without one: V8 compiles lazily
  }
  const script = new vm.Script(WRAP_HEAD + source + WRAP_TAIL, { filename: file, ...(cachedData ? { cachedData } : {}) });
  const fn = script.runInThisContext() as (e: object, r: NodeJS.Require, m: { exports: object }, f: string, d: string) => void;
  const mod = { exports: {} };
  // The bundles require only built-in modules (npm packages are bundled in, the addon comes from
  // its own asset), which is all a SEA's require resolves.
  fn(mod.exports, require, mod, path.join(path.dirname(process.execPath), file), path.dirname(process.execPath));
}
