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

/**
 * Temp-file names: `<target>.tmp-<pid>` (writeFileDurable) and `.<random>.tmp` (the release-queue
 * writer, which needs unpredictable names in a directory the node daemon can write).
 */
const TEMP_RE = /\.tmp-\d+$|^\..*\.tmp$/;
/** A temp file this old is a dead writer's: a live write takes milliseconds. Ages, not PIDs: the
 * readers (CNI, node daemon) live in different PID namespaces. */
export const STALE_TEMP_MS = 30_000;

export function isTempName(name: string): boolean {
  return TEMP_RE.test(name);
}

/** The new content and its name are both on disk when this returns (two fsyncs: file, dir). */
export function writeFileDurable(file: string, data: string | Buffer, mode = 0o600): void {
  replaceFile(file, data, { syncContent: true, mode });
  fsyncDir(path.dirname(file));
}

/**
 * Each fsync costs milliseconds (a journal commit) and is most of a warm CNI call, so callers that
 * do not need all of writeFileDurable's promise say what they need (the crash reasoning is theirs):
 *
 * - syncContent true: the content is fsynced, the rename is not waited for. A SIGKILL leaves old
 *   or new (the page cache survives the process); a power loss leaves old or new too, both
 *   complete, since the old content was itself made durable: for a file whose old content is a
 *   valid state (a record's later update).
 * - syncContent false: nothing is fsynced. A SIGKILL still leaves old or new; a power loss may
 *   leave old, new, none or an empty or torn file: for what is rebuilt or ignored when it is
 *   missing or invalid (an index whose reader validates it).
 */
export function replaceFile(file: string, data: string | Buffer, opts: { syncContent: boolean; mode?: number }): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    // O_NOFOLLOW: a symlink planted under the temp name is an error, never a file written through.
    const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, opts.mode ?? 0o600);
    try {
      fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      if (opts.syncContent) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    // ENOSPC, EROFS, EIO: leave no half-written temp file behind for the readers to trip on.
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Remove a file and any temp file a killed writer left beside it, then fsync the directory. */
export function removeFileDurable(file: string): void {
  if (removeFile(file)) fsyncDir(path.dirname(file));
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
