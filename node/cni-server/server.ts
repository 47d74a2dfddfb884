/**
 * The CNI server: the node daemon's component that runs the CNI's ADD, DEL, CHECK, STATUS, GC and
 * VERSION (cni/main.ts runCni, the same code as the standalone executable) for the shim
 * (native/cni-shim.c), warm, over a root-only unix socket. The wire is docs/cni-server-protocol.md.
 *
 * One connection, one call. Each connection is checked (peer uid 0), greeted, read with bounds
 * (the header before the body, everything within READ_TIMEOUT_MS), run with a deadline, answered
 * and closed. A bad or slow connection only ever costs itself: nothing it sends reaches runCni
 * until the whole request is in and valid.
 *
 * Concurrency: calls run interleaved on the one JS thread. Every netns section of the CNI is
 * synchronous (src/netns.ts withNetns refuses a promise), so the thread is back in the host netns
 * whenever another call's code can run; test/host/cni-server-concurrency.test.ts proves it.
 */
import * as net from 'node:net';
import { CniCode, UnderlayError } from '../../src/errors';
import type { Logger } from '../../src/log';
import { native } from '../../src/native';
import type { NetConf } from '../../src/schemas/netconf';
import { runCni, type CniOutcome } from '../../cni/main';
import { closeRootOnly, listenRootOnly } from '../unix-socket';
import { BadRequest, errorReply, GREETING, MAX_HEADER_BYTES, MAX_STDOUT_BYTES, parseEnvBlock, parseHeader, reply, type RequestHeader } from './wire';

/** From accept to the last request byte: the shim sends everything at once (≤ 1 MiB + 64 KiB). */
export const READ_TIMEOUT_MS = 5_000;
/** After a refusal, how long the peer may go on sending (discarded) before the connection is cut. */
export const REFUSED_DRAIN_MS = 1_000;
/** Above the CNI's own bounds (VF lock 20 s, agent 10 s, IPAM 60 s), below the shim's reply bound (100 s, docs/cni-server-protocol.md) and kubelet's CRI timeout (2 min). */
export const COMMAND_DEADLINE_MS = 90_000;
/** How long a stop waits for calls in flight. */
export const STOP_GRACE_MS = 30_000;
/** More concurrent connections are closed at accept: the shim sees no greeting and falls back. */
export const MAX_CONNECTIONS = 256;

/** What the server reports about each call (metrics; a no-op without them). */
export interface CallObserver {
  started(): void;
  /** command: the CNI command, or "invalid" when the request never named one. */
  finished(command: string, result: string, seconds: number): void;
  refused(reason: string): void;
}

export interface CniServerOptions {
  socketPath: string;
  log: Logger;
  commandDeadlineMs?: number;
  readTimeoutMs?: number;
  stopGraceMs?: number;
  maxConnections?: number;
  observer?: CallObserver;
  /** Readiness of the server itself for STATUS (besides what the CNI's STATUS checks). */
  statusChecks?: (conf: NetConf) => Promise<void>;
  /** The peer's uid; default SO_PEERCRED through the native addon (tests cannot fake the kernel). */
  peerUid?: (sock: net.Socket) => number;
}

export interface CniServer {
  socketPath: string;
  /** Calls whose command is running (including those already answered at their deadline). */
  inFlight(): number;
  /** Stop accepting, wait for calls in flight (bounded by stopGraceMs), remove the socket. */
  stop(): Promise<void>;
  stopping(): boolean;
}

const NOOP: CallObserver = { started() {}, finished() {}, refused() {} };

function socketFd(sock: net.Socket): number {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('no fd for the accepted connection');
  return fd;
}

export function peerUidOf(sock: net.Socket): number {
  return native().peerCred(socketFd(sock)).uid;
}

