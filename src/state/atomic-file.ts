/**
 * Durable file writes: write a temp file, fsync it, rename over the target, fsync the directory.
 * A SIGKILL at any instant leaves either the old or the new content, never a torn file; what it can
 * leave is the temp file itself, which every reader of a state dir skips (listEntries) and cleans.
 * A power loss on a filesystem that lies about fsync, or a file from an older release, can still
 * leave an empty, truncated or unexpected target: reading goes through src/state/bounded-file.ts
 * (bounded, no symlinks), whose readJsonState tells that apart from a missing file so callers can
 * restore what they can and set the damaged file aside (setAside) instead of failing forever.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

/**
 * Temp-file names: `<target>.tmp-<pid>` (writeFileDurable, replaceFile) and `.<random>.tmp` (the release-queue
 * writer, which needs unpredictable names in a directory the node daemon can write).
 */
const TEMP_RE = /\.tmp-\d+$|^\..*\.tmp$/;
/** A temp file this old is a dead writer's: a live write takes milliseconds. Ages, not PIDs: the
 * readers (CNI, node daemon) live in different PID namespaces. */
export const STALE_TEMP_MS = 30_000;

export function isTempName(name: string): boolean {
  return TEMP_RE.test(name);
}

const fsyncFd = promisify(fs.fsync);

/**
 * fsync on the libuv pool: the event loop goes on meanwhile, so a journal commit (milliseconds on
 * this class of machine, a large share of a warm CNI call) holds up only the call that needs it,
 * never the CNI server's other calls, and can overlap this call's own kernel work.
 */
async function fsyncPath(p: string): Promise<void> {
  const fd = fs.openSync(p, 'r');
  try {
    await fsyncFd(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The new content is durable before it replaces the old (fsync, then rename); with `dir`, the
 * rename is durable too when this settles. Without `dir` (a later update of a file whose old
 * content was made durable): a power loss leaves the old or the new content, both complete.
 * Writers of one file must not overlap (the temp name is per process): callers hold its lock.
 */
export async function writeFileDurable(file: string, data: string | Buffer, opts: { dir: boolean; mode?: number }): Promise<void> {
  const { tmp, fd } = writeTemp(file, data, opts.mode);
  try {
    await fsyncFd(fd);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  } finally {
    fs.closeSync(fd);
  }
  renameInto(tmp, file);
  if (opts.dir) await fsyncPath(path.dirname(file));
}

/**
 * Replace a file atomically, nothing fsynced. A SIGKILL leaves the old or the new content (the page
 * cache survives the process); a power loss may leave old, new, none or an empty file: for what is
 * rebuilt or ignored when missing or invalid (an index whose reader validates it), or made durable
 * later with syncVisible.
 */
export function replaceFile(file: string, data: string | Buffer, mode = 0o600): void {
  const { tmp, fd } = writeTemp(file, data, mode);
  fs.closeSync(fd);
  renameInto(tmp, file);
}

/**
 * Make a file replaceFile just put in place durable, content and name, both fsyncs at once. Until
 * this settles a power loss can leave it empty, so its readers must tell an empty file apart and
 * the caller must not yet drop what would redo its work.
 */
export async function syncVisible(file: string): Promise<void> {
  await Promise.all([fsyncPath(file), fsyncPath(path.dirname(file))]);
}

/** `<file>.tmp-<pid>` with `data` in it, still open. ENOSPC, EROFS, EIO: no temp file is left behind. */
function writeTemp(file: string, data: string | Buffer, mode = 0o600): { tmp: string; fd: number } {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  // O_NOFOLLOW: a symlink planted under the temp name is an error, never a file written through.
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, mode);
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  return { tmp, fd };
}

function renameInto(tmp: string, file: string): void {
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Remove a file and any temp file a killed writer left beside it, then fsync the directory. */
export function removeFileDurable(file: string): void {
  if (removeFile(file)) fsyncDir(path.dirname(file));
}

/** removeFileDurable with the dir fsync on the libuv pool: removed when it returns, durable when it settles. */
export async function removeFileDurably(file: string): Promise<void> {
  if (removeFile(file)) await fsyncPath(path.dirname(file));
}

/**
 * removeFileDurable without the dir fsync: a SIGKILL cannot bring the file back, a power loss can.
 * Only for files whose return is harmless (an index entry the reader re-checks, a queued release
 * that is idempotent to run again). Returns whether a file was removed.
 */
export function removeFile(file: string): boolean {
  const dir = path.dirname(file);
  const prefix = `${path.basename(file)}.tmp-`;
  try {
    for (const n of fs.readdirSync(dir)) if (n.startsWith(prefix)) fs.rmSync(path.join(dir, n), { force: true });
  } catch {
    /* no dir, or a read-only one: nothing we can clean */
  }
  try {
    fs.unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    return false;
  }
  return true;
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The entries of a state dir that readers should look at: temp files are never returned, and those
 * older than STALE_TEMP_MS are removed (best effort: a read-only dir keeps them, harmlessly).
 * Set-aside files (setAside) are skipped too. A missing dir is empty.
 */
export function listEntries(dir: string, suffix = '', now = Date.now()): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const n of names) {
    if (isTempName(n)) {
      try {
        if (now - fs.lstatSync(path.join(dir, n)).mtimeMs > STALE_TEMP_MS) fs.rmSync(path.join(dir, n), { force: true });
      } catch {
        /* gone already, or read-only */
      }
      continue;
    }
    if (n.includes('.bad-')) continue;
    if (n.endsWith(suffix)) out.push(n);
  }
  return out.sort();
}

/**
 * Keep a damaged file for the operator, out of every reader's way: `<file>.bad-<epoch ms>`, in the
 * file's dir or in `intoDir` (same filesystem) for dirs an older release reads whole. Never
 * deletes it. Returns the new name, or null when even the rename failed (read-only dir).
 */
export function setAside(file: string, now = Date.now(), intoDir = path.dirname(file)): string | null {
  const to = path.join(intoDir, `${path.basename(file)}.bad-${now}`);
  try {
    if (intoDir !== path.dirname(file)) fs.mkdirSync(intoDir, { recursive: true, mode: 0o700 });
    fs.renameSync(file, to);
    return to;
  } catch {
    return null;
  }
}
