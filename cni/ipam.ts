/**
 * Delegated IPAM, exactly as sriov-cni and the reference plugins do it: exec the plugin named by
 * ipam.type from CNI_PATH with the call's environment and stdin (the standalone CNI's process
 * environment; in the CNI server, the environment the shim forwarded). Always asynchronous, with a
 * timeout that kills the plugin's process group, so a server's other calls keep running (cni/exec-plugin.ts). ADD is started before the device
 * work and awaited after it, so the plugin's start-up overlaps the slow netns move.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CniCode, UnderlayError, type CniCodeValue } from '../src/errors';
import { describeIssues } from '../src/schemas/format';
import { pluginName } from '../src/schemas/netconf';
import { execPlugin } from './exec-plugin';
import { parseResult, type CniResult } from './result';

export function findPlugin(type: string, cniPath: string[]): string {
  // libcni's rule (FindInPath): a bare name, looked up in CNI_PATH and nowhere else.
  const name = pluginName.safeParse(type);
  if (!name.success) throw new UnderlayError(CniCode.InvalidNetworkConfig, describeIssues(`IPAM plugin "${type}"`, name.error.issues));
  for (const dir of cniPath) {
    const p = path.join(dir, type);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* try the next dir */
    }
  }
  throw new UnderlayError(CniCode.InvalidNetworkConfig, `IPAM plugin "${type}" not found in CNI_PATH (${cniPath.join(':') || 'empty'})`);
}

export interface IpamCall {
  command: 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC';
  type: string;
  cniPath: string[];
  env: NodeJS.ProcessEnv;
  stdin: Buffer;
}

/**
 * No IPAM call may hang a CNI call (and the VF lock it holds) forever: past this the plugin's whole
 * process group is killed and the call fails clearly (DEL then queues the release for retry).
 * SRIOV_UNDERLAY_IPAM_TIMEOUT_MS in the runtime's environment overrides it (1 s .. 10 min).
 */
export const IPAM_TIMEOUT_MS = 60_000;

export function ipamTimeoutMs(env: NodeJS.ProcessEnv): number {
  const v = Number(env.SRIOV_UNDERLAY_IPAM_TIMEOUT_MS);
  return Number.isInteger(v) && v >= 1_000 && v <= 600_000 ? v : IPAM_TIMEOUT_MS;
}

/** Run the plugin; resolves with its stdout, rejects with its CNI error. */
export function execIpam(call: IpamCall, timeoutMs = ipamTimeoutMs(call.env)): Promise<string> {
  const bin = findPlugin(call.type, call.cniPath);
  return new Promise((resolve, reject) => {
    // Its own process group, so a timeout also kills whatever it started.
    const child = execPlugin(bin, { ...call.env, CNI_COMMAND: call.command }, call.stdin);
    const timer = setTimeout(() => {
      child.kill();
      reject(new UnderlayError(CniCode.TryAgainLater, `IPAM plugin ${call.type} ${call.command} did not answer within ${timeoutMs} ms; killed`));
    }, timeoutMs);
    child.done.then(
      ({ code, stdout: out, stderr }) => {
        clearTimeout(timer);
        const stdout = out.toString('utf8');
        if (code === 0) return resolve(stdout);
        let msg = stderr.toString('utf8').trim() || `exited with ${code}`;
        let cniCode: CniCodeValue = CniCode.Internal;
        let details: string | undefined;
        try {
          const e = JSON.parse(stdout) as { code?: number; msg?: string; details?: string };
          if (e.msg) msg = e.msg;
          if (typeof e.code === 'number') cniCode = e.code as CniCodeValue;
          details = e.details;
        } catch {
          /* not a CNI error object; keep stderr */
        }
        reject(new UnderlayError(cniCode, `IPAM plugin ${call.type} ${call.command} failed: ${msg}`, details));
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(new UnderlayError(CniCode.IoFailure, `IPAM plugin ${call.type}: ${(e as Error).message}`));
      },
    );
  });
}

export async function ipamAdd(call: Omit<IpamCall, 'command'>): Promise<CniResult> {
  const out = await execIpam({ ...call, command: 'ADD' });
  let raw: unknown;
  try {
    raw = JSON.parse(out);
  } catch {
    throw new UnderlayError(CniCode.DecodeFailure, `IPAM plugin ${call.type} returned invalid JSON`);
  }
  return parseResult(raw, `IPAM plugin ${call.type} result`);
}
