/** Child processes for scenarios: iproute2 by full path (busybox's `ip` applet would shadow a bare `ip`). */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** iproute2's binary. Never copied or renamed: it picks its subcommand from argv[0]. */
export const IP = ['/usr/sbin/ip', '/sbin/ip', '/bin/ip', '/usr/bin/ip'].find((p) => existsSync(p)) ?? '/sbin/ip';
/** busybox-static provides ping (iputils may be absent on the host). */
export const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p)) ?? '/bin/busybox';

export function start(cmd: string, args: string[], opts: RunOptions = {}): ChildProcess {
  const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  // A child that exits without reading stdin (ip, or a CNI killed early) must not crash us with EPIPE.
  child.stdin?.on('error', () => {});
  if (opts.input) child.stdin?.end(opts.input);
  else child.stdin?.end();
  return child;
}

export function collect(child: ChildProcess, timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return collect(start(cmd, args, opts), opts.timeoutMs);
}

/** Run and require exit 0; the error carries the command and its stderr. */
export async function must(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    const why = r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
    throw new Error(`${[cmd, ...args].join(' ')}: ${why}: ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r.stdout;
}

export const ip = (...args: string[]): Promise<string> => must(IP, args);
export const tryIp = (...args: string[]): Promise<RunResult> => run(IP, args);

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll until `fn` returns a truthy value; throws naming `what` after `timeoutMs`. */
export async function waitFor<R>(what: string, fn: () => R | Promise<R>, timeoutMs = 30_000, everyMs = 200): Promise<NonNullable<R>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await fn();
    if (r) return r as NonNullable<R>;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}
