/**
 * Releasing delegated IPAM must not make DEL fail when the IPAM backend is down, and must not leak
 * either: a failed release is queued durably in the CNI's private state dir and retried by later
 * DEL and GC calls. A queued entry is executed only after src/schemas/ipam-pending.ts accepts it;
 * one that does not is set aside (renamed *.invalid), reported, and never run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../src/log';
import { IPAM_PENDING_DIR, IPAM_PENDING_MAX_BYTES, ipamPendingSchema, pendingEnv, type IpamPending } from '../src/schemas/ipam-pending';
import { readJsonFile } from '../src/state/bounded-file';
import { removeFileDurable, writeFileDurable } from '../src/state/atomic-file';
import { execIpam } from './ipam';
import type { Invocation } from './skel';

const pendingDir = (stateDir: string) => path.join(stateDir, IPAM_PENDING_DIR);
const ATTACHMENT_ENV = ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS'] as const;

function envFor(inv: Invocation): Record<string, string> {
  const e: Record<string, string> = {};
  for (const k of ATTACHMENT_ENV) {
    const v = inv.rawEnv[k];
    if (v !== undefined) e[k] = v;
  }
  return e;
}

/** The plugin's environment: ours without any CNI_* of this call, today's CNI_PATH, the attachment's CNI_*. */
function pluginEnv(inv: Invocation, attachment: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CNI_')) env[k] = v;
  env.CNI_PATH = inv.cniPath.join(':');
  for (const k of ATTACHMENT_ENV) if (attachment[k] !== undefined) env[k] = attachment[k];
  return env;
}

export async function releaseIpam(
  stateDir: string,
  inv: Invocation,
  ipamType: string,
  stdin: Buffer,
  log: Logger,
  env: Record<string, string> = envFor(inv),
): Promise<void> {
  try {
    await execIpam({ command: 'DEL', type: ipamType, cniPath: inv.cniPath, env: pluginEnv(inv, env), stdin });
  } catch (e) {
    const id = `${env.CNI_CONTAINERID ?? 'unknown'}_${env.CNI_IFNAME ?? ''}`;
    const entry: IpamPending = { type: ipamType, stdin: stdin.toString('utf8'), env: {} };
    for (const k of ATTACHMENT_ENV) if (env[k] !== undefined) entry.env[k] = env[k];
    writeFileDurable(path.join(pendingDir(stateDir), `${id}.json`), JSON.stringify(entry));
    log.warn({ err: (e as Error).message, attachment: id }, 'IPAM release failed; queued for retry');
  }
}

/**
 * Retry queued releases; each success removes its entry. Cheap when the queue is empty. Returns
 * the entries that failed validation (each message names the file and the field): they were set
 * aside and not run. Temp files of a writer (`*.json.tmp-PID`) are not entries and are skipped.
 */
export async function retryPendingReleases(stateDir: string, inv: Invocation, log: Logger): Promise<string[]> {
  let names: string[];
  try {
    names = fs.readdirSync(pendingDir(stateDir)).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  const invalid: string[] = [];
  for (const n of names) {
    const file = path.join(pendingDir(stateDir), n);
    let p: IpamPending | undefined;
    try {
      p = readJsonFile(file, ipamPendingSchema, IPAM_PENDING_MAX_BYTES, 'queued IPAM release');
    } catch (e) {
      const msg = `${(e as Error).message} (set aside as ${n}.invalid, not run)`;
      invalid.push(msg);
      log.error({ file }, msg);
      try {
        fs.renameSync(file, `${file}.invalid`);
      } catch {
        /* gone meanwhile */
      }
      continue;
    }
    if (!p) continue;
    try {
      await execIpam({ command: 'DEL', type: p.type, cniPath: inv.cniPath, env: pluginEnv(inv, pendingEnv(p)), stdin: Buffer.from(p.stdin) });
      removeFileDurable(file);
      log.info({ attachment: n }, 'queued IPAM release done');
    } catch (e) {
      log.warn({ attachment: n, err: (e as Error).message }, 'queued IPAM release still failing');
    }
  }
  return invalid;
}
