#!/usr/bin/env node
/**
 * Builds the node daemon, the CLI and the standalone CNI into one self-contained executable, with
 * the other names as links to it (see docs/packaging.md):
 *   esbuild bundle (cjs, node20) → Node single-executable blob (code cache + the native addon as an
 *   asset) → postject into a stripped copy of the running node binary → program headers placed
 *   where older kernels look for them (elf-phdr.mjs).
 *
 * Usage: node scripts/build.mjs [--only name[,name...]]
 *
 * Incremental: a target is re-injected only when its bundle, the addon or the node binary changed
 * (a content stamp per target under dist/.build). Quiet: one line per target, tool output only on
 * failure.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as vm from 'node:vm';
import { placePhdrForEveryLoader } from './elf-phdr.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WORK = path.join(ROOT, 'dist', '.build');
/** The SEA asset name is the contract with src/native.ts. */
const ADDON_ASSET = 'sriov_native.node';
const ADDON = path.join(ROOT, 'native', 'build', 'Release', 'sriov_native.node');
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
/** Any change to this script (steps, options, asset name) or its ELF step invalidates every stamp. */
const SELF = Buffer.concat([fileURLToPath(import.meta.url), fileURLToPath(new URL('./elf-phdr.mjs', import.meta.url))].map((f) => fs.readFileSync(f)));

/**
 * testOnly targets are built only when --only names them. links: names in the same directory that
 * are symbolic links to the target (exe/programs.ts dispatches on the name it was invoked as);
 * `--only` accepts them as aliases of their target.
 */
const TARGETS = [
  // No V8 startup snapshot for any target: a snapshot carries V8's flag hash, which includes the
  // build CPU's features, and node exits 14 on any other CPU. The code cache is checked the same
  // way but rejected gracefully (the bundle is then compiled lazily), so it is what ships.
  // The CNI kubelet executes is the C shim (native/cni-shim.c, docs/cni-server-protocol.md); it
  // forwards to the node daemon's CNI server, and execs the standalone CNI beside it when the server
  // cannot take the call, so building the shim builds that too (the one executable's link).
  { name: 'sriov-underlay', shim: 'native/cni-shim.c', out: 'dist/bin/sriov-underlay', with: ['sriov-underlay-node'] },
  // One executable for the node daemon, the CLI and the standalone CNI (docs/packaging.md).
  // Its main script is the dispatcher with the standalone CNI; the daemon and the CLI are bundles
  // carried as assets with a code cache each (exe/program-asset.ts says why).
  {
    name: 'sriov-underlay-node',
    entry: 'exe/main.ts',
    out: 'dist/bin/sriov-underlay-node',
    links: ['kubectl-sriov', 'sriov-underlay-cni'],
    programs: { daemon: 'node/entry.ts', cli: 'cli/main.ts' },
  },
  { name: 'sea-probe', entry: 'test/fixtures/sea-probe.ts', out: 'dist/test/sea-probe', testOnly: true },
  // The standalone CNI built on its own, as releases before the one executable shipped it: the
  // reference of bench/one-executable.bench.ts.
  { name: 'cni-alone', entry: 'cni/entry.ts', out: 'dist/test/cni-alone', testOnly: true },
];

class BuildError extends Error {}

function parseArgs(argv) {
  const only = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--only') {
      const v = argv[++i];
      if (!v) throw new BuildError('--only needs a target name');
      only.push(...v.split(','));
    } else if (a.startsWith('--only=')) {
      only.push(...a.slice('--only='.length).split(','));
    } else if (a === '--help' || a === '-h') {
      return { help: true, only };
    } else {
      throw new BuildError(`unknown argument ${a} (usage: node scripts/build.mjs [--only name[,name...]])`);
    }
  }
  return { help: false, only: only.filter(Boolean) };
}

