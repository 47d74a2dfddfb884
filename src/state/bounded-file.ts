/**
 * Reading a JSON file that another process could have written or planted: never through a symlink
 * (O_NOFOLLOW), only a regular file (a FIFO would hang us, a device would stream forever), never
 * more than a stated number of bytes, and always through a zod schema. Errors name the file and the
 * field. Used by the CNI for its state and by the node agent for the release queue.
 */
import * as fs from 'node:fs';
import type * as z from 'zod/mini';
import { CniCode, UnderlayError } from '../errors';
import { describeIssues } from '../schemas/format';
import { formatVersion, type FormatId } from './formats';

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

/** The file's bytes; undefined when it does not exist. Throws (code 5) for anything else odd. */
export function readBounded(file: string, maxBytes: number): Buffer | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw new UnderlayError(CniCode.IoFailure, `${file} is a symlink; refusing to follow it`);
    throw new UnderlayError(CniCode.IoFailure, `${file} is unreadable: ${(e as Error).message}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new UnderlayError(CniCode.IoFailure, `${file} is not a regular file`);
    if (st.size > maxBytes) throw new UnderlayError(CniCode.IoFailure, `${file} is ${st.size} bytes, more than the ${maxBytes} allowed`);
    // One byte more than allowed: a file growing while we read is caught too.
    const buf = Buffer.alloc(maxBytes + 1);
    let n = 0;
    for (let r: number; n < buf.length && (r = fs.readSync(fd, buf, n, buf.length - n, n)) > 0; ) n += r;
    if (n > maxBytes) throw new UnderlayError(CniCode.IoFailure, `${file} is more than the ${maxBytes} bytes allowed`);
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Parse and validate a JSON file; undefined when it does not exist. `label` says what it is. With
 * `format`, a file of a newer version than this release reads throws FormatTooNewError
 * (src/state/formats.ts) before the schema runs, so callers can tell it from a damaged one.
 */
export function readJsonFile<S extends z.ZodMiniType>(file: string, schema: S, maxBytes: number, label: string, format?: FormatId): z.infer<S> | undefined {
  const bytes = readBounded(file, maxBytes);
  if (bytes === undefined) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new UnderlayError(CniCode.DecodeFailure, `${label} ${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (format) formatVersion(format, file, raw);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new UnderlayError(CniCode.DecodeFailure, describeIssues(`${label} ${file}`, parsed.error.issues));
  return parsed.data as z.infer<S>;
}

/**
 * Throws FormatTooNewError when `file` holds a newer format than this release reads: a writer calls
 * it before replacing a file, so a newer release's file is never overwritten. Missing, damaged or
 * unreadable files are the writer's to replace.
 */
export function refuseToReplaceNewer(file: string, format: FormatId, maxBytes: number): void {
  let r: JsonFile;
  try {
    r = readJsonState(file, maxBytes);
  } catch {
    return;
  }
  if (r.state === 'ok') formatVersion(format, file, r.value);
}

/** What a state file holds, for readers that restore what they can from a damaged one. */
export type JsonFile =
  | { state: 'missing' }
  | { state: 'ok'; value: unknown }
  /** Present but not JSON: empty (power loss) or truncated. `text` is what was there. */
  | { state: 'damaged'; reason: string; text: string };

/**
 * Like readJsonFile, but a present file that is not JSON is reported (`damaged`) instead of thrown,
 * so a caller can salvage what it names and set it aside (atomic-file.ts setAside). Files that are
 * symlinks, not regular, or over the bound still throw: those were planted, not torn.
 */
export function readJsonState(file: string, maxBytes: number): JsonFile {
  const bytes = readBounded(file, maxBytes);
  if (bytes === undefined) return { state: 'missing' };
  const text = bytes.toString('utf8');
  if (text.trim() === '') return { state: 'damaged', reason: 'the file is empty', text };
  try {
    return { state: 'ok', value: JSON.parse(text) as unknown };
  } catch (e) {
    return { state: 'damaged', reason: `not valid JSON (${(e as Error).message})`, text };
  }
}
