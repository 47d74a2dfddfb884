/**
 * The pieces of `npm run image` that take input: the tar writer (read back by GNU tar, the same
 * bytes for the same entries in any order, refusing paths that escape or do not fit), the ldd
 * reader (an ELF whose library is gone is an error naming it), and missing build outputs (an error
 * saying what to run).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = path.resolve(__dirname, '../..');

interface TarEntry {
  path: string;
  type: 'dir' | 'file' | 'symlink';
  mode: number;
  data?: Buffer;
  target?: string;
}
let writeTar: (entries: TarEntry[], mtime: number) => Buffer;
let lddClosure: (elf: string) => Array<{ dest: string; src: string }>;
let tmp: string;

beforeAll(async () => {
  const tarPath = path.join(REPO, 'scripts/oci-tar.mjs');
  const imagePath = path.join(REPO, 'scripts/image.mjs');
  ({ writeTar } = (await import(tarPath)) as { writeTar: typeof writeTar });
  ({ lddClosure } = (await import(imagePath)) as { lddClosure: typeof lddClosure });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'image-script-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('writeTar', () => {
  // Longer than ustar's 100-byte name: split into its 155-byte prefix and name.
  const longDir = `${'a'.repeat(60)}/${'b'.repeat(60)}`;
  const long = `${longDir}/${'f'.repeat(90)}`;
  const entries: TarEntry[] = [
    { path: 'etc', type: 'dir', mode: 0o755 },
    { path: 'etc/passwd', type: 'file', mode: 0o644, data: Buffer.from('root:x:0:0::/root:/sbin/nologin\n') },
    { path: 'tmp', type: 'dir', mode: 0o1777 },
    { path: 'bin', type: 'dir', mode: 0o755 },
    { path: 'bin/name', type: 'symlink', mode: 0o777, target: 'prog' },
    { path: 'bin/prog', type: 'file', mode: 0o755, data: Buffer.alloc(513, 7) },
    { path: longDir.split('/')[0] as string, type: 'dir', mode: 0o755 },
    { path: longDir, type: 'dir', mode: 0o700 },
    { path: long, type: 'file', mode: 0o600, data: Buffer.from('x') },
  ];

  it('is read back by GNU tar with the declared types, modes, owners, mtime, sizes and contents', () => {
    const file = path.join(tmp, 'a.tar');
    fs.writeFileSync(file, writeTar(entries, 1_700_000_000));
    const listing = execFileSync('tar', ['--numeric-owner', '--full-time', '--utc', '-tvf', file], { encoding: 'utf8', env: { TZ: 'UTC', PATH: process.env.PATH } });
    expect(listing.trim().split('\n').map((l) => l.replace(/\s+/g, ' '))).toEqual([
      `drwxr-xr-x 0/0 0 2023-11-14 22:13:20 ${longDir.split('/')[0]}/`,
      `drwx------ 0/0 0 2023-11-14 22:13:20 ${longDir}/`,
      `-rw------- 0/0 1 2023-11-14 22:13:20 ${long}`,
      'drwxr-xr-x 0/0 0 2023-11-14 22:13:20 bin/',
      'lrwxrwxrwx 0/0 0 2023-11-14 22:13:20 bin/name -> prog',
      '-rwxr-xr-x 0/0 513 2023-11-14 22:13:20 bin/prog',
      'drwxr-xr-x 0/0 0 2023-11-14 22:13:20 etc/',
      '-rw-r--r-- 0/0 32 2023-11-14 22:13:20 etc/passwd',
      'drwxrwxrwt 0/0 0 2023-11-14 22:13:20 tmp/',
    ]);
    const out = path.join(tmp, 'x');
    fs.mkdirSync(out);
    execFileSync('tar', ['-xf', file, '-C', out]);
    expect(fs.readFileSync(path.join(out, 'bin/prog')).equals(Buffer.alloc(513, 7))).toBe(true);
    expect(fs.readlinkSync(path.join(out, 'bin/name'))).toBe('prog');
  });

  it('gives the same bytes for the same entries in any order', () => {
    const once = writeTar(entries, 0);
    expect(writeTar([...entries].reverse(), 0).equals(once)).toBe(true);
    expect(writeTar(entries, 1).equals(once)).toBe(false);
  });

  it('refuses absolute paths, .. components, paths and link targets too long for ustar, unknown types', () => {
    expect(() => writeTar([{ path: '/etc/passwd', type: 'file', mode: 0o644, data: Buffer.alloc(0) }], 0)).toThrow(/bad path/);
    expect(() => writeTar([{ path: 'a/../../etc/x', type: 'file', mode: 0o644, data: Buffer.alloc(0) }], 0)).toThrow(/bad path/);
    expect(() => writeTar([{ path: 'x'.repeat(101), type: 'dir', mode: 0o755 }], 0)).toThrow(/too long/);
    expect(() => writeTar([{ path: `${'p'.repeat(156)}/n`, type: 'dir', mode: 0o755 }], 0)).toThrow(/too long/);
    // One component over 100 bytes fits neither field.
    expect(() => writeTar([{ path: `d/${'c'.repeat(101)}`, type: 'file', mode: 0o644, data: Buffer.alloc(0) }], 0)).toThrow(/too long/);
    expect(() => writeTar([{ path: 'l', type: 'symlink', mode: 0o777, target: 't'.repeat(101) }], 0)).toThrow(/too long/);
    expect(() => writeTar([{ path: 'c', type: 'chardev' as 'file', mode: 0o644 }], 0)).toThrow(/unknown entry type/);
  });
});

describe('lddClosure', () => {
  it('names the loader and libc of a dynamic program, at the paths ldd prints', () => {
    const libs = lddClosure('/bin/dash').map((l) => l.dest);
    expect(libs.some((l) => /\/ld-linux-x86-64\.so\.2$/.test(l))).toBe(true);
    expect(libs.some((l) => /\/libc\.so\.6$/.test(l))).toBe(true);
  });

  it('refuses an ELF whose library cannot be found, naming it', () => {
    const lib = path.join(tmp, 'libgone.so');
    const prog = path.join(tmp, 'needs-gone');
    execFileSync('cc', ['-shared', '-fPIC', '-x', 'c', '-', '-o', lib], { input: 'int gone(void) { return 1; }\n' });
    execFileSync('cc', ['-x', 'c', '-', '-o', prog, `-L${tmp}`, '-lgone'], { input: 'int gone(void); int main(void) { return gone(); }\n' });
    fs.rmSync(lib);
    expect(() => lddClosure(prog)).toThrow(/needs libgone\.so, which ldd cannot find/);
  });
});

describe('scripts/image.mjs', () => {
  /** A repository holding the image script and its non-built inputs, nothing built. */
  function bareRepo(name: string): string {
    const root = path.join(tmp, name);
    fs.mkdirSync(path.join(root, 'scripts'), { recursive: true });
    for (const f of ['image.mjs', 'image-contents.mjs', 'oci-tar.mjs']) fs.copyFileSync(path.join(REPO, 'scripts', f), path.join(root, 'scripts', f));
    for (const f of ['package.json', 'scripts/install-cni.sh', 'deploy/60-primary.conflist']) {
      fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
      fs.copyFileSync(path.join(REPO, f), path.join(root, f));
    }
    return root;
  }
  const image = (root: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
    spawnSync(process.execPath, [path.join(root, 'scripts/image.mjs'), ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });

  it('says what to run when the build outputs are missing', () => {
    const r = image(bareRepo('repo'), ['--list']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^image: executable dist\/bin\/\S+ missing: run `npm run build` first\n$/);
  });

  it('refuses to name an image without a commit, or with a SOURCE_DATE_EPOCH that is not a time', () => {
    const root = bareRepo('nogit');
    const r = image(root, ['--out', path.join(root, 'out')], { GIT_CEILING_DIRECTORIES: tmp });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^image: git rev-parse HEAD failed in .*: the image's revision label is the commit\n$/);
    const git = (...a: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...a], { cwd: root, stdio: 'pipe' });
    git('init', '-q');
    git('add', '.');
    git('commit', '-qm', 'x');
    for (const bad of ['yesterday', '-1', '1e300', '1.5']) {
      const b = image(root, ['--out', path.join(root, 'out')], { SOURCE_DATE_EPOCH: bad });
      expect(b.status, bad).toBe(1);
      expect(b.stderr).toBe(`image: SOURCE_DATE_EPOCH (or the commit's time) must be whole seconds since 1970, got ${JSON.stringify(bad)}\n`);
    }
    expect(fs.existsSync(path.join(root, 'out'))).toBe(false);
  });
});
