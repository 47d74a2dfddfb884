/**
 * The reconcile loop: frees claims whose pods are gone. It runs in every node agent for the claims
 * labelled with its node, with no leader election; every agent also looks, now and then, at the
 * claims of nodes that no longer exist and at expired tombstones (preconditions make two agents
 * doing the same release harmless: the second one gets 409 and skips).
 *
 * A claim is released only when ALL of these hold:
 *  1. its pod UID was absent in two observations at least the grace period apart (2× the pod's
 *     terminationGracePeriodSeconds as last seen alive, at least 60 s; a pod never seen counts 30 s);
 *  2. a fresh read of the API (pod, and StatefulSet for an ordinal pod) just before the release
 *     still says so;
 *  3. the release carries the claim's resourceVersion as read in this pass (a claim taken over,
 *     refreshed or released by anyone meanwhile is left alone).
 * StatefulSet pods keep their claim while the StatefulSet's replicas cover their ordinal and no
 * pod of that name has come back under another UID.
 * Report-only mode does every read and no write, and lists what it would release and why.
 *
 * API load of a pass is O(this node's claims), not O(cluster): the claims come from the agent's
 * claims informer and the node names from a node informer (both watches, no periodic list); the
 * pods of this node are one list; a pod GET is made only for a claim whose pod is not among them
 * (batched into one list per namespace when several are), and tombstones and unbound reservations,
 * which the rules judge without their pod, cost no read at all.
 */
import type * as k8s from '@kubernetes/client-node';
import { isConflict, isNotFound, type ClusterObjects } from '../kube/client';
import { runtimeUid } from '../kube/pods';
import type { Logger } from '../log';
import { apiError, CLAIM_LABELS, type IPClaim } from './claims';
import { releaseClaim, releasedAtMs, type ReleaseOutcome } from './pool-release';
import { DEFAULT_GRACE_FLOOR_SECONDS, graceMs, judgeClaim, statefulSetOrdinal, type ClaimFacts, type Verdict } from './reconcile-rules';

export interface Finding {
  claim: string;
  ip: string;
  network: string;
  kind: string;
  pod: { namespace: string; name: string; uid: string };
  node: string;
  resourceVersion: string;
  reason: string;
  /** release: the pod is gone; expire: a tombstone past cooldown + retention. */
  action: 'release' | 'expire';
  /** When the claim was first seen without its pod (ms), for release findings. */
  absentSince?: number;
  outcome?: ReleaseOutcome | 'expired';
}

export interface ReconcileResult {
  released: Finding[];
  /** Report-only mode: what would have been released. */
  wouldRelease: Finding[];
  /** Absent, but not yet for the whole grace period. */
  waiting: Finding[];
  /** Not released because the fresh re-check or the precondition said no. */
  skipped: Array<Finding & { why: string }>;
  kept: number;
}

/** Fresh reads of what the rules need. */
export class ClusterReader {
  constructor(
    private readonly core: k8s.CoreV1Api,
    private readonly apps: k8s.AppsV1Api,
  ) {}

  async liveNodes(): Promise<Set<string>> {
    const list = await this.core.listNode();
    return new Set(list.items.map((n) => n.metadata?.name ?? '').filter(Boolean));
  }

