import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isNativeError, loadAddonBytes, native } from '../../src/native';
import { NETLINK_ROUTE } from '../../src/netlink/constants';

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const addonPath = path.resolve(__dirname, '../../native/build/Release/sriov_native.node');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-native-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('addon errors', () => {
  it('carry errno, code and syscall', () => {
    let err: unknown;
    try {
      native().setns(987654, 0);
    } catch (e) {
      err = e;
    }
    expect(isNativeError(err)).toBe(true);
    expect(err).toMatchObject({ errno: 9, code: 'EBADF', syscall: 'setns' });
  });

  it('reject wrong argument types with a TypeError', () => {
    expect(() => (native().flock as unknown as (a: string) => boolean)('x')).toThrow(TypeError);
  });
});

describe('flock', () => {
  it('a second open file description cannot take the lock with LOCK_NB', () => {
    const file = path.join(tmp, 'vf.lock');
    const a = fs.openSync(file, 'w');
    const b = fs.openSync(file, 'r');
    try {
      expect(native().flock(a, LOCK_EX | LOCK_NB)).toBe(true);
      expect(native().flock(b, LOCK_EX | LOCK_NB)).toBe(false);
      native().flock(a, LOCK_UN);
      expect(native().flock(b, LOCK_EX | LOCK_NB)).toBe(true);
    } finally {
      fs.closeSync(a);
      fs.closeSync(b);
    }
  });

  it('the kernel releases the lock of a SIGKILLed holder', async () => {
    const file = path.join(tmp, 'killed.lock');
    fs.writeFileSync(file, '');
    const child = spawn(
      process.execPath,
      ['-e', `const n=require(${JSON.stringify(addonPath)});const fd=require('fs').openSync(${JSON.stringify(file)},'r');n.flock(fd,${LOCK_EX});console.log('locked');setInterval(()=>{},1000);`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
      child.on('exit', () => reject(new Error('child exited early')));
    });
    const fd = fs.openSync(file, 'r');
    try {
      expect(native().flock(fd, LOCK_EX | LOCK_NB)).toBe(false);
      const exited = new Promise((r) => child.on('exit', r));
      child.kill('SIGKILL');
      await exited;
      expect(native().flock(fd, LOCK_EX | LOCK_NB)).toBe(true);
    } finally {
      fs.closeSync(fd);
    }
  });
});

describe('sockets', () => {
  it('nlRecv and packetRecv return null on timeout', () => {
    const n = native();
    const fd = n.nlOpen(NETLINK_ROUTE, 0);
    try {
      expect(n.nlRecv(fd, 0)).toBeNull();
      expect(n.nlRecv(fd, 20)).toBeNull();
    } finally {
      n.close(fd);
    }
    const pfd = n.packetOpen(1, 0x88b5); // loopback, local experimental ethertype: nothing arrives
    try {
      expect(n.packetRecv(pfd, 20)).toBeNull();
    } finally {
      n.close(pfd);
    }
  });

  it('nlWatch refuses a second watch on the same fd; nlUnwatch reports whether it removed one', () => {
    const n = native();
    const fd = n.nlOpen(NETLINK_ROUTE, 0);
    try {
      n.nlWatch(fd, () => undefined);
      expect(() => n.nlWatch(fd, () => undefined)).toThrow(/EEXIST/);
      expect(n.nlUnwatch(fd)).toBe(true);
      expect(n.nlUnwatch(fd)).toBe(false);
    } finally {
      n.close(fd);
    }
  });
});

describe('SEA addon loading (loadAddonBytes)', () => {
  type Loaded = { setns: unknown; flock(fd: number, op: number): boolean };
  const mappedFrom = (dir: string) =>
    fs
      .readFileSync('/proc/self/maps', 'utf8')
      .split('\n')
      .filter((l) => l.includes(` ${dir}/`));

  it('loads from an unnamed inode: nothing is ever named in the directory, and the copy works', () => {
    const bytes = fs.readFileSync(addonPath);
    const dir = path.join(tmp, 'run');
    fs.mkdirSync(dir);
    const addon = loadAddonBytes<Loaded>(bytes, [dir]);
    expect(typeof addon.setns).toBe('function');
    expect(fs.readdirSync(dir)).toEqual([]);
    // The kernel names an O_TMPFILE inode "<dir>/#<ino> (deleted)": the mapping is that inode.
    const maps = mappedFrom(dir);
    expect(maps.length).toBeGreaterThan(0);
    expect(maps.every((l) => / \/.*\/#\d+ \(deleted\)$/.test(l))).toBe(true);
    const fd = fs.openSync(path.join(tmp, 'copy.lock'), 'w');
    try {
      expect(addon.flock(fd, LOCK_EX | LOCK_NB)).toBe(true);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('skips a directory that is missing, not a directory, read-only, full or mounted noexec, and names each when none works', () => {
    // (as the node daemon finds /run, /dev/shm and the tmp dir in its container; full: the daemon
    // can fill the host's /run through its /run/sriov-underlay mount)
    const bytes = fs.readFileSync(addonPath);
    const missing = path.join(tmp, 'missing');
    const file = path.join(tmp, 'a-file');
    fs.writeFileSync(file, '');
    const noexec = path.join(tmp, 'noexec');
    fs.mkdirSync(noexec);
    const readonly = path.join(tmp, 'readonly');
    fs.mkdirSync(readonly);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'noexec,size=4m', 'tmpfs', noexec]);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=4m', 'tmpfs', readonly]);
    const full = path.join(tmp, 'full');
    fs.mkdirSync(full);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes.length >> 1}`, 'tmpfs', full]);
    try {
      const good = path.join(tmp, 'good');
      fs.mkdirSync(good);
      expect(typeof loadAddonBytes<Loaded>(bytes, [missing, file, readonly, full, noexec, good]).setns).toBe('function');
      expect(mappedFrom(good).length).toBeGreaterThan(0);
      // (a failed dlopen leaves its first, read-only segment mapped: nothing executable)
      expect(mappedFrom(noexec).filter((l) => l.split(' ')[1]?.includes('x'))).toEqual([]);
      let err: Error | undefined;
      try {
        loadAddonBytes(bytes, [missing, file, readonly, full, noexec]);
      } catch (e) {
        err = e as Error;
      }
      expect(err?.message).toMatch(/could not load it from an unnamed file/);
      expect(err?.message).toContain(`${missing}: ENOENT`);
      expect(err?.message).toContain(`${file}: ENOTDIR`);
      expect(err?.message).toContain(`${readonly}: EROFS`);
      expect(err?.message).toMatch(new RegExp(`${full}: ENOSPC`));
      expect(fs.readdirSync(full)).toEqual([]);
      expect(err?.message).toMatch(new RegExp(`${noexec}: .*(failed to map segment|Operation not permitted)`));
    } finally {
      // Lazily: glibc leaves the first segment of a failed dlopen mapped, which keeps the mount busy.
      execFileSync('umount', ['--lazy', noexec]);
      execFileSync('umount', [readonly]);
      execFileSync('umount', [full]);
    }
  });

  it('rejects bytes that are not a shared object, naming the directory', () => {
    const dir = path.join(tmp, 'junk');
    fs.mkdirSync(dir);
    expect(() => loadAddonBytes(Buffer.from('not an ELF file'), [dir])).toThrow(new RegExp(`${dir}: .*(invalid ELF header|too short)`));
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
