/**
 * scripts/install-cni.sh, the init container that puts the standalone CNI and the shim into
 * /opt/cni/bin, run for real with sh against a temp host tree: the order (the shim never without
 * its fallback), whole files only, what a half-written earlier install or a leftover temp file
 * leaves, a running old binary replaced, and no rewrite when nothing changed.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const SCRIPT = path.resolve(__dirname, '../../scripts/install-cni.sh');
let tmp: string;
let src: string;
let bin: string;

/** A script that prints its version. */
const program = (version: string, pad = 0) => `#!/bin/sh\n# ${'x'.repeat(pad)}\necho ${version}\n`;

function image(node: string, shim: string | null): void {
  fs.mkdirSync(path.join(src, 'bin'), { recursive: true });
  fs.writeFileSync(path.join(src, 'bin', 'sriov-underlay-node'), node, { mode: 0o755 });
  const shimPath = path.join(src, 'bin', 'sriov-underlay');
  fs.rmSync(shimPath, { force: true });
  if (shim !== null) fs.writeFileSync(shimPath, shim, { mode: 0o755 });
}

function install(env: Record<string, string> = {}): { code: number | null; out: string } {
  const r = spawnSync('sh', [SCRIPT], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CNI_BIN_DIR: bin, CNI_CONF_DIR: path.join(tmp, 'net.d'), SRIOV_UNDERLAY_SRC: src, ...env } });
  return { code: r.status, out: r.stdout + r.stderr };
}

