/**
 * The processes the demo starts, each the way it runs for real: the fake API server in standalone
 * mode, the node daemon as the built executable, the CNI executed once per call with CNI_* env and
 * the netconf on stdin (as Multus does).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';

/** The environment for our children: NODE_EXTRA_CA_CERTS only slows node's start-up. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

export interface Started {
  child: ChildProcess;
  /** SIGTERM, then SIGKILL after graceMs; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

function stopper(child: ChildProcess): Started['stop'] {
  return (graceMs = 5_000) =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    });
}

export interface FakeApi extends Started {
  url: string;
  kubeconfig: string;
}

/**
 * test/fakes/kube-apiserver in standalone mode, on a free port; resolves on its ready line. `args`:
 * more of its flags (test/fakes/kube-apiserver/main.ts: --tls, --node-token NODE=TOKEN, ...).
 */
export function startFakeApi(repo: string, kubeconfig: string, logFile: string, args: string[] = []): Promise<FakeApi> {
  const child = spawn(process.execPath, [path.join(repo, 'test/fakes/kube-apiserver/run.mjs'), '--port', '0', '--kubeconfig', kubeconfig, ...args], {
    env: childEnv(),
    stdio: ['ignore', 'pipe', fs.openSync(logFile, 'a')],
    detached: true,
  });
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout! });
    const timer = setTimeout(() => fail(new Error('fake API server: no ready line within 60 s')), 60_000);
    const fail = (e: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(e);
    };
    child.once('exit', (code) => fail(new Error(`fake API server exited with ${code} before it was ready (log: ${logFile})`)));
    lines.once('line', (line) => {
      clearTimeout(timer);
      child.removeAllListeners('exit');
      const ready = JSON.parse(line) as { url: string };
      resolve({ child, url: ready.url, kubeconfig, stop: stopper(child) });
    });
  });
}

/** dist/bin/sriov-underlay-node with the given flags, its pino log to logFile. */
export function startNodeDaemon(bin: string, args: string[], logFile: string): Started {
  const child = spawn(bin, args, { env: childEnv(), stdio: ['ignore', 'ignore', fs.openSync(logFile, 'a')], detached: true });
  return { child, stop: stopper(child) };
}

export interface CniCall {
  code: number | null;
  stdout: string;
  stderr: string;
  json: Record<string, unknown> | null;
}

/** One CNI invocation, exactly as a runtime makes it. */
export function execCni(bin: string, command: string, env: Record<string, string>, netconf: object): Promise<CniCall> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [], {
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: command, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      let json: Record<string, unknown> | null = null;
      try {
        json = JSON.parse(stdout) as Record<string, unknown>;
      } catch {
        json = null;
      }
      resolve({ code, stdout, stderr, json });
    });
    child.stdin.end(JSON.stringify(netconf));
  });
}
