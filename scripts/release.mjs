#!/usr/bin/env node
/**
 * Assemble a release tarball: the executables (the CNI shim, and the standalone CNI it falls back
 * to as a link to the one node executable), the manifests, the example ConfigMaps and the docs,
 * plus SHA256SUMS for every file and a .sha256 for the tarball itself.
 *   npm run release   →   dist/release/sriov-underlay-<version>-linux-<arch>.tar.gz
 * Builds first if an executable is missing.
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
// sriov-underlay is the C shim; sriov-underlay-cni the standalone CNI it falls back to.
const BINS = ['sriov-underlay', 'sriov-underlay-cni', 'sriov-underlay-node', 'kubectl-sriov'];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal})`);
}

if (BINS.some((b) => !fs.existsSync(path.join(ROOT, 'dist/bin', b)))) run('npm', ['run', 'build', '--silent']);

const out = path.join(ROOT, 'dist/release');
const stage = path.join(out, name);
fs.rmSync(stage, { recursive: true, force: true });
fs.mkdirSync(path.join(stage, 'bin'), { recursive: true });
// A name that is a link in dist/bin (the one executable under another name) stays a link: the
// executable ships once.
for (const b of BINS) {
  const src = path.join(ROOT, 'dist/bin', b);
  const dst = path.join(stage, 'bin', b);
  if (fs.lstatSync(src).isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(src), dst);
  else {
    fs.copyFileSync(src, dst);
    fs.chmodSync(dst, 0o755);
  }
}
for (const dir of ['deploy', 'configmaps', 'docs']) fs.cpSync(path.join(ROOT, dir), path.join(stage, dir), { recursive: true });
fs.copyFileSync(path.join(ROOT, 'README.md'), path.join(stage, 'README.md'));

const sha = (file) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const files = [];
const walk = (d) => {
  for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) walk(p);
    else files.push(p);
  }
};
walk(stage);
fs.writeFileSync(path.join(stage, 'SHA256SUMS'), files.map((f) => `${sha(f)}  ${path.relative(stage, f)}`).join('\n') + '\n');

const tarball = path.join(out, `${name}.tar.gz`);
// Reproducible: fixed owner, mtime and order.
run('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-czf', tarball, '-C', out, name]);
fs.writeFileSync(`${tarball}.sha256`, `${sha(tarball)}  ${path.basename(tarball)}\n`);
console.log(`${path.relative(ROOT, tarball)}  ${(fs.statSync(tarball).size / 1e6).toFixed(1)} MB  sha256 ${sha(tarball)}`);
