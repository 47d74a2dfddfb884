/**
 * Releasing delegated IPAM must not make DEL fail when the IPAM backend is down, and must not leak
 * either: a failed release is queued durably in the state dir and retried by later DEL and GC calls.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../src/log';
import { readJsonIfExists, removeFileDurable, writeFileDurable } from '../src/state/atomic-file';
import { execIpam } from './ipam';
import type { Invocation } from './skel';

interface PendingRelease {
  type: string;
  stdin: string;
  env: Record<string, string>;
}

const pendingDir = (stateDir: string) => path.join(stateDir, 'ipam-pending');

function envFor(inv: Invocation): Record<string, string> {
  const e: Record<string, string> = {};
  for (const k of ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH']) {
    const v = inv.rawEnv[k];
    if (v !== undefined) e[k] = v;
  }
  return e;
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
    await execIpam({ command: 'DEL', type: ipamType, cniPath: inv.cniPath, env: { ...process.env, ...env }, stdin });
  } catch (e) {
    const id = `${env.CNI_CONTAINERID ?? 'unknown'}_${env.CNI_IFNAME ?? ''}`;
    writeFileDurable(path.join(pendingDir(stateDir), `${id}.json`), JSON.stringify({ type: ipamType, stdin: stdin.toString('utf8'), env }));
    log.warn({ err: (e as Error).message, attachment: id }, 'IPAM release failed; queued for retry');
  }
}

/** Retry queued releases; each success removes its entry. Cheap when the queue is empty. */
export async function retryPendingReleases(stateDir: string, inv: Invocation, log: Logger): Promise<void> {
  let names: string[];
  try {
    names = fs.readdirSync(pendingDir(stateDir));
  } catch {
    return;
  }
  for (const n of names) {
    const file = path.join(pendingDir(stateDir), n);
    const p = readJsonIfExists(file) as PendingRelease | undefined;
    if (!p) continue;
    try {
      await execIpam({ command: 'DEL', type: p.type, cniPath: inv.cniPath, env: { ...process.env, ...p.env }, stdin: Buffer.from(p.stdin) });
      removeFileDurable(file);
      log.info({ attachment: n }, 'queued IPAM release done');
    } catch (e) {
      log.warn({ attachment: n, err: (e as Error).message }, 'queued IPAM release still failing');
    }
  }
}