export async function startCniServer(opts: CniServerOptions): Promise<CniServer> {
  const log = opts.log.child({ component: 'cni-server', servedBy: 'server' });
  const observer = opts.observer ?? NOOP;
  const running = new Set<Promise<unknown>>();
  /** Connections: all, and those still sending their request (nothing run for them yet). */
  const open = new Set<net.Socket>();
  const reading = new Set<net.Socket>();
  let stopping = false;
  const peerUid = opts.peerUid ?? peerUidOf;

  const server = net.createServer({ pauseOnConnect: false }, (sock) => {
    let uid: number;
    try {
      uid = peerUid(sock);
    } catch (e) {
      observer.refused('peer-unknown');
      log.warn({ err: (e as Error).message }, 'connection closed: cannot tell who the peer is');
      sock.destroy();
      return;
    }
    if (uid !== 0) {
      observer.refused('peer-not-root');
      log.warn({ uid }, 'connection closed: peer is not root (SO_PEERCRED)');
      sock.destroy();
      return;
    }
    if (stopping) {
      sock.destroy(); // no greeting: the shim falls back
      return;
    }
    open.add(sock);
    reading.add(sock);
    sock.once('close', () => {
      open.delete(sock);
      reading.delete(sock);
    });
    serve(sock);
  });
  server.maxConnections = opts.maxConnections ?? MAX_CONNECTIONS;

  function serve(sock: net.Socket): void {
    sock.on('error', () => sock.destroy()); // a peer gone mid-reply; its command is unaffected
    sock.write(GREETING);
    let buf: Buffer = Buffer.alloc(0);
    let header: RequestHeader | null = null;
    let done = false;
    const readTimeoutMs = opts.readTimeoutMs ?? READ_TIMEOUT_MS;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      observer.refused('read-timeout');
      log.warn({ got: buf.length, header: !!header }, `request not complete within ${readTimeoutMs} ms; connection closed`);
      sock.destroy();
    }, readTimeoutMs);
    const refuse = (err: UnderlayError) => {
      done = true;
      clearTimeout(timer);
      observer.refused('bad-request');
      log.warn({ code: err.code, err: err.message }, 'request refused');
      // Discard what the peer still sends and close once it stops, within a bound: closing with its
      // bytes unread makes the kernel reset the connection, and the peer can lose this reply to it.
      sock.removeAllListeners('data');
      sock.on('data', () => undefined);
      sock.end(errorReply(err));
      const drain = setTimeout(() => sock.destroy(), REFUSED_DRAIN_MS);
      sock.once('close', () => clearTimeout(drain));
    };
    const onData = (chunk: Buffer) => {
      if (done) return;
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      try {
        if (!header) {
          const nl = buf.subarray(0, MAX_HEADER_BYTES).indexOf(0x0a);
          if (nl === -1) {
            if (buf.length >= MAX_HEADER_BYTES) throw new BadRequest(CniCode.DecodeFailure, `request header: no end of line within ${MAX_HEADER_BYTES} bytes (the bound)`);
            return;
          }
          header = parseHeader(buf.subarray(0, nl));
          buf = buf.subarray(nl + 1);
        }
        const need = header.envBytes + header.stdinBytes;
        if (buf.length < need) return;
        // Bytes beyond the announced body are not read: the request is what the header said.
        const env = parseEnvBlock(buf.subarray(0, header.envBytes));
        const stdin = Buffer.from(buf.subarray(header.envBytes, need));
        done = true;
        clearTimeout(timer);
        sock.removeListener('data', onData);
        sock.pause();
        reading.delete(sock);
        run(sock, env, stdin);
      } catch (e) {
        if (e instanceof BadRequest) return refuse(e);
        throw e;
      }
    };
    sock.on('data', onData);
    sock.once('end', () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      log.debug({ got: buf.length }, 'peer closed before its request was complete');
      sock.destroy();
    });
  }

  function run(sock: net.Socket, env: Record<string, string>, stdin: Buffer): void {
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    const command = env.CNI_COMMAND ?? '';
    observer.started();
    // The command runs to its end (or its rollback) whatever happens to the connection or the
    // deadline: abandoning it half way could leave a VF half-moved.
    const work = runCni({ env, stdin }, { servedBy: 'server', ...(opts.statusChecks ? { statusChecks: opts.statusChecks } : {}) }).catch(
      (e: unknown): CniOutcome => ({ stdout: Buffer.from(`${JSON.stringify(new UnderlayError(CniCode.Internal, `CNI server: ${(e as Error).message}`).toCni('1.1.0'))}\n`), exitCode: 1 }),
    );
    running.add(work);
    const deadlineMs = opts.commandDeadlineMs ?? COMMAND_DEADLINE_MS;
    let answered = false;
    const deadline = setTimeout(() => {
      answered = true;
      observer.finished(commandLabel(command), 'deadline', seconds());
      log.error({ cmd: command, container: env.CNI_CONTAINERID, deadlineMs }, 'command past its deadline: answered "try again later"; it goes on to its end');
      const err = new UnderlayError(
        CniCode.TryAgainLater,
        `CNI server: ${command} did not finish within ${deadlineMs} ms; it goes on to its end in the server (a DEL that follows waits for it)`,
      );
      if (!sock.destroyed) sock.end(errorReply(err));
    }, deadlineMs);
    void work.then((out) => {
      clearTimeout(deadline);
      running.delete(work);
      const result = out.exitCode === 0 ? 'ok' : `error-${cniCodeOf(out.stdout)}`;
      if (answered) {
        log.warn({ cmd: command, container: env.CNI_CONTAINERID, result, seconds: seconds() }, 'command finished after its deadline');
        observer.finished(commandLabel(out.command ?? command), `late-${result}`, seconds());
        return;
      }
      observer.finished(commandLabel(out.command ?? command), result, seconds());
      log.debug({ cmd: command, container: env.CNI_CONTAINERID, result, seconds: seconds() }, 'call served');
      let bytes = out.stdout;
      let code = out.exitCode;
      if (bytes.length > MAX_STDOUT_BYTES) {
        bytes = Buffer.from(`${JSON.stringify(new UnderlayError(CniCode.Internal, `CNI server: result larger than ${MAX_STDOUT_BYTES} bytes`).toCni('1.1.0'))}\n`);
        code = 1;
      }
      if (sock.destroyed) {
        log.info({ cmd: command, container: env.CNI_CONTAINERID, result }, 'peer gone before the reply; the command completed');
        return;
      }
      sock.end(reply(code, bytes));
    });
  }

  const prior = await listenRootOnly(server, opts.socketPath);
  log.info({ socket: opts.socketPath, prior }, 'CNI server listening');

  return {
    socketPath: opts.socketPath,
    inFlight: () => running.size,
    stopping: () => stopping,
    async stop() {
      if (stopping) return;
      stopping = true;
      const closed = closeRootOnly(server, opts.socketPath);
      // Connections still sending their request have run nothing: close them now.
      for (const s of reading) s.destroy();
      const grace = opts.stopGraceMs ?? STOP_GRACE_MS;
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        Promise.allSettled([...running]).then(() => 'drained' as const),
        new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), grace))),
      ]);
      clearTimeout(timer);
      if (outcome === 'timeout') log.error({ inFlight: running.size, graceMs: grace }, 'stopping with calls still in flight');
      for (const s of open) s.destroy();
      await closed;
      log.info('CNI server stopped');
    },
  };
}

const KNOWN = new Set(['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION']);
/** Bounded label values: a peer cannot create metric series. */
function commandLabel(c: string): string {
  return KNOWN.has(c) ? c : 'invalid';
}

function cniCodeOf(stdout: Buffer): number | 'unknown' {
  try {
    const code = (JSON.parse(stdout.toString('utf8')) as { code?: unknown }).code;
    return typeof code === 'number' && Number.isInteger(code) && code >= 0 && code < 1000 ? code : 'unknown';
  } catch {
    return 'unknown';
  }
}
