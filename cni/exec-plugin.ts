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

function collect(sock: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  sock.on('data', (b: Buffer) => chunks.push(b));
  return new Promise((resolve) => {
    sock.once('close', () => resolve(Buffer.concat(chunks)));
    sock.on('error', () => sock.destroy());
  });
}

function viaPosixSpawn(file: string, env: NodeJS.ProcessEnv, stdin: Buffer): PluginProcess {
  const envp: string[] = [];
  for (const [k, v] of Object.entries(env)) if (v !== undefined) envp.push(`${k}=${v}`);
  const n = native();
  const child = n.spawnPiped(file, [file], envp);
  // Pipes as net.Sockets: libuv reads and writes them non-blocking on the event loop.
  const input = new net.Socket({ fd: child.stdin, readable: false, writable: true });
  const output = new net.Socket({ fd: child.stdout, readable: true, writable: false });
  const errors = new net.Socket({ fd: child.stderr, readable: true, writable: false });
  input.on('error', () => input.destroy()); // exited without reading its stdin: its status tells
  input.end(stdin);
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
  const done = Promise.all([exited, collect(output), collect(errors)]).then(([code, stdout, stderr]) => ({ code, stdout, stderr }));
  return {
    done,
    kill() {
      // Until it is reaped its pid (= its process group) cannot be reused.
      if (!reaped) killGroup(child.pid);
      input.destroy();
      output.destroy();
      errors.destroy();
    },
  };
}

function viaChildProcess(file: string, env: NodeJS.ProcessEnv, stdin: Buffer): PluginProcess {
  const child = spawn(file, [], { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  child.stdin.on('error', () => {
    /* exited without reading its stdin: its status tells */
  });
  const done = new Promise<PluginExit>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err) }));
  });
  child.stdin.end(stdin);
  return {
    done,
    kill() {
      if (child.pid) killGroup(child.pid);
    },
  };
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* exited meanwhile */
  }
}
