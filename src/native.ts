/**
 * Loads the N-API addon (native/sriov_native.c), lazily: nothing is read or dlopen'ed until the
 * first call to native().
 *
 * - Inside a Node single-executable (SEA) the addon is the SEA asset `sriov_native.node`. SEA's
 *   require() only knows built-ins, so its bytes are written to an unnamed inode and loaded from
 *   there at every start (loadAddonBytes): never from a path another process could write.
 * - Otherwise it is native/build/Release/sriov_native.node under the repository root, found by
 *   walking up from this file (works from src/ under vitest/tsx and from a bundle in dist/), or
 *   the file named by SRIOV_UNDERLAY_ADDON.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CniCode, UnderlayError } from './errors';

export interface PacketFrame {
  payload: Buffer;
  srcMac: Buffer;
  /** PACKET_HOST 0, BROADCAST 1, MULTICAST 2, OTHERHOST 3, OUTGOING 4 */
  pktType: number;
}

export interface NativeAddon {
  setns(fd: number, nstype: number): void;
  /** false when LOCK_NB was given and another holder has the lock */
  flock(fd: number, op: number): boolean;
  close(fd: number): void;
  nlOpen(protocol: number, groups: number): number;
  nlSend(fd: number, buf: Buffer, len?: number): number;
  /** nlSend on a libuv pool thread (buf is copied at once): for requests the kernel takes long over, the netns move */
  nlSendAsync(fd: number, buf: Buffer): Promise<number>;
  /** one datagram, or null when nothing arrived within timeoutMs (-1 waits forever) */
  nlRecv(fd: number, timeoutMs: number): Buffer | null;
  /** calls cb (status 0, or a negative libuv error) on the event loop whenever fd is readable */
  nlWatch(fd: number, cb: (status: number) => void): void;
  nlUnwatch(fd: number): boolean;
  packetOpen(ifindex: number, ethertype: number): number;
  packetSend(fd: number, ifindex: number, dstMac: Buffer, ethertype: number, payload: Buffer): number;
  packetRecv(fd: number, timeoutMs: number): PacketFrame | null;
  /** SO_PEERCRED of a connected unix socket: who is on the other end, as the kernel recorded it */
  peerCred(fd: number): { pid: number; uid: number; gid: number };
  /** posix_spawn of `file` in a new session, stdio on pipes (our ends returned, close-on-exec); throws ENOSYS without pidfd_open (Linux < 5.3) before starting anything */
  spawnPiped(file: string, argv: string[], envp: string[]): { pid: number; pidfd: number; stdin: number; stdout: number; stderr: number };
  /** null while a spawnPiped child runs; else its exit, reaped */
  waitPid(pid: number): { code: number | null; signal: number | null } | null;
}

/** Error thrown by the addon: a system call failed. */
export interface NativeError extends Error {
  errno: number;
  code: string;
  syscall: string;
}

export function isNativeError(err: unknown): err is NativeError {
  return err instanceof Error && typeof (err as Partial<NativeError>).errno === 'number';
}

export const ADDON_ASSET = 'sriov_native.node';
const ADDON_RELATIVE = path.join('native', 'build', 'Release', 'sriov_native.node');

let loaded: NativeAddon | undefined;

export function native(): NativeAddon {
  return (loaded ??= load());
}

function load(): NativeAddon {
  if (isSea()) return loadSeaAsset();
  const mod = { exports: {} as NativeAddon };
  process.dlopen(mod, findInRepo());
  return mod.exports;
}

function isSea(): boolean {
  try {
    // node:sea exists from Node 20.12; older runtimes cannot be a SEA anyway.
    const sea = require('node:sea') as { isSea(): boolean };
    return sea.isSea();
  } catch {
    return false;
  }
}

function findInRepo(): string {
  const override = process.env.SRIOV_UNDERLAY_ADDON;
  if (override) return override;
  const tried: string[] = [];
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, ADDON_RELATIVE);
    if (fs.existsSync(candidate)) return candidate;
    tried.push(candidate);
    if (path.dirname(dir) === dir) break;
  }
  throw new UnderlayError(CniCode.Internal, `sriov native addon not found (run \`npm run build:native\`); looked at ${tried.join(', ')}`);
}

/**
 * Linux's O_TMPFILE (it includes O_DIRECTORY), the same value on x86-64 and arm64; node exposes no
 * constant for it but passes numeric open flags through. With O_EXCL the inode can never be linked
 * into a directory either.
 */
const O_TMPFILE = 0o20000000 | fs.constants.O_DIRECTORY;

/**
 * Where the unnamed addon inode is created. The directory does not matter for safety (the inode
 * never has a name in it); it must accept O_TMPFILE and allow exec mappings. /run for the CNI (the
 * host's); /run/sriov-underlay for the node daemon (its root is read-only, and the runtime mounts
 * its /dev/shm noexec); /dev/shm and the tmp dir for the CLI; last, the executable's own directory,
 * which can map code since it holds us, for hosts that mount all of the others noexec.
 */
export function defaultLoadDirs(): string[] {
  const { tmpdir } = require('node:os') as typeof import('node:os'); // only here: os costs a compile
  return ['/run', path.join('/run', 'sriov-underlay'), '/dev/shm', tmpdir(), path.dirname(process.execPath)];
}

/**
 * Loads addon bytes without ever giving them a name: they are written to an unnamed inode
 * (O_TMPFILE | O_EXCL) that only this process holds, and dlopen'ed through /proc/self/fd/N. No
 * other process can open, replace or link that inode (reaching it through /proc/<pid>/fd needs
 * ptrace rights over us), so no file another process can write is ever executed, wherever dirs
 * point. Each directory is tried in turn until one both creates the inode and maps it executable.
 */
export function loadAddonBytes<T = NativeAddon>(bytes: Buffer, dirs: readonly string[] = defaultLoadDirs()): T {
  const failures: string[] = [];
  for (const dir of dirs) {
    let fd: number;
    try {
      fd = fs.openSync(dir, O_TMPFILE | fs.constants.O_RDWR | fs.constants.O_EXCL, 0o500);
    } catch (e) {
      failures.push(`${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      continue;
    }
    try {
      for (let off = 0; off < bytes.length; ) off += fs.writeSync(fd, bytes, off, bytes.length - off);
      const mod = { exports: {} as T };
      process.dlopen(mod, fdPath(fd));
      return mod.exports;
    } catch (e) {
      failures.push(`${dir}: ${(e as Error).message}`);
    } finally {
      fs.closeSync(fd); // the mapping keeps the inode alive; it is freed when we exit
    }
  }
  throw new UnderlayError(CniCode.Internal, `sriov native addon: could not load it from an unnamed file (tried ${failures.join('; ')})`);
}

let loads = 0;

/**
 * /proc/self/fd/N, spelled differently at each load: glibc's dlopen returns an already loaded
 * object whose name matches the string before it opens anything, and fd numbers are reused.
 */
function fdPath(fd: number): string {
  return `/proc/self/fd/${'./'.repeat(loads++)}${fd}`;
}

function loadSeaAsset(): NativeAddon {
  const sea = require('node:sea') as { getRawAsset(name: string): ArrayBuffer };
  return loadAddonBytes(Buffer.from(sea.getRawAsset(ADDON_ASSET)));
}