  async pod(namespace: string, name: string): Promise<k8s.V1Pod | null> {
    try {
      return await this.core.readNamespacedPod({ namespace, name });
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  async podsOnNode(node: string): Promise<Map<string, k8s.V1Pod>> {
    const list = await this.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` });
    return new Map(list.items.map((p) => [`${p.metadata?.namespace}/${p.metadata?.name}`, p]));
  }

  /** The StatefulSet's replicas, or null when there is no StatefulSet of that name. */
  async statefulSetReplicas(namespace: string, name: string): Promise<number | null> {
    try {
      const s = await this.apps.readNamespacedStatefulSet({ namespace, name });
      return s.spec?.replicas ?? 1;
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  /**
   * The pods with these namespace/name keys, as a map (absent: no such pod): one GET each, or one
   * list of the namespace when it has BATCH_FROM or more of them.
   */
  async podsByKey(keys: Iterable<string>): Promise<Map<string, k8s.V1Pod>> {
    const byNs = new Map<string, Set<string>>();
    for (const k of keys) {
      const i = k.indexOf('/');
      const ns = k.slice(0, i);
      let set = byNs.get(ns);
      if (!set) byNs.set(ns, (set = new Set()));
      set.add(k.slice(i + 1));
    }
    const out = new Map<string, k8s.V1Pod>();
    for (const [namespace, names] of byNs) {
      if (names.size >= BATCH_FROM) {
        for (const p of (await this.core.listNamespacedPod({ namespace })).items) {
          if (names.has(p.metadata?.name ?? '')) out.set(`${namespace}/${p.metadata!.name}`, p);
        }
        continue;
      }
      for (const name of names) {
        const p = await this.pod(namespace, name);
        if (p) out.set(`${namespace}/${name}`, p);
      }
    }
    return out;
  }

  /**
   * Everything judgeClaim needs about one claim, read now (or taken from `known`, a batch read in
   * this pass). Tombstones and unbound reservations need no read: the rules keep or expire them
   * by time alone.
   */
  async facts(
    c: IPClaim,
    liveNodes: ReadonlySet<string>,
    nowMs: number,
    known?: ReadonlyMap<string, k8s.V1Pod | null>,
    /** StatefulSet replicas read earlier in this pass (namespace/name), filled as read. */
    sets?: Map<string, number | null>,
  ): Promise<ClaimFacts & { pod: k8s.V1Pod | null }> {
    const p = c.spec.pod;
    if (releasedAtMs(c) !== null || !p.uid) return { pod: null, podUid: null, liveNodes, nowMs };
    const key = `${p.namespace}/${p.name}`;
    const pod = known?.has(key) ? (known.get(key) ?? null) : await this.pod(p.namespace, p.name);
    const facts: ClaimFacts & { pod: k8s.V1Pod | null } = { pod, podUid: pod ? runtimeUid(pod) : null, liveNodes, nowMs };
    const ord = statefulSetOrdinal(p.name);
    if (ord && facts.podUid === null) {
      const k = `${p.namespace}/${ord.set}`;
      let replicas = sets?.get(k);
      if (replicas === undefined) {
        replicas = await this.statefulSetReplicas(p.namespace, ord.set);
        sets?.set(k, replicas);
      }
      facts.statefulSetReplicas = replicas;
    }
    return facts;
  }
}

/** A namespace with this many pods to look up in one pass is listed once instead. */
const BATCH_FROM = 4;

export interface ReconcilerOptions {
  claims: ClusterObjects<IPClaim>;
  reader: ClusterReader;
  nodeName: string;
  /** Injectable clock (ms since the epoch). */
  now?: () => number;
  graceFloorSeconds?: number;
  tombstoneRetentionSeconds?: number;
  /** A network's cooldownSeconds (tombstone expiry); undefined → 600. */
  cooldownFor?: (network: string) => number | undefined;
  /**
   * The claims as the agent's informer holds them (null until it has listed): the pass reads them
   * there instead of listing. Unset: listed from the API each pass (the CLI).
   */
  claimsCache?: () => Iterable<IPClaim> | null;
  /** The node names as a node informer holds them (null until listed). Unset: listed each pass. */
  nodesCache?: () => ReadonlySet<string> | null;
  /** Look at other nodes' claims (deleted nodes) and tombstones every N passes. Default 10. */
  scanAllEvery?: number;
  reportOnly?: boolean;
  log?: Logger;
  onReleased?: (f: Finding) => void;
}

export class Reconciler {
  /** claim name + pod UID → first absent observation. In memory: an agent restart only delays. */
  private readonly absent = new Map<string, number>();
  /** pod UID → terminationGracePeriodSeconds as last seen alive. */
  private readonly grace = new Map<string, number>();
  private passes = 0;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<ReconcileResult> | null = null;

  constructor(private readonly opts: ReconcilerOptions) {}

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  start(intervalMs = 30_000): void {
    this.timer = setInterval(() => void this.runOnce().catch((e: unknown) => this.opts.log?.warn({ err: (e as Error).message }, 'reconcile pass failed')), intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }

  /** One pass; concurrent calls share it. */
  runOnce(): Promise<ReconcileResult> {
    this.running ??= this.pass().finally(() => (this.running = null));
    return this.running;
  }

  private async pass(): Promise<ReconcileResult> {
    const { claims, reader, nodeName } = this.opts;
    const out: ReconcileResult = { released: [], wouldRelease: [], waiting: [], skipped: [], kept: 0 };
    const scanAll = this.passes++ % (this.opts.scanAllEvery ?? 10) === 0;
    let candidates: IPClaim[];
    let nodes: ReadonlySet<string>;
    let local: Map<string, k8s.V1Pod | null>;
    try {
      nodes = this.opts.nodesCache?.() ?? (await reader.liveNodes());
      const cached = this.opts.claimsCache?.();
      const all = cached ? [...cached] : (await (scanAll ? claims.list() : claims.list({ labelSelector: `${CLAIM_LABELS.node}=${nodeName}` }))).items;
      candidates = all.filter((c) => c.spec.node === nodeName || (scanAll && (!c.spec.node || !nodes.has(c.spec.node))));
      local = new Map<string, k8s.V1Pod | null>(await reader.podsOnNode(nodeName));
      // The pods of claims not found on this node (moved, re-created elsewhere, gone), batched.
      const missing = new Set<string>();
      for (const c of candidates) {
        const p = c.spec.pod;
        if (p.uid && releasedAtMs(c) === null && !local.has(`${p.namespace}/${p.name}`)) missing.add(`${p.namespace}/${p.name}`);
      }
      for (const [k, pod] of await reader.podsByKey(missing)) local.set(k, pod);
      for (const k of missing) if (!local.has(k)) local.set(k, null);
    } catch (e) {
      throw apiError('reconcile: read claims, nodes and pods', e);
    }
    if (scanAll) {
      for (const { extra, kept } of duplicateReservations(candidates)) {
        const f = finding(extra, { action: 'expire', reason: `a second reservation for pod ${extra.spec.pod.namespace}/${extra.spec.pod.name} (${kept} is older and is kept)` });
        await this.release(extra, f, out, 'expire');
      }
    }
    const seen = new Set<string>();
    const sets = new Map<string, number | null>();
    for (const c of candidates) {
      const name = c.metadata!.name!;
      const now = this.now();
      const facts = await reader.facts(c, nodes, now, local, sets);
      facts.cooldownSeconds = this.opts.cooldownFor?.(c.spec.network);
      if (this.opts.tombstoneRetentionSeconds !== undefined) facts.tombstoneRetentionSeconds = this.opts.tombstoneRetentionSeconds;
      if (facts.pod && facts.podUid === c.spec.pod.uid) {
        this.grace.set(c.spec.pod.uid, facts.pod.spec?.terminationGracePeriodSeconds ?? 30);
      }
      const v = judgeClaim(c, facts);
      const f = finding(c, v);
      if (v.action === 'keep') {
        out.kept++;
        continue;
      }
      if (v.action === 'expire') {
        await this.release(c, f, out, 'expire');
        continue;
      }
      const key = `${name}/${c.spec.pod.uid}`;
      seen.add(key);
      const since = this.absent.get(key);
      if (since === undefined) {
        this.absent.set(key, now);
        out.waiting.push({ ...f, absentSince: now });
        continue;
      }
      f.absentSince = since;
      const grace = graceMs(this.grace.get(c.spec.pod.uid), this.opts.graceFloorSeconds ?? DEFAULT_GRACE_FLOOR_SECONDS);
      if (now - since < grace) {
        out.waiting.push(f);
        continue;
      }
      // Rule 2: a fresh read just before the release.
      const fresh = judgeClaim(c, { ...(await reader.facts(c, nodes, this.now())), cooldownSeconds: facts.cooldownSeconds });
      if (fresh.action !== 'absent') {
        this.absent.delete(key);
        out.skipped.push({ ...f, why: `re-check: ${fresh.reason}` });
        continue;
      }
      f.reason = `${fresh.reason}; absent since ${new Date(since).toISOString()} (grace ${grace / 1000} s)`;
      await this.release(c, f, out, 'release');
      this.absent.delete(key);
    }
    // Forget observations of claims looked at and no longer absent (pod back, taken over, released).
    const looked = new Set(candidates.map((c) => c.metadata!.name!));
    for (const key of [...this.absent.keys()]) {
      if (seen.has(key)) continue;
      if (scanAll || looked.has(key.slice(0, key.lastIndexOf('/')))) this.absent.delete(key);
    }
    return out;
  }

  private async release(c: IPClaim, f: Finding, out: ReconcileResult, action: 'release' | 'expire'): Promise<void> {
    if (this.opts.reportOnly) {
      out.wouldRelease.push(f);
      return;
    }
    try {
      if (action === 'expire') {
        await this.opts.claims.delete(f.claim, { uid: c.metadata?.uid, resourceVersion: c.metadata?.resourceVersion });
        f.outcome = 'expired';
      } else {
        // Rule 3: the resourceVersion read in this pass is the precondition.
        f.outcome = await releaseClaim(this.opts.claims, c, new Date(this.now()));
      }
    } catch (e) {
      if (isConflict(e) || isNotFound(e)) {
        out.skipped.push({ ...f, why: isConflict(e) ? 'the claim changed since it was read (precondition failed)' : 'the claim is already gone' });
        return;
      }
      throw apiError(`reconcile: release ${f.claim}`, e);
    }
    out.released.push(f);
    this.opts.log?.info({ claim: f.claim, ip: f.ip, network: f.network, pod: `${f.pod.namespace}/${f.pod.name}`, uid: f.pod.uid, outcome: f.outcome }, `reconcile: ${f.reason}`);
    this.opts.onReleased?.(f);
  }
}

/**
 * Reservations made twice for one registration (agents that raced with different views of the
 * pool): per registration, pod and family, all but the oldest.
 */
export function duplicateReservations(claims: IPClaim[]): Array<{ extra: IPClaim; kept: string }> {
  const groups = new Map<string, IPClaim[]>();
  for (const c of claims) {
    if (c.spec.kind !== 'reserved' || c.spec.pod.uid || releasedAtMs(c) !== null) continue;
    const k = `${c.spec.network}|${c.spec.source.namespace}|${c.spec.source.key}|${c.spec.pod.name}|${c.spec.ip.includes(':') ? 6 : 4}`;
    groups.set(k, [...(groups.get(k) ?? []), c]);
  }
  const out: Array<{ extra: IPClaim; kept: string }> = [];
  for (const g of groups.values()) {
    if (g.length < 2) continue;
    g.sort((a, b) => String(a.metadata?.creationTimestamp).localeCompare(String(b.metadata?.creationTimestamp)) || a.metadata!.name!.localeCompare(b.metadata!.name!));
    for (const extra of g.slice(1)) out.push({ extra, kept: g[0]!.metadata!.name! });
  }
  return out;
}

export function finding(c: IPClaim, v: Verdict): Finding {
  return {
    claim: c.metadata!.name!,
    ip: c.spec.ip,
    network: c.spec.network,
    kind: c.spec.kind,
    pod: { ...c.spec.pod },
    node: c.spec.node,
    resourceVersion: c.metadata?.resourceVersion ?? '',
    reason: v.reason,
    action: v.action === 'expire' ? 'expire' : 'release',
  };
}
