/**
 * Releasing a claim, by its mode, always with a precondition so a claim taken over in the meantime
 * is left alone:
 *
 * - `pool`: the claim is kept as a **tombstone** (`spec.releasedAt`, label `released-at`). The
 *   object keeps the address unclaimable (a create is 409) and remembers, cluster-wide, when it was
 *   released: the pool allocator reuses it only after the network's `cooldownSeconds`, least
 *   recently released first. The reconcile loop deletes tombstones after the cooldown plus a
 *   retention period, which keeps their number bounded and the order exact (an address with no
 *   object was released before every tombstone still present). The last holder stays in `spec.pod`
 *   (audit, and the same pod UID may take its address back at once, e.g. a sandbox re-created).
 * - `reserved`: the reservation goes back to waiting for its pod (it lives as long as its
 *   registration).
 * - `fixed`: deleted; the registration names the address, there is nothing to cool down.
 */
import type { ClusterObjects } from '../kube/client';
import { CLAIM_LABELS, type IPClaim, type IPClaimSpec } from './claims';

/** Unix seconds of the release, so tombstones can be selected (`sriov-underlay.io/released-at`). */
export const RELEASED_AT_LABEL = 'sriov-underlay.io/released-at';

export type TombstoneSpec = IPClaimSpec;
export type PoolClaim = IPClaim & { spec: TombstoneSpec };

/** Milliseconds since the epoch of the release, or null for a claim in use. */
export function releasedAtMs(c: IPClaim): number | null {
  const t = (c.spec as TombstoneSpec).releasedAt;
  if (!t) return null;
  const ms = Date.parse(t);
  return Number.isFinite(ms) ? ms : 0;
}

export const isTombstone = (c: IPClaim): boolean => releasedAtMs(c) !== null;

/** When a tombstone's address may be handed out again (ms), for a network cooldown in seconds. */
export function reusableAt(c: IPClaim, cooldownSeconds: number): number | null {
  const r = releasedAtMs(c);
  return r === null ? null : r + cooldownSeconds * 1000;
}

/** The replace body that turns a pool claim into a tombstone (conditional on its resourceVersion). */
export function tombstoneBody(c: IPClaim, now: Date): PoolClaim {
  const at = now.toISOString();
  const spec: TombstoneSpec = { ...c.spec, node: '', containerID: '', interface: '', updatedAt: at, releasedAt: at };
  delete spec.vf;
  const labels = { ...(c.metadata?.labels ?? {}) };
  delete labels[CLAIM_LABELS.podUid];
  delete labels[CLAIM_LABELS.node];
  labels[RELEASED_AT_LABEL] = String(Math.floor(now.getTime() / 1000));
  return { metadata: { name: c.metadata!.name!, resourceVersion: c.metadata?.resourceVersion, labels }, spec };
}

/** The replace body that puts a reservation back to waiting for its pod. */
export function unbindReservationBody(c: IPClaim, now: Date): IPClaim {
  const spec: IPClaimSpec = { ...c.spec, pod: { ...c.spec.pod, uid: '' }, node: '', containerID: '', interface: '', updatedAt: now.toISOString() };
  delete spec.vf;
  const labels = { ...(c.metadata?.labels ?? {}) };
  delete labels[CLAIM_LABELS.podUid];
  delete labels[CLAIM_LABELS.node];
  return { metadata: { name: c.metadata!.name!, resourceVersion: c.metadata?.resourceVersion, labels }, spec };
}

export type ReleaseOutcome = 'tombstoned' | 'unbound' | 'deleted';

/**
 * Release one claim as read (its resourceVersion is the precondition). Throws the client error on
 * 409 (changed since it was read: not ours to release any more) or 404.
 */
export async function releaseClaim(claims: ClusterObjects<IPClaim>, c: IPClaim, now: Date): Promise<ReleaseOutcome> {
  const name = c.metadata!.name!;
  if (c.spec.kind === 'pool') {
    await claims.replace(name, tombstoneBody(c, now));
    return 'tombstoned';
  }
  if (c.spec.kind === 'reserved') {
    await claims.replace(name, unbindReservationBody(c, now));
    return 'unbound';
  }
  await claims.delete(name, { uid: c.metadata?.uid, resourceVersion: c.metadata?.resourceVersion });
  return 'deleted';
}
