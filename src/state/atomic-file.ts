/**
 * Durable file writes: write a temp file, fsync it, rename over the target, fsync the directory.
 * A SIGKILL at any instant leaves either the old or the new content, never a torn file; what it can
 * leave is the temp file itself, which every reader of a state dir skips (listEntries) and cleans.
 * A power loss on a filesystem that lies about fsync, or a file from an older release, can still
 * leave an empty, truncated or unexpected target: readJsonFile tells that apart from a missing file
 * so callers can restore what they can and set the damaged file aside instead of failing forever.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** `<target>.tmp-<pid>`: the one temp-file name of every state-dir writer (writeFileDurable). */
const TEMP_RE = /\.tmp-\d+$/;
/** A temp file this old is a dead writer's: a live write takes milliseconds. Ages, not PIDs: the
 * readers (CNI, node daemon) live in different PID namespaces. */
export const STALE_TEMP_MS = 30_000;

export function isTempName(name: string): boolean {
  return TEMP_RE.test(name);
}

export function writeFileDurable(file: string, data: string | Buffer, mode = 0o600): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    const fd = fs.openSync(tmp, 'w', mode);
    try {
      fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    // ENOSPC, EROFS, EIO: leave no half-written temp file behind for the readers to trip on.
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dir);
}

/** Remove a file and any temp file a killed writer left beside it, then fsync the directory. */
export function removeFileDurable(file: string): void {
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
    return;
  }
  fsyncDir(path.dirname(file));
}

function fsyncDir(dir: string): void {
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

export type JsonFile =
  | { state: 'missing' }
  | { state: 'ok'; value: unknown }
  /** Present but not JSON: empty (power loss) or truncated. `text` is what was there. */
  | { state: 'damaged'; reason: string; text: string };

export function readJsonFile(file: string): JsonFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' };
    throw e;
  }
  if (text.trim() === '') return { state: 'damaged', reason: 'the file is empty', text };
  try {
    return { state: 'ok', value: JSON.parse(text) as unknown };
  } catch (e) {
    return { state: 'damaged', reason: `not valid JSON (${(e as Error).message})`, text };
  }
}

export function readJsonIfExists(file: string): unknown {
  const r = readJsonFile(file);
  if (r.state === 'damaged') throw new Error(`${file}: ${r.reason}`);
  return r.state === 'ok' ? r.value : undefined;
}

/**
 * Keep a damaged file for the operator, out of every reader's way: `<file>.bad-<epoch ms>`. Never
 * deletes it. Returns the new name, or null when even the rename failed (read-only dir).
 */
export function setAside(file: string, now = Date.now()): string | null {
  const to = `${file}.bad-${now}`;
  try {
    fs.renameSync(file, to);
    return to;
  } catch {
    return null;
  }
}
