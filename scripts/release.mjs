#!/usr/bin/env node
/**
 * Assemble a release tarball: the one executable (bin/sriov-underlay-node) once, with its other
 * names as symbolic links (bin/kubectl-sriov, bin/sriov-underlay-cni), the shim (bin/sriov-underlay),
 * the OCI image (image/: the archive and its manifest digest, from `npm run image`), the manifests,
 * the example ConfigMaps and the docs, plus SHA256SUMS for every file (links are listed by their
 * target) and a .sha256 for the tarball itself (docs/packaging.md, "Release").
 *   npm run release   →   dist/release/sriov-underlay-<version>-linux-<arch>.tar.gz
 * Builds first if anything is missing; always rebuilds the image (it is reproducible, and must hold
 * exactly the executables shipped beside it).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IMAGE_NAME, PROGRAMS } from './image-contents.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const arch = { x64: 'amd64', arm64: 'arm64' }[process.arch] ?? process.arch;
const name = `sriov-underlay-${pkg.version}-linux-${arch}`;
/** What ships is what the image holds, from one list (scripts/image-contents.mjs): each executable once… */
const BINS = PROGRAMS.map((p) => path.basename(p.src));
/** …and its other names as links (exe/programs.ts dispatches on them). */
const LINKS = PROGRAMS.flatMap((p) => p.links.map((l) => ({ name: path.basename(l), target: path.basename(p.dest) })));
const IMAGE_FILES = [`${IMAGE_NAME}-${pkg.version}.oci.tar`, `${IMAGE_NAME}-${pkg.version}.digest`];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal})`);
}

if ([...BINS, ...LINKS.map((l) => l.name)].some((b) => !fs.existsSync(path.join(ROOT, 'dist/bin', b)))) run('npm', ['run', 'build', '--silent']);
run(process.execPath, [path.join(ROOT, 'scripts/image.mjs')], { stdio: ['ignore', 'ignore', 'inherit'] });

const out = path.join(ROOT, 'dist/release');
const stage = path.join(out, name);
fs.rmSync(stage, { recursive: true, force: true });
fs.mkdirSync(path.join(stage, 'bin'), { recursive: true });
for (const b of BINS) fs.copyFileSync(path.join(ROOT, 'dist/bin', b), path.join(stage, 'bin', b));
for (const b of BINS) fs.chmodSync(path.join(stage, 'bin', b), 0o755);
for (const l of LINKS) fs.symlinkSync(l.target, path.join(stage, 'bin', l.name));
fs.mkdirSync(path.join(stage, 'image'));
for (const f of IMAGE_FILES) fs.copyFileSync(path.join(ROOT, 'dist/image', f), path.join(stage, 'image', f));
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
