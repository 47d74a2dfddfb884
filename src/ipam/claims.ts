/**
 * Cluster-wide IP claims: one cluster-scoped IPClaim (sriov-underlay.io/v1alpha1) per address in
 * use, named from network + IP. The API server refuses a second create of a name with 409
 * AlreadyExists; that refusal is the uniqueness guarantee, so there is no global lock and no
 * leader. Every change to an existing claim carries its resourceVersion (409 Conflict on a race).
 *
 * - the same pod UID asks again (a repeated ADD) → the same claim (container/node refreshed);
 * - a reservation (pre-allocated, no pod yet) made for the same registration → the pod takes it;
 * - another UID holds it → taken over only after a GET of the holder's pod shows that UID gone
 *   (a StatefulSet pod re-created under its name, or a pod whose DEL release has not run yet);
 *   if the holder still exists: TryAgainLater when it is the same pod name (it is terminating),
 *   else an IpConflict naming both;
 * - an agent never writes a claim held on another node while that node exists (`nodeExists`):
 *   that node's agent releases it (its DEL note or its reconcile loop). Only a claim of a node that
 *   no longer exists is taken over from elsewhere (the deleted-node case the admission policy
 *   allows); until then the ADD fails with TryAgainLater (HeldElsewhere).
 */
import type * as k8s from '@kubernetes/client-node';
import { CniCode, UnderlayError } from '../errors';
import { isAlreadyExists, isConflict, isNotFound, kubeFailure, type ClusterObjects } from '../kube/client';
import { parseIp } from './cidr';
import { releaseClaim } from './pool-release';

export const CLAIM_LABELS = {
  network: 'sriov-underlay.io/network',
  node: 'sriov-underlay.io/node',
  podUid: 'sriov-underlay.io/pod-uid',
  kind: 'sriov-underlay.io/claim-kind',
} as const;

export type ClaimMode = 'fixed' | 'pool' | 'reserved';

export interface ClaimPod {
  namespace: string;
  name: string;
  /** Empty for a reservation whose pod does not exist yet. */
  uid: string;
}

export interface ClaimSource {
  namespace: string;
  configMap: string;
  key: string;
  resourceVersion: string;
}

export interface IPClaimSpec {
  network: string;
  ip: string;
  kind: ClaimMode;
  pod: ClaimPod;
  node: string;
  containerID: string;
  interface: string;
  vf?: string;
  source: ClaimSource;
  /** What the pod was given (for drift reports and `explain`). */
  settings?: Record<string, unknown>;
  claimedAt: string;
  updatedAt: string;
  /** Set on a released pool claim (a tombstone, see pool-release.ts): cooling down since then. */
  releasedAt?: string;
}

export interface IPClaim {
  apiVersion?: string;
  kind?: string;
  metadata?: k8s.V1ObjectMeta;
  spec: IPClaimSpec;
}

/**
 * `vlan100.10.100.0.11`, `vlan100.fd000100000000000000000000000011`: a valid object name (IPv6
 * text has ':'), one per address (the full 32 hex digits leave no second spelling).
 */
export function claimName(network: string, ip: string): string {
  const a = parseIp(ip);
  const text = a.family === 4 ? ip.split('.').map(Number).join('.') : a.value.toString(16).padStart(32, '0');
  return `${network}.${text}`;
}

export interface ClaimDeps {
  claims: ClusterObjects<IPClaim>;
  /** The UID of the pod with this name now, or null when there is none (a fresh GET, no cache). */
  podUid: (namespace: string, name: string) => Promise<string | null>;
  /**
   * Whether a node exists now (a fresh read). Set by agents: a claim held on another node is then
   * only taken over once that node is gone. Unset (CLI, tests of the claim rules alone): no node check.
   */
  nodeExists?: (name: string) => Promise<boolean>;
  now?: () => Date;
}

/** TryAgainLater because the address is held on another node that still exists. */
export class HeldElsewhere extends UnderlayError {}

/** A claim's spec as asked for: the timestamps are the claim machinery's own. */
export type ClaimRequest = Omit<IPClaimSpec, 'claimedAt' | 'updatedAt' | 'releasedAt'>;

const MAX_ATTEMPTS = 5;

function describeHolder(c: IPClaim): string {
  const s = c.spec;
  const who = s.pod.uid ? `pod ${s.pod.namespace}/${s.pod.name} (uid ${s.pod.uid})` : `a reservation for pod ${s.pod.namespace}/${s.pod.name}`;
  return `${who} on node ${s.node || '(none)'} since ${s.claimedAt}, from configmap ${s.source.namespace}/${s.source.configMap} key "${s.source.key}"`;
}

