/**
 * DEL's part in releasing IP claims: leave a durable note for the node agent and return. DEL never
 * waits for the agent or the API server; the agent deletes the claims (and retries while the API is
 * unreachable). Only used when the netconf enables registrations (`agentSocket`).
 *
 * The queue dir is writable by the node daemon, which runs with no capabilities: it must never get
 * this process (root, every capability) to follow a link or read what it planted. So a note is
 * created under a fresh random name with O_CREAT|O_EXCL|O_NOFOLLOW, then renamed to its final
 * random name (rename replaces a directory entry, it never writes through one), and nothing in the
 * queue is ever opened for reading here.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Logger } from '../src/log';
import { CLAIM_RELEASE_MAX_BYTES, claimReleaseSchema, LEGACY_CLAIM_RELEASE_DIR, type ClaimRelease } from '../src/schemas/claim-release';
import { fsyncDir } from '../src/state/atomic-file';
import { readJsonFile } from '../src/state/bounded-file';
import { isTooNew, THIS_RELEASE } from '../src/state/formats';
import type { NetConf } from '../src/schemas/netconf';
import type { Ctx } from './context';
import type { Invocation } from './skel';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;

/** What DEL still knows about the attachment besides the invocation. */
export interface ReleaseFacts {
  network?: string;
  addresses?: string[];
}

/** Create the queue dir if missing; refuse one that is not a real directory (a symlink to /etc, say). */
function queueDirReady(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`release queue ${dir} is not a directory (symlink or file); not writing there`);
}

/** Write one note under a new random name; returns its path. */
export function writeReleaseNote(queueDir: string, note: ClaimRelease): string {
  queueDirReady(queueDir);
  const name = randomBytes(16).toString('hex');
  const tmp = path.join(queueDir, `.${name}.tmp`);
  const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    fs.writeSync(fd, `${JSON.stringify({ ...note, v: 1, writtenBy: THIS_RELEASE })}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  const file = path.join(queueDir, `${name}.json`);
  fs.renameSync(tmp, file);
  fsyncDir(queueDir);
  return file;
}

/** The addresses the attachment's VF record says ADD gave the pod (none when there is no record). */
export function recordedAddresses(ctx: Ctx, conf: NetConf, inv: Invocation): string[] {
  try {
    const pci = conf.deviceID ?? ctx.records.attachmentPci(inv.containerId, inv.ifName);
    const rec = pci ? ctx.records.read(pci) : undefined;
    return rec && rec.containerId === inv.containerId && rec.ifName === inv.ifName ? (rec.applied?.ips ?? []) : [];
  } catch {
    return []; // an unreadable record is DEL's to report, not the note's
  }
}

export function queueClaimRelease(queueDir: string, inv: Invocation, facts: ReleaseFacts = {}, now = new Date()): string {
  const note: ClaimRelease = { v: 1, containerId: inv.containerId, ifName: inv.ifName, node: os.hostname(), queuedAt: now.toISOString() };
  if (inv.pod) {
    note.namespace = inv.pod.namespace;
    note.name = inv.pod.name;
    if (inv.pod.uid) note.uid = inv.pod.uid;
  }
  if (facts.network) note.network = facts.network;
  if (facts.addresses?.length) note.addresses = facts.addresses;
  return writeReleaseNote(queueDir, note);
}

/**
 * Upgrade from the single-dir layout: notes the previous release left in
 * `<stateDir>/claim-releases/` (a dir only the CNI can reach now) are validated and moved into the
 * queue; one that is not valid is renamed *.invalid and logged. Cheap when the old dir is gone.
 */
export function migrateLegacyClaimReleases(stateDir: string, queueDir: string, log: Logger): void {
  const old = path.join(stateDir, LEGACY_CLAIM_RELEASE_DIR);
  let names: string[];
  try {
    names = fs.readdirSync(old).filter((n) => n.endsWith('.json'));
  } catch {
    return;
  }
  for (const n of names) {
    const file = path.join(old, n);
    let note: ClaimRelease | undefined;
    try {
      note = readJsonFile(file, claimReleaseSchema, CLAIM_RELEASE_MAX_BYTES, 'claim release note of the previous release', 'claim-release');
    } catch (e) {
      if (isTooNew(e)) {
        log.error({ file, details: e.details }, e.message);
        continue;
      }
      log.error({ file, err: (e as Error).message }, 'claim release note of the previous release is invalid; set aside as .invalid');
      fs.renameSync(file, `${file}.invalid`);
      continue;
    }
    if (note) writeReleaseNote(queueDir, note);
    fs.rmSync(file, { force: true });
    log.info({ from: file }, 'claim release note of the previous release moved to the release queue');
  }
  try {
    fs.rmdirSync(old); // empty now, unless something was set aside
  } catch {
    /* kept */
  }
}
