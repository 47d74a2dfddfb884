#!/usr/bin/env node
/**
 * `npm run image`: the OCI image, assembled from scratch, offline, with no daemon and no registry
 * (docs/packaging.md, "The container image"). What goes in is scripts/image-contents.mjs; the
 * shared libraries are what `ldd` says each ELF needs.
 *
 *   node scripts/image.mjs                  → dist/image/oci/ (OCI image layout),
 *                                             dist/image/sriov-underlay-<version>.oci.tar (OCI archive),
 *                                             dist/image/sriov-underlay-<version>.digest (manifest digest)
 *   node scripts/image.mjs --out DIR        → the same under DIR
 *   node scripts/image.mjs --rootfs DIR     → only the file tree, for the Dockerfile's last stage
 *   node scripts/image.mjs --list           → every entry (layer, path, type, mode, size, sha256) as JSON
 *
 * Reproducible: every tar entry has uid/gid 0, the declared mode and one mtime (the commit's time,
 * or SOURCE_DATE_EPOCH), entries are sorted, gzip is node's zlib at a fixed level (its header has no
 * name and mtime 0), and JSON is written with a fixed key order. revision = `git rev-parse HEAD`.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as zlib from 'node:zlib';
import * as C from './image-contents.mjs';
import { writeTar } from './oci-tar.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const GZIP_LEVEL = 6;
const MT = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
};

class ImageError extends Error {}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, ...opts });
  if (r.error) throw new ImageError(`${cmd}: ${r.error.message}`);
  return r;
}

function parseArgs(argv) {
  const a = { out: path.join(ROOT, 'dist/image'), rootfs: null, list: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      const x = argv[++i];
      if (!x) throw new ImageError(`${k} needs a value`);
      return x;
    };
    if (k === '--out') a.out = path.resolve(v());
    else if (k === '--rootfs') a.rootfs = path.resolve(v());
    else if (k === '--list') a.list = true;
    else throw new ImageError(`unknown argument ${k} (usage: node scripts/image.mjs [--out DIR | --rootfs DIR | --list])`);
  }
  return a;
}

/**
 * The libraries an ELF needs, transitively, as ldd resolves them on this machine: [{ dest, src }],
 * dest being the path ldd prints (where the loader will look in the image too), src the file.
 */
export function lddClosure(elf) {
  const r = run('ldd', [elf]);
  const out = `${r.stdout}${r.stderr}`;
  if (/not a dynamic executable|statically linked/.test(out)) return [];
  if (r.status !== 0) throw new ImageError(`ldd ${elf} failed (exit ${r.status}): ${out.trim()}`);
  const libs = [];
  for (const line of r.stdout.split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('linux-vdso.so')) continue;
    if (/=> not found/.test(t)) throw new ImageError(`${elf} needs ${t.split(/\s/)[0]}, which ldd cannot find on this machine`);
    const m = /^(?:\S+ => )?(\/\S+) \(0x[0-9a-f]+\)$/.exec(t);
    if (!m) throw new ImageError(`ldd ${elf}: cannot read line "${t}"`);
    libs.push({ dest: m[1], src: fs.realpathSync(m[1]) });
  }
  return libs;
}

/** The Debian package that ships a file, trying the merged-/usr spellings of its path. */
function debianPackage(file) {
  const candidates = new Set([file, fs.realpathSync(file)]);
  for (const f of [...candidates]) {
    if (f.startsWith('/usr/')) candidates.add(f.slice(4));
    else candidates.add(`/usr${f}`);
  }
  for (const f of candidates) {
    const r = run('dpkg-query', ['-S', f]);
    if (r.status === 0) return r.stdout.split(':')[0].trim();
  }
  throw new ImageError(`cannot tell which Debian package ships ${file} (dpkg-query -S): its licence must go into the image with it`);
}

