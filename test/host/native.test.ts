import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isNativeError, materializeAddon, native } from '../../src/native';
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

describe('SEA addon extraction', () => {
  it('writes the addon once into a private dir, reuses an identical file, and it loads', () => {
    const bytes = fs.readFileSync(addonPath);
    const dir = path.join(tmp, 'run');
    const file = materializeAddon(bytes, [dir]);
    expect(path.dirname(file)).toBe(dir);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.readFileSync(file).equals(bytes)).toBe(true);
    const ino = fs.statSync(file).ino;
    expect(materializeAddon(bytes, [dir])).toBe(file);
    expect(fs.statSync(file).ino).toBe(ino); // reused, not rewritten
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    // different content gets a different name
    const other = Buffer.from(bytes);
    other.writeUInt8(other.readUInt8(other.length - 1) ^ 0xff, other.length - 1);
    expect(materializeAddon(other, [dir])).not.toBe(file);
    const mod = { exports: {} as Record<string, unknown> };
    process.dlopen(mod, file);
    expect(typeof mod.exports.setns).toBe('function');
  });

  it('replaces a truncated file with the same name', () => {
    const bytes = fs.readFileSync(addonPath);
    const dir = path.join(tmp, 'run2');
    const file = materializeAddon(bytes, [dir]);
    fs.writeFileSync(file, bytes.subarray(0, 100));
    expect(materializeAddon(bytes, [dir])).toBe(file);
    expect(fs.readFileSync(file).equals(bytes)).toBe(true);
  });

  it('skips a directory others can write to', () => {
    const bytes = Buffer.from('not really an addon');
    const open = path.join(tmp, 'open');
    fs.mkdirSync(open, { mode: 0o777 });
    fs.chmodSync(open, 0o777);
    const priv = path.join(tmp, 'priv');
    expect(path.dirname(materializeAddon(bytes, [open, priv]))).toBe(priv);
    expect(() => materializeAddon(bytes, [open])).toThrow(/no private directory/);
  });
});
