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

/** Parse and validate a JSON file; undefined when it does not exist. `label` says what it is. */
export function readJsonFile<S extends z.ZodMiniType>(file: string, schema: S, maxBytes: number, label: string): z.infer<S> | undefined {
  const bytes = readBounded(file, maxBytes);
  if (bytes === undefined) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new UnderlayError(CniCode.DecodeFailure, `${label} ${file} is not valid JSON: ${(e as Error).message}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new UnderlayError(CniCode.DecodeFailure, describeIssues(`${label} ${file}`, parsed.error.issues));
  return parsed.data as z.infer<S>;
}