function packageVersion(pkg) {
  const r = run('dpkg-query', ['-W', '-f', '${Package} ${Version} ${Architecture}', pkg]);
  if (r.status !== 0) throw new ImageError(`dpkg-query -W ${pkg} failed: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** The package's certificates, in name order, as one PEM bundle. */
function caBundle(pkg) {
  const r = run('dpkg-query', ['-L', pkg]);
  if (r.status !== 0) throw new ImageError(`dpkg-query -L ${pkg} failed: ${r.stderr.trim()} (the CA bundle is made from it)`);
  const certs = r.stdout.split('\n').filter((f) => f.startsWith('/usr/share/ca-certificates/') && f.endsWith('.crt')).sort();
  if (certs.length === 0) throw new ImageError(`package ${pkg} holds no certificates`);
  return Buffer.concat(certs.map((f) => {
    const pem = fs.readFileSync(f);
    return pem[pem.length - 1] === 0x0a ? pem : Buffer.concat([pem, Buffer.from('\n')]);
  }));
}

const rel = (dest) => dest.replace(/^\/+/, '');

/** Every entry of the image, per layer: { base: Map, app: Map } keyed by path without leading '/'. */
export function collect(root = ROOT) {
  const base = new Map();
  const app = new Map();
  const add = (layer, e) => {
    const key = rel(e.dest);
    const prev = base.get(key) ?? app.get(key);
    if (prev) {
      const same = prev.type === e.type && prev.mode === e.mode && (prev.data && e.data ? prev.data.equals(e.data) : prev.target === e.target);
      if (!same) throw new ImageError(`${e.dest} is listed twice with different contents`);
      return;
    }
    layer.set(key, { path: key, ...e });
  };
  const readInput = (src, what) => {
    const file = path.isAbsolute(src) ? src : path.join(root, src);
    if (!fs.existsSync(file)) {
      throw new ImageError(`${what} ${src} missing${src.startsWith('dist/') || src.startsWith('native/') ? ': run `npm run build` first' : ''}`);
    }
    return fs.readFileSync(file);
  };

  // Ours: the executables and their other names, the install script, the conflists.
  const elves = [];
  for (const p of C.PROGRAMS) {
    add(app, { dest: p.dest, type: 'file', mode: 0o755, data: readInput(p.src, 'executable') });
    elves.push(path.join(root, p.src));
    for (const l of p.links) add(app, { dest: l, type: 'symlink', mode: 0o777, target: path.posix.relative(path.posix.dirname(l), p.dest) });
  }
  for (const f of C.FILES) add(app, { dest: f.dest, type: 'file', mode: f.mode, data: readInput(f.src, 'file') });
  for (const f of C.RUNTIME_LOADED) {
    readInput(f, 'run-time loaded ELF');
    elves.push(path.join(root, f));
  }

  // The build machine's: programs the install script runs, the CA bundle, and every library.
  const hostFiles = [];
  for (const p of C.HOST_PROGRAMS) {
    const pkg = debianPackage(p.src);
    if (pkg !== p.package) throw new ImageError(`${p.src} comes from Debian package ${pkg}, not ${p.package} as scripts/image-contents.mjs says`);
    add(base, { dest: p.dest, type: 'file', mode: 0o755, data: readInput(p.src, 'host program') });
    elves.push(p.src);
    hostFiles.push(p.src);
  }
  add(base, { dest: C.CA_BUNDLE.dest, type: 'file', mode: C.CA_BUNDLE.mode, data: caBundle(C.CA_BUNDLE.package) });
  for (const elf of elves) {
    for (const lib of lddClosure(elf)) {
      // The loader is executed by the kernel (PT_INTERP); libraries are only mapped.
      const isLoader = /\/ld-linux[^/]*\.so/.test(lib.dest);
      add(base, { dest: lib.dest, type: 'file', mode: isLoader ? 0o755 : 0o644, data: fs.readFileSync(lib.src) });
      hostFiles.push(lib.dest);
    }
  }
  for (const g of C.GENERATED) add(base, { dest: g.dest, type: 'file', mode: g.mode, data: Buffer.from(g.text) });

  // Licences of the Debian packages whose files ship, and which versions (what the digest depends on).
  const packages = [...new Set([...hostFiles.map(debianPackage), C.CA_BUNDLE.package])].sort();
  for (const pkg of packages) {
    const copyright = `/usr/share/doc/${pkg.replace(/:.*/, '')}/copyright`;
    add(base, { dest: copyright, type: 'file', mode: 0o644, data: readInput(copyright, 'licence') });
  }
  add(base, {
    dest: `/usr/share/doc/${C.IMAGE_NAME}/debian-packages`,
    type: 'file',
    mode: 0o644,
    data: Buffer.from(`${packages.map(packageVersion).join('\n')}\n`),
  });

  for (const d of C.DIRS) add(base, { dest: d.dest, type: 'dir', mode: d.mode });
  for (const l of C.SYMLINKS) add(base, { dest: l.dest, type: 'symlink', mode: 0o777, target: l.target });
  // Every parent directory in each layer that has something under it: 0755 unless DIRS says otherwise.
  const dirMode = new Map(C.DIRS.map((d) => [rel(d.dest), d.mode]));
  for (const layer of [base, app]) {
    for (const key of [...layer.keys()]) {
      for (let d = path.posix.dirname(key); d !== '.' && !layer.has(d); d = path.posix.dirname(d)) {
        layer.set(d, { path: d, dest: `/${d}`, type: 'dir', mode: dirMode.get(d) ?? 0o755 });
      }
    }
  }
  return { base, app };
}

/** What `created` and `revision` are: the commit's, so the same commit gives the same digest. */
function provenance() {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const head = run('git', ['rev-parse', 'HEAD']);
  if (head.status !== 0) throw new ImageError(`git rev-parse HEAD failed in ${ROOT}: the image's revision label is the commit`);
  const revision = head.stdout.trim();
  let epoch = Number(run('git', ['log', '-1', '--format=%ct', revision]).stdout.trim());
  if (process.env.SOURCE_DATE_EPOCH) epoch = Number(process.env.SOURCE_DATE_EPOCH);
  if (!Number.isSafeInteger(epoch) || epoch < 0 || epoch > 253402300799) {
    throw new ImageError(`SOURCE_DATE_EPOCH (or the commit's time) must be whole seconds since 1970, got ${JSON.stringify(process.env.SOURCE_DATE_EPOCH ?? epoch)}`);
  }
  return { version: pkg.version, license: pkg.license, revision, epoch, created: new Date(epoch * 1000).toISOString().replace('.000Z', 'Z'), source: sourceUrl(pkg) };
}

/** package.json's repository, else git's origin, never with credentials in it; none if neither. */
function sourceUrl(pkg) {
  let url = typeof pkg.repository === 'string' ? pkg.repository : pkg.repository?.url;
  if (!url) {
    const r = run('git', ['config', '--get', 'remote.origin.url']);
    url = r.status === 0 ? r.stdout.trim() : '';
  }
  if (!url || !/^(https?|git|ssh):\/\//.test(url)) return undefined;
  const u = new URL(url);
  u.username = '';
  u.password = '';
  u.search = '';
  return u.toString();
}

const sha256 = (b) => createHash('sha256').update(b).digest('hex');
const json = (o) => Buffer.from(JSON.stringify(o));

function writeBlob(dir, data) {
  const hex = sha256(data);
  fs.writeFileSync(path.join(dir, 'blobs', 'sha256', hex), data);
  return { digest: `sha256:${hex}`, size: data.length };
}

export function labels(p) {
  return {
    ...C.LABELS,
    'org.opencontainers.image.version': p.version,
    'org.opencontainers.image.revision': p.revision,
    'org.opencontainers.image.created': p.created,
    'org.opencontainers.image.licenses': p.license,
    ...(p.source ? { 'org.opencontainers.image.source': p.source } : {}),
  };
}

export function imageRef(version) {
  return `localhost/${C.IMAGE_NAME}:${version}`;
}

function buildLayout(dir, layers, p) {
  fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const diffIds = [];
  const layerDescs = [];
  for (const entries of layers) {
    const tar = writeTar([...entries.values()], p.epoch);
    diffIds.push(`sha256:${sha256(tar)}`);
    layerDescs.push({ mediaType: MT.layer, ...writeBlob(dir, zlib.gzipSync(tar, { level: GZIP_LEVEL })) });
  }
  const config = {
    created: p.created,
    architecture: 'amd64',
    os: 'linux',
    config: {
      User: C.RUNTIME.user,
      Env: C.RUNTIME.env,
      Entrypoint: C.RUNTIME.entrypoint,
      WorkingDir: C.RUNTIME.workingDir,
      Labels: labels(p),
    },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: [
      { created: p.created, created_by: 'scripts/image.mjs: loader, shared libraries (ldd), sh and coreutils for install-cni.sh, CA certificates, passwd/group' },
      { created: p.created, created_by: 'scripts/image.mjs: sriov-underlay executables, install-cni.sh, conflists' },
    ],
  };
  const configDesc = { mediaType: MT.config, ...writeBlob(dir, json(config)) };
  const manifest = { schemaVersion: 2, mediaType: MT.manifest, config: configDesc, layers: layerDescs, annotations: labels(p) };
  const manifestDesc = writeBlob(dir, json(manifest));
  const ref = imageRef(p.version);
  const index = {
    schemaVersion: 2,
    mediaType: MT.index,
    manifests: [
      {
        mediaType: MT.manifest,
        ...manifestDesc,
        platform: { architecture: 'amd64', os: 'linux' },
        // containerd names the image after the first, podman and skopeo after the second.
        annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': ref },
      },
    ],
  };
  fs.writeFileSync(path.join(dir, 'index.json'), json(index));
  fs.writeFileSync(path.join(dir, 'oci-layout'), json({ imageLayoutVersion: '1.0.0' }));
  return { digest: manifestDesc.digest, ref };
}

/** The OCI archive: the layout directory as one tar (what `ctr images import` and `podman load` read). */
function archive(dir, epoch) {
  const entries = [
    { path: 'blobs', type: 'dir', mode: 0o755 },
    { path: 'blobs/sha256', type: 'dir', mode: 0o755 },
  ];
  for (const f of ['oci-layout', 'index.json']) entries.push({ path: f, type: 'file', mode: 0o644, data: fs.readFileSync(path.join(dir, f)) });
  for (const h of fs.readdirSync(path.join(dir, 'blobs', 'sha256'))) {
    entries.push({ path: `blobs/sha256/${h}`, type: 'file', mode: 0o644, data: fs.readFileSync(path.join(dir, 'blobs', 'sha256', h)) });
  }
  return writeTar(entries, epoch);
}

/** The file tree alone (the Dockerfile copies it into `FROM scratch`). */
function writeRootfs(dir, layers) {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const all = [...layers[0].values(), ...layers[1].values()].sort((a, b) => (a.path < b.path ? -1 : 1));
  for (const e of all) {
    const p = path.join(dir, e.path);
    if (e.type === 'dir') fs.mkdirSync(p, { recursive: true });
    else if (e.type === 'symlink') fs.symlinkSync(e.target, p);
    else fs.writeFileSync(p, e.data);
  }
  // Modes last, deepest first, so a 0700 directory does not stop its own children being written.
  for (const e of all.reverse()) if (e.type !== 'symlink') fs.chmodSync(path.join(dir, e.path), e.mode);
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  // The cheap checks first: an image without a commit to name is refused before any work.
  const p = args.list || args.rootfs ? null : provenance();
  const { base, app } = collect();
  if (args.list) {
    const rows = [];
    for (const [layer, entries] of [['base', base], ['app', app]]) {
      for (const e of entries.values()) {
        rows.push({ layer, path: `/${e.path}`, type: e.type, mode: e.mode, ...(e.data ? { size: e.data.length, sha256: sha256(e.data) } : {}), ...(e.target ? { target: e.target } : {}) });
      }
    }
    process.stdout.write(`${JSON.stringify(rows.sort((a, b) => (a.path < b.path ? -1 : 1)), null, 1)}\n`);
    return;
  }
  if (args.rootfs) {
    writeRootfs(args.rootfs, [base, app]);
    process.stdout.write(`${args.rootfs}: ${base.size + app.size} entries\n`);
    return;
  }
  fs.mkdirSync(args.out, { recursive: true });
  // Built beside, then renamed: an old layout's blobs never linger, a reader never sees half of one.
  const tmp = fs.mkdtempSync(path.join(args.out, '.oci-'));
  fs.chmodSync(tmp, 0o755);
  try {
    const { digest, ref } = buildLayout(tmp, [base, app], p);
    const name = `${C.IMAGE_NAME}-${p.version}`;
    const tarFile = path.join(args.out, `${name}.oci.tar`);
    fs.writeFileSync(`${tarFile}.tmp`, archive(tmp, p.epoch));
    fs.renameSync(`${tarFile}.tmp`, tarFile);
    fs.rmSync(path.join(args.out, 'oci'), { recursive: true, force: true });
    fs.renameSync(tmp, path.join(args.out, 'oci'));
    fs.writeFileSync(path.join(args.out, `${name}.digest`), `${digest}\n`);
    process.stdout.write(`${ref} ${digest}\n  ${path.relative(process.cwd(), tarFile)} ${(fs.statSync(tarFile).size / 1e6).toFixed(1)} MB\n`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main();
  } catch (err) {
    process.stderr.write(`image: ${err instanceof ImageError ? err.message : (err?.stack ?? err)}\n`);
    process.exit(1);
  }
}