const run = (name: string, ...args: string[]) => spawnSync(path.join(bin, name), args, { encoding: 'utf8' }).stdout.trim();

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'install-cni-'));
  src = path.join(tmp, 'image');
  bin = path.join(tmp, 'opt-cni-bin');
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('scripts/install-cni.sh', () => {
  it('installs the standalone CNI (a copy of the one executable) and the shim, executable, with no temp file left', () => {
    image(program('node-2'), program('shim-2'));
    const r = install();
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(`installed ${bin}/sriov-underlay-cni`);
    expect(run('sriov-underlay-cni')).toBe('node-2');
    expect(run('sriov-underlay')).toBe('shim-2');
    for (const n of ['sriov-underlay-cni', 'sriov-underlay']) {
      const st = fs.lstatSync(path.join(bin, n));
      expect(st.isFile()).toBe(true);
      expect(st.mode & 0o777).toBe(0o755);
    }
    expect(fs.readdirSync(bin).sort()).toEqual(['sriov-underlay', 'sriov-underlay-cni']);
  });

  it('rewrites nothing when the content is the same (same inode, same mtime), and repairs a mode', () => {
    image(program('node-2', 4096), program('shim-2'));
    expect(install().code).toBe(0);
    const before = ['sriov-underlay-cni', 'sriov-underlay'].map((n) => fs.statSync(path.join(bin, n)));
    fs.chmodSync(path.join(bin, 'sriov-underlay'), 0o644);
    const r = install();
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(`unchanged ${bin}/sriov-underlay-cni`);
    expect(r.out).toContain(`unchanged ${bin}/sriov-underlay`);
    const after = ['sriov-underlay-cni', 'sriov-underlay'].map((n) => fs.statSync(path.join(bin, n)));
    expect(after.map((s) => [s.ino, s.mtimeMs])).toEqual(before.map((s) => [s.ino, s.mtimeMs]));
    expect(after[1]!.mode & 0o777).toBe(0o755);
  });

  it('replaces a half-written earlier install and ignores a half-written temp file a killed run left', () => {
    const full = program('node-3', 100_000);
    image(full, program('shim-3'));
    fs.mkdirSync(bin, { recursive: true });
    // An older installer copied in place and was killed: the first half of the same new content.
    fs.writeFileSync(path.join(bin, 'sriov-underlay-cni'), full.slice(0, full.length / 2), { mode: 0o755 });
    // A run of this script killed during its copy, and a temp name planted as a link.
    fs.writeFileSync(path.join(bin, '.sriov-underlay-cni.new'), full.slice(0, 10));
    const elsewhere = path.join(tmp, 'elsewhere');
    fs.writeFileSync(elsewhere, 'untouched');
    fs.symlinkSync(elsewhere, path.join(bin, '.sriov-underlay.new'));
    const r = install();
    expect(r.code, r.out).toBe(0);
    expect(fs.readFileSync(path.join(bin, 'sriov-underlay-cni'), 'utf8')).toBe(full);
    expect(run('sriov-underlay')).toBe('shim-3');
    expect(fs.readFileSync(elsewhere, 'utf8')).toBe('untouched');
    expect(fs.readdirSync(bin).sort()).toEqual(['sriov-underlay', 'sriov-underlay-cni']);
  });

  it('replaces binaries that are running: the old processes go on, new calls get the new ones', async () => {
    // Real ELF executables (coreutils' sleep with a version trailer): the kernel refuses writes
    // into a running one (ETXTBSY), which a script run by sh would not show.
    const sleep = fs.readFileSync('/usr/bin/sleep');
    const elf = (v: string) => Buffer.concat([sleep, Buffer.from(v)]);
    fs.mkdirSync(path.join(src, 'bin'), { recursive: true });
    const put = (v: string) => {
      for (const n of ['sriov-underlay-node', 'sriov-underlay']) fs.writeFileSync(path.join(src, 'bin', n), elf(`${n}-${v}`), { mode: 0o755 });
    };
    put('old');
    expect(install().code).toBe(0);
    const running = ['sriov-underlay-cni', 'sriov-underlay'].map((n) => spawn(path.join(bin, n), ['30'], { stdio: 'ignore' }));
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      put('new');
      const r = install();
      expect(r.code, r.out).toBe(0);
      expect(fs.readFileSync(path.join(bin, 'sriov-underlay-cni')).equals(elf('sriov-underlay-node-new'))).toBe(true);
      expect(fs.readFileSync(path.join(bin, 'sriov-underlay')).equals(elf('sriov-underlay-new'))).toBe(true);
      for (const p of running) expect(p.exitCode).toBeNull();
      // The old inodes are still what runs.
      for (const p of running) expect(fs.readFileSync(`/proc/${p.pid}/exe`).subarray(-3).toString()).toBe('old');
      expect(spawnSync(path.join(bin, 'sriov-underlay-cni'), ['0']).status).toBe(0);
    } finally {
      for (const p of running) p.kill('SIGKILL');
    }
  });

  it('never installs the shim without its fallback: a failed standalone install stops before the shim', () => {
    image(program('node-1'), program('shim-1'));
    expect(install().code).toBe(0);
    image(program('node-2'), program('shim-2'));
    // The standalone cannot be copied (its source is unreadable as a file): the script stops there.
    fs.rmSync(path.join(src, 'bin', 'sriov-underlay-node'));
    fs.mkdirSync(path.join(src, 'bin', 'sriov-underlay-node'));
    const r = install();
    expect(r.code).not.toBe(0);
    expect(r.out).toContain('sriov-underlay-node is missing from the image');
    expect(run('sriov-underlay')).toBe('shim-1');
    expect(run('sriov-underlay-cni')).toBe('node-1');
    // On a fresh node, nothing at all.
    fs.rmSync(bin, { recursive: true });
    expect(install().code).not.toBe(0);
    expect(fs.readdirSync(bin)).toEqual([]);
  });

  it('killed between its two installs (no shim in the image), the standalone is whole and the old shim untouched', () => {
    image(program('node-1'), program('shim-1'));
    expect(install().code).toBe(0);
    image(program('node-2'), null);
    const r = install();
    expect(r.code).not.toBe(0);
    expect(run('sriov-underlay-cni')).toBe('node-2');
    expect(run('sriov-underlay')).toBe('shim-1');
  });

  it('installs the primary-network conflist only when asked, under a name the runtime reads only when whole', () => {
    image(program('n'), program('s'));
    fs.mkdirSync(path.join(src, 'conf'));
    fs.writeFileSync(path.join(src, 'conf', '10-sriov-underlay.conflist'), '{"cniVersion":"1.0.0"}');
    expect(install().code).toBe(0);
    expect(fs.existsSync(path.join(tmp, 'net.d'))).toBe(false);
    expect(install({ INSTALL_CONFLIST: 'true' }).code).toBe(0);
    expect(fs.readdirSync(path.join(tmp, 'net.d'))).toEqual(['10-sriov-underlay.conflist']);
    expect(fs.statSync(path.join(tmp, 'net.d', '10-sriov-underlay.conflist')).mode & 0o777).toBe(0o644);
  });
});
