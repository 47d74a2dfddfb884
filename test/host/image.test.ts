/**
 * `npm run image` (scripts/image.mjs): built twice from the same commit in two fresh clones that
 * differ in everything but the commit — directory, input mtimes, umask, HOME, git remote
 * credentials, NODE_EXTRA_CA_CERTS, a secret in the environment — it gives the same digest, and
 * none of those differences is in the image. Then Debian's containerd (a daemon of our own on a
 * temporary root and socket) and podman load the archive and run it: the CNI answers VERSION, the
 * node daemon's entrypoint starts, every ELF's libraries resolve inside the image, and the install
 * script installs the CNI from a read-only root as the DaemonSet's init container does.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../fixtures/cni';

interface Entry {
  layer: 'base' | 'app';
  path: string;
  type: 'dir' | 'file' | 'symlink';
  mode: number;
  size?: number;
  sha256?: string;
  target?: string;
}
interface Build {
  dir: string;
  home: string;
  token: string;
  digest: string;
  archive: string;
  layout: string;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const HEAD = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
const REF = `localhost/sriov-underlay:${pkg.version}`;
const SECRET_ENV = 'SRIOV_UNDERLAY_TEST_SECRET_TOKEN';
const CA_MARKER = 'c3Jpb3YtdW5kZXJsYXktYnVpbGQtbWFjaGluZS1jYQ';

let work: string;
let a: Build;
let b: Build;
let list: Entry[];

function walk(dir: string, fn: (p: string) => void): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    fn(p);
    if (e.isDirectory()) walk(p, fn);
  }
}

/** A clone of HEAD with the built inputs (dist/bin, the addon) copied in, then `node scripts/image.mjs`. */
async function buildIn(name: string, opts: { umask: string; mtime?: Date; extraCa?: string }): Promise<Build> {
  const dir = path.join(work, `clone-${name}`);
  const home = path.join(work, `home-${name}`);
  const token = `tok-${name}-${sha256(Buffer.from(work + name)).slice(0, 16)}`;
  fs.mkdirSync(home);
  execFileSync('git', ['clone', '--quiet', '--shared', '--no-checkout', REPO, dir]);
  execFileSync('git', ['-C', dir, 'checkout', '--quiet', HEAD]);
  // What a CI checkout's origin looks like when it carries a token.
  execFileSync('git', ['-C', dir, 'remote', 'set-url', 'origin', `https://builder-${name}:${token}@example.invalid/sriov-underlay.git`]);
  fs.cpSync(path.join(REPO, 'dist/bin'), path.join(dir, 'dist/bin'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'native/build/Release'), { recursive: true });
  fs.copyFileSync(path.join(REPO, 'native/build/Release/sriov_native.node'), path.join(dir, 'native/build/Release/sriov_native.node'));
  if (opts.mtime) {
    const t = opts.mtime;
    walk(dir, (p) => {
      if (!p.includes(`${path.sep}.git`)) fs.utimesSync(p, t, t);
    });
  }
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, [SECRET_ENV]: token };
  if (opts.extraCa) env.NODE_EXTRA_CA_CERTS = opts.extraCa;
  const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const p = spawn('sh', ['-c', `umask ${opts.umask} && exec node scripts/image.mjs`], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let o = '';
    p.stdout.on('data', (d: Buffer) => (o += d.toString()));
    p.stderr.on('data', (d: Buffer) => (o += d.toString()));
    p.on('close', (c) => resolve({ code: c, out: o }));
  });
  expect(code, out).toBe(0);
  const img = path.join(dir, 'dist/image');
  return {
    dir,
    home,
    token,
    digest: fs.readFileSync(path.join(img, `sriov-underlay-${pkg.version}.digest`), 'utf8').trim(),
    archive: path.join(img, `sriov-underlay-${pkg.version}.oci.tar`),
    layout: path.join(img, 'oci'),
  };
}

function blob(build: Build, digest: string): Buffer {
  return fs.readFileSync(path.join(build.layout, 'blobs', 'sha256', digest.replace(/^sha256:/, '')));
}
function manifestOf(build: Build) {
  return JSON.parse(blob(build, build.digest).toString()) as { config: { digest: string }; layers: Array<{ digest: string }>; annotations: Record<string, string> };
}
function configOf(build: Build) {
  return JSON.parse(blob(build, manifestOf(build).config.digest).toString()) as {
    created: string;
    config: { Env: string[]; Entrypoint: string[]; User: string; Labels: Record<string, string> };
    rootfs: { diff_ids: string[] };
  };
}

/** Each layer of a build, uncompressed (once: they are large). */
const layerCache = new Map<string, Array<{ digest: string; tar: Buffer }>>();
function layersOf(build: Build): Array<{ digest: string; tar: Buffer }> {
  let layers = layerCache.get(build.dir);
  if (!layers) {
    layers = manifestOf(build).layers.map((l) => ({ digest: l.digest, tar: zlib.gunzipSync(blob(build, l.digest)) }));
    layerCache.set(build.dir, layers);
  }
  return layers;
}

