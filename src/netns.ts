/**
 * Network namespaces: open one, run a function inside it and always come back.
 *
 * setns(CLONE_NEWNET) changes the namespace of the calling thread only. Node runs JS and every
 * synchronous fs call on the main thread, so inside withNetns() sockets opened and files under
 * /proc/sys/net written synchronously belong to the target netns. Async work would run later, on
 * other threads or after we switched back, so fn must be synchronous (enforced).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CniCode, UnderlayError } from './errors';
import { isNativeError, native } from './native';

export const CLONE_NEWNET = 0x40000000;

/** A netns operation failed; `sysCode` is the errno name ('ENOENT' when the netns is gone). */
export class NetnsError extends UnderlayError {
  constructor(
    message: string,
    readonly sysCode: string,
    options?: { cause?: unknown },
  ) {
    super(CniCode.IoFailure, message, undefined, options);
    this.name = 'NetnsError';
  }
}

function sysCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

/** Open a netns file (/var/run/netns/x, /proc/<pid>/ns/net) read-only; the fd is close-on-exec (libuv). */
export function openNetns(nsPath: string): number {
  try {
    return fs.openSync(nsPath, 'r'); // libuv opens with O_CLOEXEC
  } catch (err) {
    throw new NetnsError(`cannot open netns ${nsPath}: ${sysCode(err)}`, sysCode(err), { cause: err });
  }
}

/** An fd for the calling thread's current netns. */
export function currentNetnsFd(): number {
  return openNetns('/proc/thread-self/ns/net');
}

/** Inode of a netns (identity: two paths name the same netns iff the inodes match). */
export function netnsInode(nsPathOrFd: string | number = '/proc/thread-self/ns/net'): number {
  const st = typeof nsPathOrFd === 'number' ? fs.fstatSync(nsPathOrFd) : fs.statSync(nsPathOrFd);
  return st.ino;
}

function enter(fd: number, what: string): void {
  try {
    native().setns(fd, CLONE_NEWNET);
  } catch (err) {
    const code = isNativeError(err) ? err.code : sysCode(err);
    throw new NetnsError(`setns into ${what} failed: ${code}`, code, { cause: err });
  }
}

/**
 * Run fn inside the netns at `target` (a path or an open netns fd) and return its result. The
 * original netns is restored even when fn throws. fn must be synchronous.
 */
export function withNetns<T>(target: string | number, fn: () => T): T {
  const home = currentNetnsFd();
  let targetFd = -1;
  try {
    targetFd = typeof target === 'number' ? target : openNetns(target);
    enter(targetFd, typeof target === 'number' ? `netns fd ${target}` : target);
    try {
      const result = fn();
      if (result !== null && typeof (result as { then?: unknown })?.then === 'function') {
        throw new UnderlayError(CniCode.Internal, 'withNetns: fn returned a promise; it must be synchronous');
      }
      return result;
    } finally {
      // Coming back must not fail silently: a process left in a pod's netns would do damage.
      enter(home, 'the original netns');
    }
  } finally {
    if (typeof target !== 'number' && targetFd >= 0) fs.closeSync(targetFd);
    fs.closeSync(home);
  }
}

/**
 * Where sysctls are read and written: /proc/sys, except in the CNI server's container, whose
 * /proc/sys the runtime mounts read-only; there the server points this at a bind of the host's
 * /proc/sys/net (--cni-sysctl-root). A net.* sysctl file answers for the netns of the thread that
 * opens it, whichever mount it is reached through, so withNetns still chooses the pod's.
 */
let sysctlRoot = '/proc/sys';
export function setSysctlRoot(dir: string): void {
  sysctlRoot = dir;
}

/** Sysctl path for a key: 'net.ipv4.conf.all.arp_notify' or ['net','ipv4','conf','eth0.100','arp_notify']. */
export function sysctlPath(key: string | readonly string[]): string {
  const parts = typeof key === 'string' ? (key.includes('/') ? key.split('/') : key.split('.')) : key;
  for (const p of parts) {
    if (p === '' || p === '.' || p === '..' || p.includes('/')) {
      throw new UnderlayError(CniCode.InvalidNetworkConfig, `invalid sysctl key ${JSON.stringify(key)}`);
    }
  }
  return path.join(sysctlRoot, ...parts);
}

/** Write a sysctl in the calling thread's netns (call inside withNetns for a pod's netns). */
export function writeSysctl(key: string | readonly string[], value: string | number): void {
  const file = sysctlPath(key);
  try {
    fs.writeFileSync(file, String(value));
  } catch (err) {
    throw new UnderlayError(CniCode.IoFailure, `cannot write sysctl ${file}=${value}: ${sysCode(err)}`, undefined, {
      cause: err,
    });
  }
}

export function readSysctl(key: string | readonly string[]): string {
  const file = sysctlPath(key);
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new UnderlayError(CniCode.IoFailure, `cannot read sysctl ${file}: ${sysCode(err)}`, undefined, { cause: err });
  }
}