export function apiError(action: string, err: unknown): UnderlayError {
  const f = kubeFailure(err);
  if (f.unreachable || (f.code !== undefined && f.code >= 500) || f.code === 429) {
    return new UnderlayError(CniCode.TryAgainLater, `${action}: Kubernetes API ${f.unreachable ? 'unreachable' : `answered ${f.code}`}: ${f.message}`, undefined, { cause: err });
  }
  return new UnderlayError(CniCode.Internal, `${action}: Kubernetes API answered ${f.code} ${f.reason ?? ''}: ${f.message}`, undefined, { cause: err });
}

function labelsFor(r: ClaimRequest): Record<string, string> {
  const l: Record<string, string> = { [CLAIM_LABELS.network]: r.network, [CLAIM_LABELS.kind]: r.kind };
  if (r.node && r.node.length <= 63) l[CLAIM_LABELS.node] = r.node;
  if (r.pod.uid) l[CLAIM_LABELS.podUid] = r.pod.uid;
  return l;
}

function specFor(r: ClaimRequest, claimedAt: string, now: string): IPClaimSpec {
  const s: IPClaimSpec = {
    network: r.network,
    ip: r.ip,
    kind: r.kind,
    pod: r.pod,
    node: r.node,
    containerID: r.containerID,
    interface: r.interface,
    source: r.source,
    claimedAt,
    updatedAt: now,
  };
  if (r.vf) s.vf = r.vf;
  if (r.settings) s.settings = r.settings;
  return s;
}

/** Refuses (HeldElsewhere) to write a claim held on another node while that node exists. */
async function checkNode(deps: ClaimDeps, cur: IPClaim, r: ClaimRequest, what: string): Promise<void> {
  const node = cur.spec.node;
  if (!node || node === r.node || !deps.nodeExists) return;
  let exists: boolean;
  try {
    exists = await deps.nodeExists(node);
  } catch (e) {
    throw apiError(`${what}: check whether node ${node} still exists`, e);
  }
  if (exists) {
    throw new HeldElsewhere(
      CniCode.TryAgainLater,
      `${what}: it is held by ${describeHolder(cur)}; node ${node} still exists, so only its agent releases it (DEL or its reconcile loop)`,
    );
  }
}

/** The replace body that gives `cur` to the requester (conditional on cur's resourceVersion). */
function takeOverBody(cur: IPClaim, r: ClaimRequest, now: string): IPClaim {
  const kind: ClaimMode = cur.spec.kind === 'reserved' ? 'reserved' : r.kind;
  const claimedAt = cur.spec.pod.uid === r.pod.uid ? cur.spec.claimedAt : now;
  return {
    metadata: { name: cur.metadata!.name!, resourceVersion: cur.metadata?.resourceVersion, labels: labelsFor({ ...r, kind }) },
    spec: specFor({ ...r, kind }, claimedAt, now),
  };
}

/**
 * A repeated ADD of a pod that holds `cur` (same UID, in use): one conditional replace that
 * refreshes the record and its updatedAt (see claimIp). Null when `cur` changed meanwhile (409/404):
 * the caller goes through claimIp.
 */
export async function refreshOwnClaim(deps: ClaimDeps, cur: IPClaim, r: ClaimRequest): Promise<IPClaim | null> {
  try {
    return await deps.claims.replace(cur.metadata!.name!, takeOverBody(cur, r, (deps.now ?? (() => new Date()))().toISOString()));
  } catch (e) {
    if (isConflict(e) || isNotFound(e)) return null;
    throw apiError(`refresh claim ${cur.metadata?.name}`, e);
  }
}