function selectTargets(only) {
  if (only.length === 0) return TARGETS.filter((t) => !t.testOnly);
  const owner = (n) => TARGETS.find((t) => t.name === n || t.links?.includes(n));
  const unknown = only.filter((n) => !owner(n));
  if (unknown.length) {
    const known = TARGETS.flatMap((t) => [t.name, ...(t.links ?? [])]);
    throw new BuildError(`unknown target ${unknown.join(', ')}; targets: ${known.join(', ')}`);
  }
  // Building the shim builds the executable it falls back to.
  const wanted = new Set(only.map(owner));
  for (const t of [...wanted]) for (const w of t.with ?? []) wanted.add(owner(w));
  return TARGETS.filter((t) => wanted.has(t));
}

/**
 * Each link is a relative symbolic link to the target in the same directory, made under a temp
 * name and renamed over whatever is there (an executable an older build left under that name is
 * replaced, never written through).
 */
function placeLinks(target) {
  const out = path.join(ROOT, target.out);
  for (const name of target.links ?? []) {
    const link = path.join(path.dirname(out), name);
    const want = path.basename(out);
    let have = null;
    try {
      have = fs.readlinkSync(link);
    } catch {
      // absent, or not a link
    }
    if (have === want) continue;
    const tmp = `${link}.${process.pid}.tmp`;
    fs.rmSync(tmp, { force: true });
    fs.symlinkSync(want, tmp);
    fs.renameSync(tmp, link);
  }
}

/**
 * An output is up to date when its stamp (a hash of every input) matches and the file is the one
 * that stamp was written for (same size and mtime: nobody replaced it since).
 */
function upToDate(out, stampFile, stamp) {
  const outStat = fs.statSync(out, { throwIfNoEntry: false });
  let prev = null;
  try {
    prev = JSON.parse(fs.readFileSync(stampFile, 'utf8'));
  } catch {
    // first build
  }
  if (outStat && prev && prev.stamp === stamp && prev.size === outStat.size && prev.mtimeMs === outStat.mtimeMs) {
    return { out, size: outStat.size, rebuilt: false };
  }
  return null;
}

function writeStamp(stampFile, stamp, st) {
  fs.writeFileSync(stampFile, JSON.stringify({ stamp, size: st.size, mtimeMs: st.mtimeMs }));
}

/**
 * The shim: portable (no -march), hardened, and static-pie, so it needs no shared library and no
 * glibc newer than any node supports. The figures it is compiled with are its own (see its header).
 */
const SHIM_CFLAGS = [
  '-std=gnu11', '-O2', '-Wall', '-Wextra', '-Werror', '-Wformat=2', '-Wshadow',
  '-D_FORTIFY_SOURCE=2', '-fstack-protector-strong', '-fstack-clash-protection', '-fcf-protection',
  '-fPIE', '-static-pie', '-Wl,-z,relro,-z,now,-z,noexecstack', '-s',
];

function buildShim(target) {
  const src = path.join(ROOT, target.shim);
  const out = path.join(ROOT, target.out);
  const stampFile = path.join(WORK, `${target.name}.stamp`);
  const gcc = run('gcc', ['--version']).split('\n')[0];
  const stamp = sha256(JSON.stringify({ script: sha256(SELF), src: sha256(fs.readFileSync(src)), flags: SHIM_CFLAGS, gcc }));
  const fresh = upToDate(out, stampFile, stamp);
  if (fresh) return fresh;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    run('gcc', [...SHIM_CFLAGS, '-o', tmp, src]);
    // A shared library would bring back a glibc floor and a loader; refuse one slipping in.
    const needed = run('objdump', ['-p', tmp]).split('\n').filter((l) => /^\s*NEEDED\s/.test(l));
    if (needed.length) throw new BuildError(`${target.name}: the shim must be static, it needs ${needed.map((l) => l.trim()).join(', ')}`);
    fs.chmodSync(tmp, 0o755);
    fs.renameSync(tmp, out);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  const st = fs.statSync(out);
  writeStamp(stampFile, stamp, st);
  return { out, size: st.size, rebuilt: true };
}

