/**
 * The judgement the reconcile loop and `kubectl sriov gc` share: may this claim be released, and
 * why. Pure: the caller gathers what the API says (the pod of that name now, its StatefulSet) and
 * keeps the observations over time.
 *
 * A claim is a release candidate only when the pod UID it records is absent (no pod of that name,
 * or one with another UID), and, for a StatefulSet pod with no pod of its name, the StatefulSet is
 * gone or scaled below the pod's ordinal (StatefulSet pods keep their address across restarts).
 * A pod of that name under another UID is the ordinal come back: it takes the claim over at its ADD
 * (claimIp); if it has not within the grace period, it never will, and the claim is released. The caller releases
 * only after two such observations spanning the grace period and one more fresh API read.
 */
import type { IPClaim } from './claims';
import { releasedAtMs } from './pool-release';

export const DEFAULT_GRACE_FLOOR_SECONDS = 60;
export const DEFAULT_TERMINATION_GRACE_SECONDS = 30;
/** Tombstones are deleted this long after their cooldown has ended (see pool-release.ts). */
export const DEFAULT_TOMBSTONE_RETENTION_SECONDS = 86_400;

const STS_POD_RE = /^(.+)-(0|[1-9]\d{0,5})$/;

/** `mysql-2` → { set: 'mysql', ordinal: 2 }; null when the name has no ordinal. */
export function statefulSetOrdinal(podName: string): { set: string; ordinal: number } | null {
  const m = STS_POD_RE.exec(podName);
  return m ? { set: m[1]!, ordinal: Number(m[2]) } : null;
}

/** 2× the pod's termination grace, at least the floor (seconds → ms). */
export function graceMs(terminationGraceSeconds: number | undefined, floorSeconds = DEFAULT_GRACE_FLOOR_SECONDS): number {
  return Math.max(floorSeconds, 2 * (terminationGraceSeconds ?? DEFAULT_TERMINATION_GRACE_SECONDS)) * 1000;
}

export interface ClaimFacts {
  /** UID of the pod with the claim's pod name now, or null when there is none. */
  podUid: string | null;
  /** The StatefulSet named by the pod's name prefix, when the pod name has an ordinal: replicas, or null if none exists. */
  statefulSetReplicas?: number | null;
  /** Names of the nodes that exist. */
  liveNodes: ReadonlySet<string>;
  /** The network's cooldown (s), for tombstone expiry; undefined when the network is unknown. */
  cooldownSeconds?: number;
  nowMs: number;
  tombstoneRetentionSeconds?: number;
}

export type Verdict =
  | { action: 'keep'; reason: string }
  | { action: 'absent'; reason: string }
  | { action: 'expire'; reason: string };

export function judgeClaim(c: IPClaim, f: ClaimFacts): Verdict {
  const s = c.spec;
  const who = `pod ${s.pod.namespace}/${s.pod.name}`;
  const released = releasedAtMs(c);
  if (released !== null) {
    const cooldown = f.cooldownSeconds ?? 600;
    const until = released + (cooldown + (f.tombstoneRetentionSeconds ?? DEFAULT_TOMBSTONE_RETENTION_SECONDS)) * 1000;
    if (f.nowMs >= until) {
      return { action: 'expire', reason: `released at ${new Date(released).toISOString()}; cooldown and retention ended ${new Date(until).toISOString()}` };
    }
    return { action: 'keep', reason: `tombstone: released at ${new Date(released).toISOString()}, kept until ${new Date(until).toISOString()}` };
  }
  if (!s.pod.uid) return { action: 'keep', reason: `reservation for ${who}: lives as long as its registration` };
  if (f.podUid === s.pod.uid) return { action: 'keep', reason: `${who} uid ${s.pod.uid} exists` };
  const nodeNote = s.node && !f.liveNodes.has(s.node) ? `; node ${s.node} no longer exists` : '';
  const gone = f.podUid === null ? `${who} uid ${s.pod.uid} is gone` : `${who} now has uid ${f.podUid}, not ${s.pod.uid}`;
  const ord = statefulSetOrdinal(s.pod.name);
  if (ord && f.podUid === null && f.statefulSetReplicas !== undefined && f.statefulSetReplicas !== null) {
    if (ord.ordinal < f.statefulSetReplicas) {
      return {
        action: 'keep',
        reason: `${gone}, but StatefulSet ${s.pod.namespace}/${ord.set} has ${f.statefulSetReplicas} replicas: ordinal ${ord.ordinal} comes back and keeps its address`,
      };
    }
    return { action: 'absent', reason: `${gone}; StatefulSet ${s.pod.namespace}/${ord.set} was scaled down to ${f.statefulSetReplicas} (ordinal ${ord.ordinal})${nodeNote}` };
  }
  if (ord && f.podUid === null && f.statefulSetReplicas === null) return { action: 'absent', reason: `${gone}; no StatefulSet ${s.pod.namespace}/${ord.set}${nodeNote}` };
  return { action: 'absent', reason: `${gone}${nodeNote}` };
}
