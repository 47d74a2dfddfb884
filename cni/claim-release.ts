/**
 * DEL's part in releasing IP claims: write a durable note for the node agent and return. DEL never
 * waits for the agent or the API server; the agent deletes the claims (and retries while the API is
 * unreachable). Only used when the netconf enables registrations (`agentSocket`).
 */
import * as path from 'node:path';
import { writeFileDurable } from '../src/state/atomic-file';
import { CLAIM_RELEASE_DIR, claimReleaseFile, type ClaimRelease } from '../src/schemas/claim-release';
import type { Invocation } from './skel';

export function queueClaimRelease(stateDir: string, inv: Invocation, now = new Date()): string {
  const rec: ClaimRelease = { v: 1, containerId: inv.containerId, ifName: inv.ifName, queuedAt: now.toISOString() };
  if (inv.pod) {
    rec.namespace = inv.pod.namespace;
    rec.name = inv.pod.name;
    if (inv.pod.uid) rec.uid = inv.pod.uid;
  }
  const file = path.join(stateDir, CLAIM_RELEASE_DIR, claimReleaseFile(inv.containerId, inv.ifName));
  writeFileDurable(file, `${JSON.stringify(rec)}\n`);
  return file;
}