const sha256 = (data) => createHash('sha256').update(data).digest('hex');
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

/** Identity of the node binary the blob is made with: the blob only runs inside that exact node. */
function nodeIdentity() {
  const st = fs.statSync(process.execPath);
  return `${process.execPath}:${process.version}:${st.size}:${st.mtimeMs}`;
}

/** A stripped copy of the running node (debug symbols are ~12 MB we never use), cached. */
function strippedNode() {
  const out = path.join(WORK, 'node-stripped');
  const stamp = `${out}.stamp`;
  const id = nodeIdentity();
  if (fs.existsSync(out) && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === id) return out;
  const tmp = `${out}.${process.pid}.tmp`;
  run('strip', ['--strip-all', '-o', tmp, process.execPath]);
  fs.renameSync(tmp, out);
  fs.writeFileSync(stamp, id);
  return out;
}

/** Highest GLIBC_x.y symbol version a binary needs, with the symbols that need it. */
function glibcFloor(file) {
  let floor = [0, 0];
  let symbols = [];
  for (const line of run('objdump', ['-T', file]).split('\n')) {
    const m = /\*UND\*\s+\S+\s+(?:\(?GLIBC_(\d+)\.(\d+)[.\d]*\)?)\s+(\S+)$/.exec(line);
    if (!m) continue;
    const v = [Number(m[1]), Number(m[2])];
    const cmp = v[0] - floor[0] || v[1] - floor[1];
    if (cmp > 0) [floor, symbols] = [v, [m[3]]];
    else if (cmp === 0) symbols.push(m[3]);
  }
  return { version: floor.join('.'), floor, symbols };
}

/**
 * The addon is compiled against the build machine's glibc: a symbol newer than any the node binary
 * needs would make it fail to load on hosts node itself supports. Refuse to ship that.
 */
function checkAddonGlibc() {
  const addon = glibcFloor(ADDON);
  // node's floor is cached per node binary: its symbol table takes objdump about 2 s.
  const cache = path.join(WORK, 'node-glibc.json');
  let node;
  try {
    const c = JSON.parse(fs.readFileSync(cache, 'utf8'));
    if (c.id === nodeIdentity()) node = c.floor;
  } catch {
    // not cached yet
  }
  if (!node) {
    node = glibcFloor(process.execPath);
    fs.mkdirSync(WORK, { recursive: true });
    fs.writeFileSync(cache, JSON.stringify({ id: nodeIdentity(), floor: node }));
  }
  if (addon.floor[0] > node.floor[0] || (addon.floor[0] === node.floor[0] && addon.floor[1] > node.floor[1])) {
    throw new BuildError(
      `native addon needs glibc ${addon.version} (${addon.symbols.join(', ')}) but node needs only ${node.version}: ` +
        `it would not load on every host node supports; use an older interface in native/sriov_native.c`,
    );
  }
}

/** Run a tool, keeping its output unless it fails. */
function run(cmd, args, cwd = ROOT) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 << 20 });
  if (r.error) throw new BuildError(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new BuildError(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
  }
  return r.stdout;
}

/**
 * postject's ELF parser (LIEF, compiled to wasm) prints harmless warnings about the stripped
 * binary's note sections through console.warn/log; show them only if the injection fails.
 */
async function quietly(fn) {
  const saved = { log: console.log, warn: console.warn, error: console.error };
  const lines = [];
  console.log = console.warn = console.error = (...a) => lines.push(a.join(' '));
  try {
    return await fn();
  } catch (err) {
    throw new BuildError(`postject failed: ${err?.message ?? err}\n${lines.join('\n')}`);
  } finally {
    Object.assign(console, saved);
  }
}

