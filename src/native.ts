/**
 * Loads the N-API addon (native/sriov_native.c), lazily: nothing is read or dlopen'ed until the
 * first call to native().
 *
 * - Inside a Node single-executable (SEA) the addon is the SEA asset `sriov_native.node`. SEA's
 *   require() only knows built-ins, so it is written once to a private file named by its content
 *   hash and loaded with process.dlopen.
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
  /** one datagram, or null when nothing arrived within timeoutMs (-1 waits forever) */
  nlRecv(fd: number, timeoutMs: number): Buffer | null;
  /** calls cb (status 0, or a negative libuv error) on the event loop whenever fd is readable */
  nlWatch(fd: number, cb: (status: number) => void): void;
  nlUnwatch(fd: number): boolean;
  packetOpen(ifindex: number, ethertype: number): number;
  packetSend(fd: number, ifindex: number, dstMac: Buffer, ethertype: number, payload: Buffer): number;
  packetRecv(fd: number, timeoutMs: number): PacketFrame | null;
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
  const file = isSea() ? extractSeaAsset() : findInRepo();
  const mod = { exports: {} as NativeAddon };
  process.dlopen(mod, file);
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

/** Where the SEA addon is written: /run/sriov-underlay when we can (root), else a tmp dir. */
export function defaultExtractDirs(): string[] {
  const { tmpdir } = require('node:os') as typeof import('node:os'); // only here: os costs a compile
  return [path.join('/run', 'sriov-underlay'), path.join(tmpdir(), `sriov-underlay-${process.getuid?.() ?? 'u'}`)];
}

function privateDir(dirs: readonly string[]): string {
  const uid = process.getuid?.();
  for (const dir of dirs) {
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      const st = fs.statSync(dir);
      // Refuse a directory someone else owns or can write to: we are about to dlopen from it.
      if ((uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0) continue;
      return dir;
    } catch {
      continue;
    }
  }
  throw new UnderlayError(CniCode.Internal, `sriov native addon: no private directory to write it to (tried ${dirs.join(', ')})`);
}

/** Short content identity for the file name: zlib's native crc32 (Node >= 20.15), else sha256. */
function contentId(bytes: Buffer): string {
  const zlib = require('node:zlib') as { crc32?: (b: Buffer) => number };
  if (typeof zlib.crc32 === 'function') return `${zlib.crc32(bytes).toString(16).padStart(8, '0')}-${bytes.length}`;
  const { createHash } = require('node:crypto') as typeof import('node:crypto');
  return `${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}-${bytes.length}`;
}

/**
 * Write the addon bytes to <dir>/sriov_native-<crc32>-<size>.node and return the path. The file is
 * only ever created by rename of a complete temp file in a directory only we can write, so a
 * regular file of the right size under that name has that content: it is reused without reading
 * it back. A content-named file also means a concurrent older or newer version never loads ours.
 */
export function materializeAddon(bytes: Buffer, dirs: readonly string[] = defaultExtractDirs()): string {
  const file = path.join(privateDir(dirs), `sriov_native-${contentId(bytes)}.node`);
  try {
    const st = fs.statSync(file);
    if (st.isFile() && st.size === bytes.length) return file;
  } catch {
    // not there yet
  }
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, bytes, { mode: 0o700 });
  fs.renameSync(tmp, file);
  return file;
}

function extractSeaAsset(): string {
  const sea = require('node:sea') as { getRawAsset(name: string): ArrayBuffer };
  return materializeAddon(Buffer.from(sea.getRawAsset(ADDON_ASSET)));
}