/** `tar -tv` of a layer, read by GNU tar rather than by our own writer's idea of the format. */
function tarListing(layer: Buffer): Array<{ mode: number; type: string; owner: string; size: number; path: string; target?: string }> {
  const out = execFileSync('tar', ['--numeric-owner', '--full-time', '-tvf', '-'], { input: layer, encoding: 'utf8', maxBuffer: 16 << 20 });
  return out
    .trim()
    .split('\n')
    .map((line) => {
      const m = /^(\S)(\S{9}) (\d+\/\d+) +(\d+) \S+ \S+ (.*?)(?: -> (.*))?$/.exec(line);
      if (!m) throw new Error(`cannot read tar line ${line}`);
      const perms = m[2] as string;
      let mode = 0;
      for (let i = 0; i < 9; i++) if (!'-STL'.includes(perms[i] as string)) mode |= 1 << (8 - i);
      if (/[sS]/.test(perms[2] as string)) mode |= 0o4000;
      if (/[sS]/.test(perms[5] as string)) mode |= 0o2000;
      if (/[tT]/.test(perms[8] as string)) mode |= 0o1000;
      const type = { d: 'dir', '-': 'file', l: 'symlink' }[m[1] as string] ?? `other:${m[1]}`;
      return { mode, type, owner: m[3] as string, size: Number(m[4]), path: `/${(m[5] as string).replace(/\/$/, '')}`, ...(m[6] ? { target: m[6] } : {}) };
    });
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'image-test-'));
  const extraCa = path.join(work, 'extra-ca.pem');
  fs.writeFileSync(extraCa, `-----BEGIN CERTIFICATE-----\n${CA_MARKER}\n-----END CERTIFICATE-----\n`);
  [a, b] = await Promise.all([
    buildIn('a', { umask: '022' }),
    buildIn('b', { umask: '077', mtime: new Date('2001-02-03T04:05:06Z'), extraCa }),
  ]);
  list = JSON.parse(execFileSync('node', ['scripts/image.mjs', '--list'], { cwd: a.dir, encoding: 'utf8', maxBuffer: 16 << 20 })) as Entry[];
}, 900_000);

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('npm run image', () => {
  it('builds the same digest and the same archive twice from the same commit', () => {
    expect(a.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(b.digest).toBe(a.digest);
    expect(sha256(fs.readFileSync(b.archive))).toBe(sha256(fs.readFileSync(a.archive)));
    const cfg = configOf(a);
    expect(cfg.config.Labels).toMatchObject({
      'org.opencontainers.image.version': pkg.version,
      'org.opencontainers.image.revision': HEAD,
      'org.opencontainers.image.licenses': 'Apache-2.0',
      // The origin's URL without the credentials it had.
      'org.opencontainers.image.source': 'https://example.invalid/sriov-underlay.git',
    });
    const commitTime = execFileSync('git', ['log', '-1', '--format=%ct', HEAD], { cwd: REPO, encoding: 'utf8' }).trim();
    expect(Date.parse(cfg.created) / 1000).toBe(Number(commitTime));
    expect(cfg.config.Labels['org.opencontainers.image.created']).toBe(cfg.created);
  });

  it('holds nothing of the build machine: no build paths, home, credentials, extra CA or environment', () => {
    const needles = [REPO, a.dir, b.dir, work, a.home, b.home, os.homedir() + '/', a.token, b.token, CA_MARKER, 'extra-ca.pem', '/work/'];
    const haystacks: Array<[string, Buffer]> = [['archive (index, manifest, config)', fs.readFileSync(b.archive)]];
    for (const l of layersOf(b)) haystacks.push([`layer ${l.digest}`, l.tar]);
    for (const [what, hay] of haystacks) {
      for (const n of needles) expect(hay.includes(n), `${what} contains ${n}`).toBe(false);
    }
    expect(configOf(b).config.Env).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  }, 600_000);

  it('every file, mode and owner in the layers is what the list declares, and the Dockerfile tree is the same', () => {
    const seen = new Map<string, ReturnType<typeof tarListing>[number] & { layer: string }>();
    layersOf(a).forEach((l, i) => {
      // diff_id is the digest of the uncompressed layer
      expect(`sha256:${sha256(l.tar)}`).toBe(configOf(a).rootfs.diff_ids[i]);
      for (const e of tarListing(l.tar)) {
        expect(e.owner, e.path).toBe('0/0');
        expect(seen.has(`${i}:${e.path}`), `${e.path} twice in a layer`).toBe(false);
        seen.set(`${i}:${e.path}`, { ...e, layer: i === 0 ? 'base' : 'app' });
      }
    });
    // The list's entries, exactly, each in its layer with its declared type, mode and size.
    const fromTar = [...seen.values()]
      .map((e) => ({ layer: e.layer, path: e.path, type: e.type, mode: e.mode, ...(e.type === 'file' ? { size: e.size } : {}), ...(e.target ? { target: e.target } : {}) }))
      .sort((x, y) => (x.path + x.layer < y.path + y.layer ? -1 : 1));
    const declared = list.map(({ sha256: _, ...e }) => e).sort((x, y) => (x.path + x.layer < y.path + y.layer ? -1 : 1));
    expect(fromTar).toEqual(declared);
    // Nothing setuid/setgid, and only /tmp sticky and world-writable.
    for (const e of list) {
      expect(e.mode & 0o6000, e.path).toBe(0);
      if (e.type !== 'symlink' && e.mode & 0o002) expect(e.path).toBe('/tmp');
    }
    expect(list.find((e) => e.path === '/tmp')?.mode).toBe(0o1777);

    // `--rootfs` (the Dockerfile's last stage) writes the same tree.
    const rootfs = path.join(work, 'rootfs');
    execFileSync('node', ['scripts/image.mjs', '--rootfs', rootfs], { cwd: a.dir, stdio: 'pipe' });
    const tree: Entry[] = [];
    walk(rootfs, (p) => {
      const st = fs.lstatSync(p);
      const rel = `/${path.relative(rootfs, p)}`;
      const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file';
      tree.push({ layer: 'base', path: rel, type, mode: type === 'symlink' ? 0o777 : st.mode & 0o7777, ...(type === 'file' ? { size: st.size, sha256: sha256(fs.readFileSync(p)) } : {}), ...(type === 'symlink' ? { target: fs.readlinkSync(p) } : {}) });
    });
    const noLayer = (xs: Entry[]) => xs.map(({ layer: _, ...e }) => e);
    const dedup = new Map(list.map((e) => [e.path, e]));
    expect(noLayer(tree).sort((x, y) => (x.path < y.path ? -1 : 1))).toEqual(noLayer([...dedup.values()]).sort((x, y) => (x.path < y.path ? -1 : 1)));
  }, 600_000);
});

/** The files that are ELFs in the image: ours and everything under the library and program dirs. */
function elfPaths(): string[] {
  return list.filter((e) => e.type === 'file' && /^\/(bin|lib|lib64|opt\/sriov-underlay\/bin)\//.test(e.path) && !/\/ld-linux/.test(e.path)).map((e) => e.path);
}
const LOADER = () => (list.find((e) => /\/ld-linux[^/]*\.so/.test(e.path)) as Entry).path;
const CNI_VERSION = `echo '{"cniVersion":"1.1.0"}' | CNI_COMMAND=VERSION /opt/sriov-underlay/bin/sriov-underlay`;
/** For each ELF, the loader inside the image lists what it resolves; "not found" or a failure is printed. */
const RESOLVE_ALL = () => `for f in ${elfPaths().join(' ')}; do ${LOADER()} --list "$f" > /tmp/l 2>&1 || echo "FAILED $f"; while read -r l; do case "$l" in *"not found"*) echo "MISSING $f: $l";; esac; done < /tmp/l; echo "checked $f"; done`;

function checkVersion(stdout: string): void {
  expect(JSON.parse(stdout.trim().split('\n').pop() as string)).toMatchObject({ cniVersion: '1.1.0', supportedVersions: expect.arrayContaining(['1.1.0']) });
}
function checkResolved(stdout: string): void {
  expect(stdout).not.toMatch(/MISSING|FAILED/);
  for (const f of elfPaths()) expect(stdout).toContain(`checked ${f}`);
}

describe.skipIf(!have('containerd') || !have('ctr'))('containerd (ctr images import, ctr run)', () => {
  let dir: string;
  let daemon: ReturnType<typeof spawn> | undefined;
  let sock: string;
  const ctr = (args: string[], opts: { input?: string } = {}) =>
    spawnSync('ctr', ['--address', sock, ...args], { encoding: 'utf8', timeout: 120_000, ...opts });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'image-containerd-'));
    sock = path.join(dir, 'containerd.sock');
    fs.writeFileSync(
      path.join(dir, 'config.toml'),
      [
        'version = 2',
        `root = "${dir}/root"`,
        `state = "${dir}/state"`,
        // Only what ctr needs: no CRI (that is the runtime tier's), nothing written under /opt.
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = "${sock}"`,
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = "${dir}/opt"`,
      ].join('\n'),
    );
    daemon = spawn('containerd', ['--config', path.join(dir, 'config.toml')], { stdio: ['ignore', 'ignore', fs.openSync(path.join(dir, 'log'), 'w')] });
    for (let i = 0; i < 100 && ctr(['version']).status !== 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(ctr(['version']).status, fs.readFileSync(path.join(dir, 'log'), 'utf8')).toBe(0);
  }, 60_000);

  afterAll(async () => {
    if (daemon?.pid && daemon.exitCode === null) {
      const exited = new Promise((r) => daemon?.once('exit', r));
      daemon.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    }
    // Snapshots a failed test left mounted would make the removal fail.
    for (const m of fs.readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(dir)).reverse()) {
      spawnSync('umount', ['-l', m]);
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('imports the archive under its name and digest, and runs it', () => {
    const imp = ctr(['images', 'import', a.archive]);
    expect(imp.status, imp.stderr).toBe(0);
    const ls = ctr(['images', 'ls']);
    expect(ls.stdout).toMatch(new RegExp(`^${REF.replace(/[.]/g, '\\.')}\\s+\\S+\\s+${a.digest}\\s`, 'm'));

    const v = ctr(['run', '--rm', '--net-host', REF, `v-${process.pid}`, '/bin/sh', '-c', CNI_VERSION]);
    expect(v.status, v.stderr).toBe(0);
    checkVersion(v.stdout);

    const r = ctr(['run', '--rm', REF, `l-${process.pid}`, '/bin/sh', '-c', RESOLVE_ALL()]);
    expect(r.status, r.stderr).toBe(0);
    checkResolved(r.stdout);
  }, 300_000);

  it('installs the CNI and the conflist from a read-only root, as the init container does', () => {
    const bin = path.join(dir, 'host-cni-bin');
    const conf = path.join(dir, 'host-cni-conf');
    fs.mkdirSync(bin);
    fs.mkdirSync(conf);
    const r = ctr([
      'run', '--rm', '--read-only', '--env', 'INSTALL_CONFLIST=true',
      '--mount', `type=bind,src=${bin},dst=/host/opt/cni/bin,options=rbind:rw`,
      '--mount', `type=bind,src=${conf},dst=/host/etc/cni/net.d,options=rbind:rw`,
      REF, `i-${process.pid}`, '/bin/sh', '/opt/sriov-underlay/install-cni.sh',
    ]);
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    // Every file installed is, byte for byte, one of the image's executables; the CNI type is there.
    const ours = new Set(list.filter((e) => e.path.startsWith('/opt/sriov-underlay/bin/') && e.sha256).map((e) => e.sha256));
    const installed = fs.readdirSync(bin);
    expect(installed).toContain('sriov-underlay');
    for (const f of installed) {
      const st = fs.statSync(path.join(bin, f));
      expect(st.mode & 0o111, f).not.toBe(0);
      expect(ours.has(sha256(fs.readFileSync(path.join(bin, f)))), `${f} is an image executable`).toBe(true);
    }
    expect(fs.readFileSync(path.join(conf, '10-sriov-underlay.conflist'), 'utf8')).toBe(fs.readFileSync(path.join(REPO, 'deploy/60-primary.conflist'), 'utf8'));
  }, 300_000);
});

describe.skipIf(!have('podman'))('podman (podman load, podman run)', () => {
  let dir: string;
  const podman = (args: string[], opts: { input?: string } = {}) =>
    spawnSync(
      'podman',
      ['--root', `${dir}/root`, '--runroot', `${dir}/run`, '--tmpdir', `${dir}/tmp`, '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', ...args],
      { encoding: 'utf8', timeout: 180_000, ...opts },
    );
  // podman raises RLIMIT_NOFILE/NPROC by default; without CAP_SYS_RESOURCE (as here) runc cannot.
  const RUN = ['run', '--rm', '--network=host', '--pull=never', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'image-podman-'));
  });
  afterAll(() => {
    if (!dir) return;
    podman(['rmi', '--all', '--force']);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('loads the archive under its name and digest, and runs the entrypoint and the CNI', () => {
    const load = podman(['load', '--input', a.archive]);
    expect(load.status, load.stderr).toBe(0);
    expect(load.stdout).toContain(`Loaded image: ${REF}`);
    const digest = podman(['image', 'inspect', '--format', '{{.Digest}}', REF]);
    expect(digest.stdout.trim()).toBe(a.digest);

    const help = podman([...RUN, REF, '--help']);
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: sriov-underlay-node/m);

    const v = podman([...RUN, '-i', '-e', 'CNI_COMMAND=VERSION', '--entrypoint', '/opt/sriov-underlay/bin/sriov-underlay', REF], { input: '{"cniVersion":"1.1.0"}' });
    expect(v.status, v.stderr).toBe(0);
    checkVersion(v.stdout);

    const r = podman([...RUN, '--entrypoint', '/bin/sh', REF, '-c', RESOLVE_ALL()]);
    expect(r.status, r.stderr).toBe(0);
    checkResolved(r.stdout);
  }, 600_000);
});