/**
 * Dependencies probe for optional modules with `try { require('x') } catch {}` (node-fetch's
 * `encoding`, ws's `bufferutil`...). esbuild leaves such a require as it is when x is not installed,
 * and inside a SEA that require makes node print a warning on stderr at start-up. Those requires
 * get a stub that throws MODULE_NOT_FOUND, which is exactly what plain node does, minus the warning.
 * Only require() calls from node_modules are stubbed: an unresolvable import in our code still
 * fails the build.
 */
const optionalRequireStub = {
  name: 'optional-require-stub',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.kind !== 'require-call' || args.pluginData?.probing) return undefined;
      if (!args.importer.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
      const found = await build.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: { probing: true },
      });
      if (found.errors.length === 0) return undefined;
      return { path: args.path, namespace: 'optional-require-stub' };
    });
    build.onLoad({ filter: /.*/, namespace: 'optional-require-stub' }, (args) => ({
      contents: `throw Object.assign(new Error(${JSON.stringify(`Cannot find module '${args.path}' (not installed, not bundled)`)}), { code: 'MODULE_NOT_FOUND' });`,
      loader: 'js',
    }));
  },
};

async function bundle(esbuild, target) {
  const result = await esbuild.build({
    entryPoints: [path.join(ROOT, target.entry)],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    // Readable stack traces: no identifier mangling, and class/function names survive bundling.
    keepNames: true,
    // Whitespace only: the node daemon's bundle goes from 9.1 to 4.9 MB, and a single executable
    // holds its source twice in memory (the mapped blob and V8's copy). Stack traces keep their
    // names; their line:column point into long lines.
    minifyWhitespace: true,
    legalComments: 'none',
    write: false,
    outfile: path.join(WORK, `${target.name}.cjs`),
    logLevel: 'silent',
    plugins: [optionalRequireStub],
  });
  for (const w of result.warnings) process.stderr.write(`  ${target.name}: esbuild warning: ${w.text}\n`);
  const file = result.outputFiles[0];
  if (!file) throw new BuildError(`${target.name}: esbuild produced no output`);
  return { path: file.path, contents: Buffer.from(file.contents) };
}

/** Kept identical to exe/program-asset.ts: a code cache is only valid for the exact source. */
const PROGRAM_WRAPPER = ['(function (exports, require, module, __filename, __dirname) {', '\n})'];

/**
 * The programs a target carries as assets: each bundle and its V8 code cache, made by this very
 * node (the blob only runs inside it), compiled the way exe/program-asset.ts compiles it.
 */
async function programAssets(esbuild, target) {
  const assets = {};
  for (const [name, entry] of Object.entries(target.programs ?? {})) {
    const b = await bundle(esbuild, { name: `${target.name}.${name}`, entry });
    const file = `${name}.cjs`;
    const script = new vm.Script(PROGRAM_WRAPPER[0] + b.contents.toString('utf8') + PROGRAM_WRAPPER[1], { filename: file });
    assets[file] = b.contents;
    assets[`${file}.cache`] = script.createCachedData();
  }
  return assets;
}

