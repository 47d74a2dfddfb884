/**
 * Test-only peers of the CNI shim: a unix socket server that speaks the wire protocol of
 * docs/cni-server-protocol.md as each test's fault calls for (greets or not, replies whole, in half,
 * with garbage, never), and a way to run the shim as a runtime does. The real CNI server is
 * node/cni-server/; nothing here stands in for its logic, only for its bytes on the wire.
 */
import { spawn } from 'node:child_process';
import * as net from 'node:net';

export const PROTO = 'SRIOV-UNDERLAY-CNI/1';
export const GREETING = `${PROTO}\n`;

export interface ShimRequest {
  header: string;
  /** KEY=VALUE entries as sent, NUL separators removed. */
  env: Buffer[];
  stdin: Buffer;
}

/** Reads one request off the socket: header line, env block, stdin (lengths from the header). */
export function readRequest(sock: net.Socket): Promise<ShimRequest> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const nl = buf.indexOf(10);
      if (nl < 0) return;
      const header = buf.subarray(0, nl).toString('latin1');
      const m = /^SRIOV-UNDERLAY-CNI\/1 (\d+) (\d+)$/.exec(header);
      if (!m) {
        sock.off('data', onData);
        reject(new Error(`bad request header ${JSON.stringify(header)}`));
        return;
      }
      const envBytes = Number(m[1]);
      const stdinBytes = Number(m[2]);
      if (buf.length < nl + 1 + envBytes + stdinBytes) return;
      sock.off('data', onData);
      const block = buf.subarray(nl + 1, nl + 1 + envBytes);
      const env: Buffer[] = [];
      for (let at = 0; at < block.length; ) {
        const end = block.indexOf(0, at);
        env.push(Buffer.from(block.subarray(at, end)));
        at = end + 1;
      }
      resolve({ header, env, stdin: Buffer.from(buf.subarray(nl + 1 + envBytes, nl + 1 + envBytes + stdinBytes)) });
    };
    sock.on('data', onData);
    sock.on('error', () => undefined);
  });
}

export function replyBytes(exitCode: number, stdout: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${PROTO} ${exitCode} ${stdout.length}\n`), stdout]);
}

export interface TestServer {
  path: string;
  requests: ShimRequest[];
  connections: number;
  close(): Promise<void>;
}

/** A listener on `path`; `onConnection` decides what the peer does (the fault under test). */
export function listen(path: string, onConnection: (sock: net.Socket, server: TestServer) => void): Promise<TestServer> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    state.connections++;
    onConnection(sock, state);
  });
  const state: TestServer = {
    path,
    requests: [],
    connections: 0,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        srv.close(() => resolve());
      }),
  };
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(path, () => resolve(state));
  });
}

/** A well-behaved peer: greets, reads the request, answers with exitCode and stdout. */
export function answering(exitCode: number, stdout: Buffer): (sock: net.Socket, server: TestServer) => void {
  return (sock, server) => {
    sock.write(GREETING);
    void readRequest(sock).then(
      (req) => {
        server.requests.push(req);
        sock.end(replyBytes(exitCode, stdout));
      },
      () => sock.destroy(),
    );
  };
}

export interface ShimRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  ms: number;
}

/** Runs the shim with exactly `env` (nothing inherited) and `input` on stdin, asynchronously so
 * that a server in this process can answer. */
export function runShim(bin: string, env: NodeJS.ProcessEnv, input: Buffer | string, argv0?: string[]): Promise<ShimRun> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const [file, args] = argv0 ? [argv0[0]!, [...argv0.slice(1), bin]] : [bin, []];
    const child = spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdin.on('error', () => undefined); // the shim stops reading stdin over its bound
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out), stderr, ms: Number(process.hrtime.bigint() - started) / 1e6 }),
    );
    child.stdin.end(input);
  });
}
