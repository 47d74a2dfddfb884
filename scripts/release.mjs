#!/usr/bin/env node
/**
 * Assemble a release tarball: the one executable (bin/sriov-underlay-node) once, with its other
 * names as symbolic links (bin/kubectl-sriov, bin/sriov-underlay-cni), the shim (bin/sriov-underlay),
 * the manifests, the example ConfigMaps and the docs, plus SHA256SUMS for every file (links are
 * listed by their target) and a .sha256 for the tarball itself (docs/packaging.md, "Release").
 *   npm run release   →   dist/release/sriov-underlay-<version>-linux-<arch>.tar.gz
 * Builds first if anything is missing.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const arch = { x64: 'amd64', arm64: 'arm64' }[process.arch] ?? process.arch;
const name = `sriov-underlay-${pkg.version}-linux-${arch}`;
/** The one executable, shipped once. */
const EXE = 'sriov-underlay-node';
/** Its other names: exe/programs.ts dispatches on them. */
const LINKS = ['kubectl-sriov', 'sriov-underlay-cni'];
/** The shim (native/cni-shim.c), what kubelet executes. */
const SHIM = 'sriov-underlay';
const BINS = [EXE, SHIM];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal})`);
}

if ([...BINS, ...LINKS].some((b) => !fs.existsSync(path.join(ROOT, 'dist/bin', b)))) run('npm', ['run', 'build', '--silent']);

const out = path.join(ROOT, 'dist/release');
const stage = path.join(out, name);
fs.rmSync(stage, { recursive: true, force: true });
fs.mkdirSync(path.join(stage, 'bin'), { recursive: true });
for (const b of BINS) fs.copyFileSync(path.join(ROOT, 'dist/bin', b), path.join(stage, 'bin', b));
for (const b of BINS) fs.chmodSync(path.join(stage, 'bin', b), 0o755);
for (const l of LINKS) fs.symlinkSync(EXE, path.join(stage, 'bin', l));
for (const dir of ['deploy', 'configmaps', 'docs']) fs.cpSync(path.join(ROOT, dir), path.join(stage, dir), { recursive: true });
fs.copyFileSync(path.join(ROOT, 'README.md'), path.join(stage, 'README.md'));

const sha = (file) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const files = [];
const walk = (d) => {
  for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (!e.isSymbolicLink()) files.push(p);
  }
};
walk(stage);
fs.writeFileSync(path.join(stage, 'SHA256SUMS'), files.map((f) => `${sha(f)}  ${path.relative(stage, f)}`).join('\n') + '\n');

const tarball = path.join(out, `${name}.tar.gz`);
// Reproducible: fixed owner, mtime and order.
run('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-czf', tarball, '-C', out, name]);
fs.writeFileSync(`${tarball}.sha256`, `${sha(tarball)}  ${path.basename(tarball)}\n`);
console.log(`${path.relative(ROOT, tarball)}  ${(fs.statSync(tarball).size / 1e6).toFixed(1)} MB  sha256 ${sha(tarball)}`);
