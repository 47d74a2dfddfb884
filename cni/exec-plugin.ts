/**
 * Exec a CNI plugin (delegated IPAM) with stdin piped in and stdout and stderr collected, in its own
 * process group. Through the native addon's posix_spawn (clone with CLONE_VM | CLONE_VFORK) rather
 * than child_process: libuv forks, which copies the page tables of the whole Node process, and in
 * the CNI server (a large process) that fork alone blocked the event loop 10–20 ms per exec, on
 * every ADD and DEL, serialising concurrent calls behind it. The exit comes from a pidfd watched on
 * the event loop. Kernels without pidfd_open (before 5.3) get child_process.spawn, as before.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { isNativeError, native } from '../src/native';

export interface PluginExit {
  /** Exit status, or null when a signal ended it. */
  code: number | null;
  stdout: Buffer;
  stderr: Buffer;
}

export interface PluginProcess {
  /** Settles once the program has exited and its stdout and stderr are closed; rejects if it could not be started. */
  done: Promise<PluginExit>;
  /** SIGKILL its whole process group (no-op once it has been reaped) and stop waiting for its output. */
  kill(): void;
}

let pidfdMissing = false;

/**
 * What a plugin may write to stdout, and to stderr, each: a CNI result is a few KiB (and ours must
 * fit the shim's 1 MiB). A plugin that writes more is killed at once and its call fails, before the
 * output can grow the server's memory (the timeout alone would let it write for a minute).
 */
export const PLUGIN_OUTPUT_MAX_BYTES = 1024 * 1024;

class OutputOverBound extends Error {
  constructor(stream: string) {
    super(`its ${stream} grew past ${PLUGIN_OUTPUT_MAX_BYTES} bytes; killed`);
  }
}

export function execPlugin(file: string, env: NodeJS.ProcessEnv, stdin: Buffer): PluginProcess {
  if (!pidfdMissing) {
    try {
      return viaPosixSpawn(file, env, stdin);
    } catch (e) {
      if (!(isNativeError(e) && e.code === 'ENOSYS')) return failed(e);
      pidfdMissing = true; // nothing was started: the addon checks for pidfd_open first
    }
  }
  return viaChildProcess(file, env, stdin);
}

function failed(e: unknown): PluginProcess {
  return { done: Promise.reject(e instanceof Error ? e : new Error(String(e))), kill() {} };
}

/** Everything `stream` carries until it closes, within PLUGIN_OUTPUT_MAX_BYTES (else `over` runs). */
function collect(stream: NodeJS.ReadableStream & { destroy(): void }, name: string, over: (e: OutputOverBound) => void): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  stream.on('data', (b: Buffer) => {
    size += b.length;
    if (size > PLUGIN_OUTPUT_MAX_BYTES) return over(new OutputOverBound(name));
    chunks.push(b);
  });
  return new Promise((resolve) => {
    stream.once('close', () => resolve(Buffer.concat(chunks)));
    stream.on('error', () => stream.destroy());
  });
}

function viaPosixSpawn(file: string, env: NodeJS.ProcessEnv, stdin: Buffer): PluginProcess {
  const envp: string[] = [];
  for (const [k, v] of Object.entries(env)) if (v !== undefined) envp.push(`${k}=${v}`);
  const n = native();
  const child = n.spawnPiped(file, [file], envp);
  // Pipes as net.Sockets: libuv reads and writes them non-blocking on the event loop.
  const input = writeStdinNow(child.stdin, stdin);
  const output = new net.Socket({ fd: child.stdout, readable: true, writable: false });
  const errors = new net.Socket({ fd: child.stderr, readable: true, writable: false });
  let reaped = false;
  const exited = new Promise<number | null>((resolve) => {
    const reap = () => {
      let code: number | null = null;
      try {
        const st = n.waitPid(child.pid);
        if (!st) return; // woken early: keep watching
        code = st.code;
      } catch {
        /* reaped elsewhere (ECHILD): its status is lost, report it as killed */
      }
      reaped = true;
      n.nlUnwatch(child.pidfd);
      fs.closeSync(child.pidfd);
      resolve(code);
    };
    // The pidfd turns readable when the program exits (the watch is the addon's generic fd watch).
    n.nlWatch(child.pidfd, reap);
  });
  let tooMuch: OutputOverBound | null = null;
  const kill = () => {
    // Until it is reaped its pid (= its process group) cannot be reused.
    if (!reaped) killGroup(child.pid);
    input?.destroy();
    output.destroy();
    errors.destroy();
  };
  const over = (e: OutputOverBound) => {
    tooMuch ??= e;
    kill();
  };
  const done = Promise.all([exited, collect(output, 'stdout', over), collect(errors, 'stderr', over)]).then(([code, stdout, stderr]) => {
    if (tooMuch) throw tooMuch;
    return { code, stdout, stderr };
  });
  return { done, kill };
}

/**
 * The request into the plugin's stdin, and the pipe closed, before this returns: a plugin reads
 * stdin to its end before it does anything, and a caller that blocks next (ADD's netns move, 15–25
 * ms in the kernel) would otherwise hold that end back until its event loop turns. Measured: the
 * plugin then finished ~3 ms after the move instead of during it. The fd is non-blocking (the
 * addon), so a request larger than the pipe takes the rest through the event loop instead.
 */
function writeStdinNow(fd: number, stdin: Buffer): net.Socket | null {
  let off = 0;
  try {
    while (off < stdin.length) off += fs.writeSync(fd, stdin, off);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') {
      fs.closeSync(fd); // EPIPE: exited without reading its stdin; its status tells
      return null;
    }
  }
  if (off === stdin.length) {
    fs.closeSync(fd);
    return null;
  }
  const input = new net.Socket({ fd, readable: false, writable: true });
  input.on('error', () => input.destroy());
  input.end(stdin.subarray(off));
  return input;
}

function viaChildProcess(file: string, env: NodeJS.ProcessEnv, stdin: Buffer): PluginProcess {
  const child = spawn(file, [], { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  let tooMuch: OutputOverBound | null = null;
  const kill = () => {
    if (child.pid) killGroup(child.pid);
  };
  const over = (e: OutputOverBound) => {
    tooMuch ??= e;
    kill();
    child.stdout.destroy();
    child.stderr.destroy();
  };
  const out = collect(child.stdout, 'stdout', over);
  const err = collect(child.stderr, 'stderr', over);
  child.stdin.on('error', () => {
    /* exited without reading its stdin: its status tells */
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => resolve(code));
  });
  const done = Promise.all([exited, out, err]).then(([code, stdout, stderr]) => {
    if (tooMuch) throw tooMuch;
    return { code, stdout, stderr };
  });
  child.stdin.end(stdin);
  return { done, kill };
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* exited meanwhile */
  }
}
