/**
 * The agent's side of the CNI socket: a unix socket readable only by root (mode 0600, created under
 * a 0177 umask so there is no window with wider permissions, in a 0700 directory). One JSON request
 * line, one JSON answer line, then the connection is closed. Requests are validated; a handler
 * error becomes an `ok:false` answer carrying its CNI code, so the CNI reports what the agent knows.
 *
 * Time bounds (the CNI waits AGENT_TIMEOUT_MS = 10 s for the answer, cni/agent-client.ts):
 * - a connection that has not sent its request line within IDLE_MS (5 s) is closed;
 * - once the request line is in, nothing times the connection out: a request being answered is
 *   never cut. Instead the answer itself is bounded: a handler still busy after ANSWER_DEADLINE_MS
 *   (8 s) is answered "try again later" (code 11), so the CNI always hears why before its own
 *   deadline. Below that: each Kubernetes API call gives up after API_TIMEOUT_MS (4 s,
 *   src/kube/client.ts) and one pool allocation after ALLOCATION_TIMEOUT_MS (7 s).
 */
import * as net from 'node:net';
import { asUnderlayError, CniCode } from '../../src/errors';
import type { Logger } from '../../src/log';
import { closeRootOnly, listenRootOnly } from '../unix-socket';
import { describeIssues } from '../../src/schemas/format';
import { lookupRequestSchema, PROTOCOL_VERSION, reportRequestSchema, type LookupAnswer, type LookupRequest, type ReportRequest } from '../../src/schemas/agent-protocol';

export type LookupHandler = (req: LookupRequest) => Promise<LookupAnswer>;
/** A CNI report (an Event to record); answered at once with ok. */
export type ReportHandler = (req: ReportRequest) => void;

const MAX_REQUEST_BYTES = 16 * 1024;
/** Until the request line is complete. */
export const IDLE_MS = 5_000;
/** Below the CNI's 10 s, with room for the answer to travel. */
export const ANSWER_DEADLINE_MS = 8_000;

export interface CniSocketOptions {
  /** Default ANSWER_DEADLINE_MS (tests shorten it). */
  answerDeadlineMs?: number;
  /** Default IDLE_MS. */
  idleMs?: number;
}

export interface CniSocketServer {
  path: string;
  close(): Promise<void>;
}

export async function startCniSocket(socketPath: string, handler: LookupHandler, log: Logger, onReport?: ReportHandler, opts: CniSocketOptions = {}): Promise<CniSocketServer> {
  const server = net.createServer((conn) => serve(conn, handler, log, onReport, opts));
  await listenRootOnly(server, socketPath);
  log.info({ socket: socketPath }, 'CNI socket listening');
  return {
    path: socketPath,
    close: () => closeRootOnly(server, socketPath),
  };
}

function serve(conn: net.Socket, handler: LookupHandler, log: Logger, onReport: ReportHandler | undefined, opts: CniSocketOptions): void {
  let buf = '';
  let done = false;
  conn.setEncoding('utf8');
  conn.setTimeout(opts.idleMs ?? IDLE_MS, () => {
    if (!done) conn.destroy(); // still waiting for the request line
  });
  conn.on('error', () => conn.destroy());
  const answer = (a: LookupAnswer) => {
    done = true;
    conn.end(`${JSON.stringify(a)}\n`);
  };
  conn.on('data', (chunk: string) => {
    if (done) return;
    buf += chunk;
    const nl = buf.indexOf('\n');
    if ((nl === -1 ? buf.length : nl) > MAX_REQUEST_BYTES) {
      // Answer, then close: a client still sending is not read to its end.
      done = true;
      conn.end(`${JSON.stringify(fail(CniCode.DecodeFailure, `request longer than ${MAX_REQUEST_BYTES} bytes`))}\n`, () => conn.destroy());
      return;
    }
    if (nl === -1) return;
    const line = buf.slice(0, nl);
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      return answer(fail(CniCode.DecodeFailure, 'request is not JSON'));
    }
    if ((raw as { op?: unknown } | null)?.op === 'report') {
      const r = reportRequestSchema.safeParse(raw);
      if (!r.success) return answer(fail(CniCode.DecodeFailure, describeIssues('agent report', r.error.issues)));
      onReport?.(r.data);
      return answer({ v: PROTOCOL_VERSION, ok: true, registered: false });
    }
    const parsed = lookupRequestSchema.safeParse(raw);
    if (!parsed.success) return answer(fail(CniCode.DecodeFailure, describeIssues('agent request', parsed.error.issues)));
    done = true;
    conn.setTimeout(0); // answering: never cut (the answer deadline below bounds it instead)
    const started = process.hrtime.bigint();
    const deadlineMs = opts.answerDeadlineMs ?? ANSWER_DEADLINE_MS;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<LookupAnswer>((resolve) => {
      timer = setTimeout(
        () => resolve(fail(CniCode.TryAgainLater, `pod ${parsed.data.namespace}/${parsed.data.name}: the agent could not finish within ${deadlineMs} ms (Kubernetes API slow?); try again`)),
        deadlineMs,
      );
    });
    const work = handler(parsed.data).catch((e: unknown) => {
      const u = asUnderlayError(e);
      return fail(u.code, u.message, u.details);
    });
    void Promise.race([work, late]).then((a) => {
      clearTimeout(timer);
      log.debug(
        { op: 'lookup', namespace: parsed.data.namespace, pod: parsed.data.name, ok: a.ok, us: Number((process.hrtime.bigint() - started) / 1000n) },
        'CNI lookup served',
      );
      conn.end(`${JSON.stringify(a)}\n`);
    });
  });
}

export function fail(code: number, message: string, details?: string): LookupAnswer {
  return details ? { v: PROTOCOL_VERSION, ok: false, code, message, details } : { v: PROTOCOL_VERSION, ok: false, code, message };
}
