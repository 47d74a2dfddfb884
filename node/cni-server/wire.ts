/**
 * The CNI server's side of docs/cni-server-protocol.md (version 1): the greeting, the request
 * header and environment block it accepts, and the reply it writes. Parsing only; no I/O.
 */
import * as z from 'zod/mini';
import { CniCode, UnderlayError } from '../../src/errors';
import { describeIssues } from '../../src/schemas/format';

export const PROTOCOL = 'SRIOV-UNDERLAY-CNI/1';
export const GREETING = Buffer.from(`${PROTOCOL}\n`);
/** The header line including its "\n". */
export const MAX_HEADER_BYTES = 64;
export const MAX_ENV_BYTES = 64 * 1024;
export const MAX_ENV_ENTRIES = 256;
export const MAX_STDIN_BYTES = 1024 * 1024;
export const MAX_STDOUT_BYTES = 1024 * 1024;

/** ASCII decimal, no sign, no leading zero, at most 7 digits (the bounds fit). */
const count = (max: number, what: string) =>
  z.pipe(
    z.string().check(z.regex(/^(0|[1-9][0-9]{0,6})$/, `must be a decimal byte count (no sign, no leading zero, at most 7 digits)`)),
    z.pipe(
      z.transform((s: string) => Number(s)),
      z.number().check(z.maximum(max, `${what} is larger than the bound of ${max} bytes`)),
    ),
  );

const headerSchema = z.object({
  protocol: z.literal(PROTOCOL, `must be ${PROTOCOL}`),
  envBytes: count(MAX_ENV_BYTES, 'the environment block'),
  stdinBytes: count(MAX_STDIN_BYTES, 'stdin'),
});
export type RequestHeader = { envBytes: number; stdinBytes: number };

/** A refused request: the CNI error (code 4 environment, 6 stdin or header) the server replies with. */
export class BadRequest extends UnderlayError {}

/** Parse the header line (without its "\n"). */
export function parseHeader(line: Buffer): RequestHeader {
  // latin1 keeps one char per byte: a non-ASCII byte shows in the message instead of vanishing.
  const parts = line.toString('latin1').split(' ');
  if (parts.length !== 3) throw new BadRequest(CniCode.DecodeFailure, `request header: must be "${PROTOCOL} <envBytes> <stdinBytes>", got ${parts.length} space-separated fields`);
  const r = headerSchema.safeParse({ protocol: parts[0], envBytes: parts[1], stdinBytes: parts[2] });
  if (!r.success) {
    const envIssue = r.error.issues.some((i) => i.path[0] === 'envBytes');
    throw new BadRequest(envIssue ? CniCode.InvalidEnv : CniCode.DecodeFailure, describeIssues('request header', r.error.issues));
  }
  return { envBytes: r.data.envBytes, stdinBytes: r.data.stdinBytes };
}

/** What the shim forwards (CNI_* and SRIOV_UNDERLAY_*); anything else is a bug or an attack. */
const KEY_RE = /^(CNI_|SRIOV_UNDERLAY_)[A-Z0-9_]*$/;

/** Parse the environment block: `KEY=VALUE\0` entries. */
export function parseEnvBlock(block: Buffer): Record<string, string> {
  const env: Record<string, string> = Object.create(null) as Record<string, string>;
  if (block.length === 0) return env;
  if (block[block.length - 1] !== 0) throw new BadRequest(CniCode.InvalidEnv, 'request environment: the block must end with a NUL after its last KEY=VALUE entry');
  let entries = 0;
  for (let start = 0; start < block.length; ) {
    const end = block.indexOf(0, start);
    if (++entries > MAX_ENV_ENTRIES) throw new BadRequest(CniCode.InvalidEnv, `request environment: more than ${MAX_ENV_ENTRIES} entries (the bound)`);
    const entry = block.subarray(start, end).toString('utf8');
    start = end + 1;
    const eq = entry.indexOf('=');
    const key = eq <= 0 ? '' : entry.slice(0, eq);
    if (!KEY_RE.test(key)) {
      const shown = JSON.stringify((eq <= 0 ? entry : key).slice(0, 64));
      throw new BadRequest(CniCode.InvalidEnv, `request environment: entry ${entries} (key ${shown}) is not KEY=VALUE with a key CNI_* or SRIOV_UNDERLAY_* of [A-Z0-9_]`);
    }
    if (key in env) throw new BadRequest(CniCode.InvalidEnv, `request environment: ${key} appears twice`);
    env[key] = entry.slice(eq + 1);
  }
  return env;
}

/** The reply: header, then the stdout bytes. */
export function reply(exitCode: number, stdout: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${PROTOCOL} ${exitCode} ${stdout.length}\n`), stdout]);
}

/** A reply carrying a CNI error (the server's own: refused request, deadline, stopping). */
export function errorReply(err: UnderlayError): Buffer {
  return reply(1, Buffer.from(`${JSON.stringify(err.toCni('1.1.0'))}\n`));
}