async function buildTarget(esbuild, inject, target, addonBytes) {
  const bundled = await bundle(esbuild, target);
  const programs = await programAssets(esbuild, target);
  const out = path.join(ROOT, target.out);
  const stampFile = path.join(WORK, `${target.name}.stamp`);
  const stamp = sha256(
    JSON.stringify({
      script: sha256(SELF),
      bundle: sha256(bundled.contents),
      // The bundles only: a code cache's bytes may differ from one run to the next.
      programs: Object.entries(programs).filter(([k]) => k.endsWith('.cjs')).map(([k, v]) => [k, sha256(v)]),
      addon: sha256(addonBytes),
      node: nodeIdentity(),
    }),
  );
  const fresh = upToDate(out, stampFile, stamp);
  if (fresh) return fresh;

  // Only rewrite the bundle when it changed, so its mtime means something to anyone watching.
  if (!fs.existsSync(bundled.path) || !fs.readFileSync(bundled.path).equals(bundled.contents)) {
    fs.writeFileSync(bundled.path, bundled.contents);
  }
  const assetFiles = {};
  for (const [k, v] of Object.entries(programs)) {
    assetFiles[k] = path.join(WORK, `${target.name}.${k}`);
    fs.writeFileSync(assetFiles[k], v);
  }
  const blob = path.join(WORK, `${target.name}.blob`);
  const seaConfig = path.join(WORK, `${target.name}.sea-config.json`);
  fs.writeFileSync(
    seaConfig,
    JSON.stringify(
      {
        // Relative, from WORK: node stores this path in the blob as the script's name (stack
        // traces show it), and the build tree's absolute path has no business on a node.
        main: path.basename(bundled.path),
        output: blob,
        useCodeCache: true,
        disableExperimentalSEAWarning: true,
        assets: { [ADDON_ASSET]: ADDON, ...assetFiles },
      },
      null,
      2,
    ),
  );
  run(process.execPath, ['--experimental-sea-config', seaConfig], WORK);

  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  fs.copyFileSync(strippedNode(), tmp);
  try {
    await quietly(() => inject(tmp, 'NODE_SEA_BLOB', fs.readFileSync(blob), { sentinelFuse: SEA_FUSE }));
    placePhdrForEveryLoader(tmp);
    fs.chmodSync(tmp, 0o755);
    fs.renameSync(tmp, out); // atomic: a running copy of the old binary is never half-overwritten
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  const st = fs.statSync(out);
  writeStamp(stampFile, stamp, st);
  return { out, size: st.size, rebuilt: true };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    process.stdout.write(
      `usage: node scripts/build.mjs [--only name[,name...]]\ntargets:\n${TARGETS.map(
        (t) => `  ${t.name.padEnd(20)} ${t.shim ?? t.entry} -> ${t.out}${t.testOnly ? ' (test only)' : ''}${t.links ? `; links: ${t.links.join(', ')}` : ''}`,
      ).join('\n')}\n`,
    );
    return;
  }
  const targets = selectTargets(args.only);
  const source = (t) => path.join(ROOT, t.shim ?? t.entry);
  const missing = targets.filter((t) => !fs.existsSync(source(t)));
  if (missing.length) {
    const present = TARGETS.filter((t) => !t.testOnly && fs.existsSync(source(t))).map((t) => t.name);
    throw new BuildError(
      `entry file missing for ${missing.map((t) => `${t.name} (${t.shim ?? t.entry})`).join(', ')}` +
        (present.length ? `; to build the others: node scripts/build.mjs --only ${present.join(',')}` : ''),
    );
  }
  if (!fs.existsSync(ADDON)) {
    throw new BuildError(`native addon ${path.relative(ROOT, ADDON)} missing: run \`npm run build:native\` first`);
  }
  checkAddonGlibc();
  const addonBytes = fs.readFileSync(ADDON);
  fs.mkdirSync(WORK, { recursive: true });

  const esbuild = await import('esbuild');
  const { inject } = await import('postject');
  for (const t of targets) {
    const started = process.hrtime.bigint();
    const r = t.shim ? buildShim(t) : await buildTarget(esbuild, inject, t, addonBytes);
    placeLinks(t);
    const secs = (Number(process.hrtime.bigint() - started) / 1e9).toFixed(1);
    process.stdout.write(
      `${t.name.padEnd(20)} ${mb(r.size).padStart(9)}  ${path.relative(process.cwd(), r.out)}  ` +
        `${r.rebuilt ? `built in ${secs}s` : 'up to date'}\n`,
    );
    for (const l of t.links ?? []) process.stdout.write(`${l.padEnd(20)} ${'link'.padStart(9)}  ${path.relative(process.cwd(), path.join(path.dirname(r.out), l))} -> ${path.basename(r.out)}\n`);
  }
}

main().catch((err) => {
  process.stderr.write(`build: ${err instanceof BuildError ? err.message : (err?.stack ?? err)}\n`);
  process.exit(1);
});
