/**
 * Releasing delegated IPAM must not make DEL fail when the IPAM backend is down, and must not leak
 * either: a failed release is queued durably in the state dir and retried by later DEL and GC calls.
 */
import * as path from 'node:path';
import type { Logger } from '../src/log';
import { listEntries, readJsonFile, removeFileDurable, setAside, writeFileDurable } from '../src/state/atomic-file';
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
    const id = path.basename(queueIpamRelease(stateDir, inv, ipamType, stdin, env));
    log.warn({ err: (e as Error).message, attachment: id }, 'IPAM release failed; queued for retry');
  }
}

/**
 * Queue a release durably without running it, so a caller can drop the VF record and its lock
 * first and run the release after (releaseQueued): a SIGKILL in between leaves it queued, not lost.
 */
export function queueIpamRelease(stateDir: string, inv: Invocation, ipamType: string, stdin: Buffer, env: Record<string, string> = envFor(inv)): string {
  const id = `${env.CNI_CONTAINERID ?? 'unknown'}_${env.CNI_IFNAME ?? ''}`;
  const file = path.join(pendingDir(stateDir), `${id}.json`);
  writeFileDurable(file, JSON.stringify({ type: ipamType, stdin: stdin.toString('utf8'), env }));
  return file;
}

/** Run one queued release now; it stays queued (for the next DEL or GC) when it fails. */
export async function releaseQueued(file: string, inv: Invocation, log: Logger): Promise<void> {
  const r = readJsonFile(file);
  if (r.state !== 'ok') return; // done by a concurrent retry, or damaged (the next retry sets it aside)
  const p = r.value as PendingRelease;
  try {
    await execIpam({ command: 'DEL', type: p.type, cniPath: inv.cniPath, env: { ...process.env, ...p.env }, stdin: Buffer.from(p.stdin) });
    removeFileDurable(file);
  } catch (e) {
    log.warn({ err: (e as Error).message, attachment: path.basename(file) }, 'IPAM release failed; queued for retry');
  }
}

/** Retry queued releases; each success removes its entry. Cheap when the queue is empty. */
export async function retryPendingReleases(stateDir: string, inv: Invocation, log: Logger): Promise<void> {
  // Temp files of a killed writer are skipped; a damaged entry is set aside, never fatal: one bad
  // file must not block DEL and GC on the whole node.
  for (const n of listEntries(pendingDir(stateDir), '.json')) {
    const file = path.join(pendingDir(stateDir), n);
    const r = readJsonFile(file);
    if (r.state === 'missing') continue;
    const p = r.state === 'ok' ? (r.value as Partial<PendingRelease> | null) : null;
    if (!p || typeof p.type !== 'string' || typeof p.stdin !== 'string' || typeof p.env !== 'object' || p.env === null) {
      const aside = setAside(file);
      log.error({ file, setAside: aside, reason: r.state === 'damaged' ? r.reason : 'not a queued release' }, 'damaged queued IPAM release set aside; that address may need a manual release');
      continue;
    }
    try {
      await execIpam({ command: 'DEL', type: p.type, cniPath: inv.cniPath, env: { ...process.env, ...p.env }, stdin: Buffer.from(p.stdin) });
      removeFileDurable(file);
      log.info({ attachment: n }, 'queued IPAM release done');
    } catch (e) {
      log.warn({ attachment: n, err: (e as Error).message }, 'queued IPAM release still failing');
    }
  }
}