/** Claim one address for one pod; returns the stored claim. Throws UnderlayError (105 conflict, 11 retry). */
export async function claimIp(deps: ClaimDeps, r: ClaimRequest): Promise<IPClaim> {
  const name = claimName(r.network, r.ip);
  const now = () => (deps.now ?? (() => new Date()))().toISOString();
  const what = `claim ${r.ip} on network "${r.network}" for pod ${r.pod.namespace}/${r.pod.name}`;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const t = now();
    try {
      return await deps.claims.create({ metadata: { name, labels: labelsFor(r) }, spec: specFor(r, t, t) });
    } catch (e) {
      if (!isAlreadyExists(e)) throw apiError(what, e);
    }
    let cur: IPClaim | undefined;
    try {
      cur = await deps.claims.get(name);
    } catch (e) {
      throw apiError(what, e);
    }
    if (!cur) continue; // released between our create and get: create again
    const held = cur.spec.pod;
    const samePod = held.namespace === r.pod.namespace && held.name === r.pod.name;
    let takeOver = false;
    if (cur.spec.releasedAt && r.kind === 'fixed') {
      takeOver = true; // a released pool address cooling down: ops' explicit choice wins over the cooldown
    } else if (held.uid && held.uid === r.pod.uid) {
      // Same pod. Even the very same attachment is written again: its updatedAt is what a DEL note
      // queued before this ADD is compared with (releaseAttachment), so ADD, DEL, ADD of one
      // container never lets the queued release free the address now in use.
      takeOver = true;
    } else if (!held.uid) {
      // A reservation: only the pod of the registration it was made for may take it.
      const src = cur.spec.source;
      const sameRegistration = samePod && src.namespace === r.source.namespace && src.key === r.source.key;
      if (sameRegistration && !r.pod.uid) return cur; // reserving again: it is ours already
      if (sameRegistration) takeOver = true;
    } else {
      let live: string | null;
      try {
        live = await deps.podUid(held.namespace, held.name);
      } catch (e) {
        throw apiError(`${what}: check whether pod ${held.namespace}/${held.name} (uid ${held.uid}) still exists`, e);
      }
      if (live !== held.uid) takeOver = true;
      else if (samePod) {
        throw new UnderlayError(
          CniCode.TryAgainLater,
          `${what}: it is still held by the previous pod of that name (uid ${held.uid}), which has not gone yet; the hand-over waits for it`,
        );
      }
    }
    if (takeOver && !cur.spec.releasedAt) await checkNode(deps, cur, r, what);
    if (!takeOver) {
      throw new UnderlayError(CniCode.IpConflict, `${what}: it is claimed by ${describeHolder(cur)}`);
    }
    try {
      return await deps.claims.replace(name, takeOverBody(cur, r, now()));
    } catch (e) {
      if (isConflict(e) || isNotFound(e)) continue; // someone changed or released it: look again
      throw apiError(what, e);
    }
  }
  throw new UnderlayError(CniCode.TryAgainLater, `${what}: the claim kept changing under us (${MAX_ATTEMPTS} attempts)`);
}

/** What a DEL note names: the attachment, the node whose disk it was queued on, and when. */
export interface AttachmentRelease {
  containerID: string;
  interface: string;
  /** This agent's node: only claims held on it are released. */
  node: string;
  uid?: string;
  /** When DEL queued the note (ISO); a claim written (by an ADD) after that is not released. */
  queuedAt?: string;
}

/**
 * Release what one attachment of this node holds, by the claim's kind (releaseClaim), each with a
 * uid+resourceVersion precondition so a claim taken over in the meantime is left alone. Only claims
 * held on `a.node` with the note's container, interface (and pod UID, when the note has one) match,
 * and only if no ADD wrote them after the note was queued. Returns the names released.
 */
export async function releaseAttachment(deps: Pick<ClaimDeps, 'claims' | 'now'>, a: AttachmentRelease): Promise<string[]> {
  const selector = [`${CLAIM_LABELS.node}=${a.node}`, ...(a.uid ? [`${CLAIM_LABELS.podUid}=${a.uid}`] : [])].join(',');
  const now = () => (deps.now ?? (() => new Date()))();
  const queuedAt = a.queuedAt === undefined ? NaN : Date.parse(a.queuedAt);
  const done: string[] = [];
  let list: IPClaim[];
  try {
    list = (await deps.claims.list({ labelSelector: selector })).items;
  } catch (e) {
    throw apiError(`release claims of container ${a.containerID}`, e);
  }
  for (const c of list) {
    const s = c.spec;
    if (s.node !== a.node || s.containerID !== a.containerID || s.interface !== a.interface) continue;
    if (a.uid && s.pod.uid !== a.uid) continue;
    if (Number.isFinite(queuedAt) && Date.parse(s.updatedAt) > queuedAt) continue; // re-added after this DEL
    const name = c.metadata!.name!;
    try {
      await releaseClaim(deps.claims, c, now());
      done.push(name);
    } catch (e) {
      if (isNotFound(e) || isConflict(e)) continue; // already gone, or taken over: not ours any more
      throw apiError(`release claim ${name}`, e);
    }
  }
  return done;
}
