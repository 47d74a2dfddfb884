/**
 * Releasing delegated IPAM must not make DEL fail when the IPAM backend is down, and must not leak
 * either: a failed release is queued durably in the CNI's private state dir and retried by later
 * DEL and GC calls. A queued entry is executed only after src/schemas/ipam-pending.ts accepts it;
 * one that does not is set aside (moved to ipam-pending.set-aside/*.bad-<ms>), reported, and never
 * run. One of a newer release's format is reported and left where it is, never run or replaced.
 */
import * as path from 'node:path';
import type { Logger } from '../src/log';
import { IPAM_PENDING_DIR, IPAM_PENDING_MAX_BYTES, IPAM_PENDING_SET_ASIDE_DIR, ipamPendingSchema, pendingEnv, type IpamPending } from '../src/schemas/ipam-pending';
import { readJsonFile, refuseToReplaceNewer } from '../src/state/bounded-file';
import { isTooNew, THIS_RELEASE } from '../src/state/formats';
import { listEntries, removeFile, replaceFile, setAside, syncVisible, writeFileDurable } from '../src/state/atomic-file';
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

/** The plugin's environment: the call's without any CNI_* of this call, today's CNI_PATH, the attachment's CNI_*. */
function pluginEnv(inv: Invocation, attachment: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(inv.rawEnv)) if (!k.startsWith('CNI_')) env[k] = v;
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
    const id = path.basename(await queueIpamRelease(stateDir, inv, ipamType, stdin, env));
    log.warn({ err: (e as Error).message, attachment: id }, 'IPAM release failed; queued for retry');
  }
}

/** A queued release's file and text. Only the attachment's CNI_* variables are kept (the schema refuses anything else). */
function pendingFile(stateDir: string, inv: Invocation, ipamType: string, stdin: Buffer, env: Record<string, string>): { path: string; text: string } {
  const id = `${env.CNI_CONTAINERID ?? 'unknown'}_${env.CNI_IFNAME ?? ''}`;
  const file = path.join(pendingDir(stateDir), `${id}.json`);
  const entry: IpamPending = { v: 1, writtenBy: THIS_RELEASE, type: ipamType, stdin: stdin.toString('utf8'), env: {} };
  for (const k of ATTACHMENT_ENV) if (env[k] !== undefined) entry.env[k] = env[k];
  refuseToReplaceNewer(file, 'ipam-pending', IPAM_PENDING_MAX_BYTES);
  return { path: file, text: JSON.stringify(entry) };
}

/**
 * Queue a release durably without running it (GC runs it after dropping the VF record): a SIGKILL
 * or power loss in between leaves it queued, not lost.
 */
export async function queueIpamRelease(stateDir: string, inv: Invocation, ipamType: string, stdin: Buffer, env: Record<string, string> = envFor(inv)): Promise<string> {
  const file = pendingFile(stateDir, inv, ipamType, stdin, env);
  await writeFileDurable(file.path, file.text, { dir: true });
  return file.path;
}

export interface StartedRelease {
  /** Settles once the queued entry is durable: only then may the caller drop what would redo the release (the VF record). */
  durable: Promise<void>;
  /** Settles once the release ran; never rejects (a failure stays queued for the next DEL or GC). */
  done: Promise<void>;
}

/**
 * Queue a release and start it at once, without waiting for anything, so that its exec and the
 * queue's fsyncs overlap the caller's slow kernel work (DEL: the netns move home). The entry is in
 * place before the plugin starts, so a SIGKILL from here on leaves it queued, not lost; `durable`
 * says when a power loss cannot take it back either. Throws (nothing started) when it cannot be
 * queued: a full or read-only state dir.
 */
export function startQueuedRelease(stateDir: string, inv: Invocation, ipamType: string, stdin: Buffer, log: Logger): StartedRelease {
  const file = pendingFile(stateDir, inv, ipamType, stdin, envFor(inv));
  replaceFile(file.path, file.text);
  const durable = syncVisible(file.path);
  durable.catch(() => undefined); // a caller that fails before it awaits this must not crash the server
  return { durable, done: releaseQueued(file.path, inv, log) };
}

/**
 * A queued entry through its schema, or undefined when it is gone. One that fails (damaged by a
 * crash, or planted) is set aside (`ipam-pending.set-aside/*.bad-<ms>`), reported in `invalid`, and
 * never run: one bad file must not block DEL and GC on the whole node. One of a newer format is
 * reported in `invalid` and left in place for the release that wrote it.
 */
function loadPending(file: string, log: Logger, invalid: string[]): IpamPending | undefined {
  try {
    return readJsonFile(file, ipamPendingSchema, IPAM_PENDING_MAX_BYTES, 'queued IPAM release', 'ipam-pending');
  } catch (e) {
    if (isTooNew(e)) {
      invalid.push(e.message);
      log.error({ file, details: e.details }, e.message);
      return undefined;
    }
    const aside = setAside(file, Date.now(), path.join(path.dirname(path.dirname(file)), IPAM_PENDING_SET_ASIDE_DIR));
    const where = aside ? path.relative(path.dirname(path.dirname(file)), aside) : 'nothing: the rename failed';
    const msg = `${(e as Error).message} (set aside as ${where}, not run; that address may need a manual release)`;
    invalid.push(msg);
    log.error({ file }, msg);
    return undefined;
  }
}

async function runPending(file: string, p: IpamPending, inv: Invocation, log: Logger): Promise<void> {
  try {
    await execIpam({ command: 'DEL', type: p.type, cniPath: inv.cniPath, env: pluginEnv(inv, pendingEnv(p)), stdin: Buffer.from(p.stdin) });
    // Not fsynced (one journal commit less per DEL): an entry a power loss brings back runs the
    // same IPAM DEL again, which the CNI spec requires plugins to accept (DEL is idempotent).
    removeFile(file);
    log.info({ attachment: path.basename(file) }, 'queued IPAM release done');
  } catch (e) {
    log.warn({ attachment: path.basename(file), err: (e as Error).message }, 'queued IPAM release still failing; kept for the next DEL or GC');
  }
}

/** Run one queued release now; it stays queued (for the next DEL or GC) when it fails. */
export async function releaseQueued(file: string, inv: Invocation, log: Logger): Promise<void> {
  const p = loadPending(file, log, []);
  if (p) await runPending(file, p, inv, log);
}

/**
 * Retry queued releases; each success removes its entry. Cheap when the queue is empty. Returns
 * the entries that failed validation (each message names the file and the field): they were set
 * aside and not run. Temp files of a killed writer are skipped (listEntries).
 */
export async function retryPendingReleases(stateDir: string, inv: Invocation, log: Logger): Promise<string[]> {
  const invalid: string[] = [];
  for (const n of listEntries(pendingDir(stateDir), '.json')) {
    const file = path.join(pendingDir(stateDir), n);
    const p = loadPending(file, log, invalid);
    if (p) await runPending(file, p, inv, log);
  }
  return invalid;
}
