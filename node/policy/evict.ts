/**
 * `disruption: evict`: when a PF's sriov_numvfs change is held only because pods hold its VFs, and
 * its entry opts in, evict exactly those pods through the Eviction API, one node at a time
 * cluster-wide. Run once per node-policy pass with the PFs that need it (possibly none):
 *
 *  1. none: give the Lease up if this node holds it (the node converged, or the policy changed);
 *  2. take or renew the Lease (lease.ts); held by another node: wait (WaitingForLease);
 *  3. find each holder among the pods bound to *this node* (by UID when kubelet's checkpoint gave
 *     one, else by namespace/name): a record naming a pod that is not on this node evicts nothing;
 *  4. POST pods/<name>/eviction (policy/v1), once per pod. 429 (a PodDisruptionBudget allows no
 *     disruption now): BlockedByPDB, retried with exponential backoff (1 s doubling to 60 s, or the
 *     server's Retry-After); other failures the same way;
 *  5. the VFs are then freed by kubelet and the CNI as the pods go; the engine sees them free on a
 *     later pass and writes sriov_numvfs (fenced, as always); step 1 then releases the Lease.
 *
 * Every API call is bounded by the clients' own timeout (src/kube/client.ts). Pods that hold no VF
 * of the PF are never looked at twice: only the holders the in-use sources name are candidates.
 */
import type * as k8s from '@kubernetes/client-node';
import { kubeFailure } from '../../src/kube/client';
import { runtimeUid } from '../../src/kube/pods';
import type { Logger } from '../../src/log';
import type { PolicyEvent } from './component';
import type { PfApplyResult } from './engine';
import type { NodeLease } from './lease';

export interface EvictNeed {
  pf: string;
  held: NonNullable<PfApplyResult['numVfsHeld']>;
}

export type EvictReason = 'WaitingForLease' | 'Evicting' | 'BlockedByPDB' | 'CannotEvict' | 'EvictionFailed';

export interface EvictOutcome {
  reason: EvictReason;
  message: string;
}

export interface EvictorOptions {
  core: k8s.CoreV1Api;
  lease: NodeLease;
  nodeName: string;
  log: Logger;
  now?: () => number;
  /** First retry delay after a refused eviction; doubles up to maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
}

/** Most pods a node lists for this (kubelet's default maximum is 110). */
const POD_LIST_LIMIT = 1000;

interface Attempt {
  next: number;
  delay: number;
  outcome: EvictOutcome;
}

const podName = (p: k8s.V1Pod) => `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`;

/** "The disruption budget db-pdb needs 2 healthy pods ..." -> "db-pdb". */
function pdbOf(f: ReturnType<typeof kubeFailure>, body: unknown): { name: string | null; cause: string } {
  const causes = (body as { details?: { causes?: Array<{ reason?: string; message?: string }> } } | null)?.details?.causes ?? [];
  const cause = causes.find((c) => c.reason === 'DisruptionBudget')?.message ?? f.message;
  const m = /^The disruption budget (\S+) /.exec(cause);
  return { name: m ? m[1]! : null, cause };
}

function bodyOf(err: unknown): unknown {
  const b = (err as { body?: unknown } | null)?.body;
  if (typeof b !== 'string') return b ?? null;
  try {
    return JSON.parse(b);
  } catch {
    return null;
  }
}

export class Evictor {
  /** Pods this node asked to evict (by UID), and when. */
  private evicted = new Map<string, number>();
  private attempts = new Map<string, Attempt>();

  constructor(private readonly o: EvictorOptions) {}

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  /** One pass: outcomes by PF name (absent = nothing to say), and Events to send. */
  async step(needs: readonly EvictNeed[]): Promise<{ outcomes: Map<string, EvictOutcome>; events: PolicyEvent[] }> {
    const outcomes = new Map<string, EvictOutcome>();
    const events: PolicyEvent[] = [];
    const { lease, log } = this.o;
    if (needs.length === 0) {
      if (lease.held) {
        await lease.release().then(
          () => {
            log.info({ lease: lease.label }, 'node policy: evictions done, Lease released');
            events.push({ type: 'Normal', reason: 'NodePolicyLeaseReleased', message: `${lease.label} released: the node converged` });
          },
          (e: unknown) => log.warn({ err: kubeFailure(e).message }, 'node policy: releasing the Lease failed; it expires on its own'),
        );
      }
      this.evicted.clear();
      this.attempts.clear();
      return { outcomes, events };
    }
    const wasHeld = lease.held;
    let state;
    try {
      state = await lease.hold();
    } catch (e) {
      const msg = `cannot take ${lease.label}: ${kubeFailure(e).message}`;
      for (const n of needs) outcomes.set(n.pf, { reason: 'WaitingForLease', message: msg });
      return { outcomes, events };
    }
    if (!state.held) {
      for (const n of needs) outcomes.set(n.pf, { reason: 'WaitingForLease', message: `waiting for ${lease.label} (held by ${state.holder}): one node evicts at a time` });
      return { outcomes, events };
    }
    if (!wasHeld) {
      log.info({ lease: lease.label, pfs: needs.map((n) => n.pf) }, 'node policy: Lease taken, evicting');
      events.push({ type: 'Normal', reason: 'NodePolicyLeaseTaken', message: `${lease.label} taken to evict the pods holding VFs of ${needs.map((n) => n.pf).join(', ')}` });
    }
    let onNode: k8s.V1Pod[];
    try {
      onNode = (await this.o.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${this.o.nodeName}`, limit: POD_LIST_LIMIT })).items;
    } catch (e) {
      const msg = `cannot list the pods of node ${this.o.nodeName}: ${kubeFailure(e).message}`;
      for (const n of needs) outcomes.set(n.pf, { reason: 'EvictionFailed', message: msg });
      return { outcomes, events };
    }
    const done = new Map<string, EvictOutcome>(); // by pod UID: a pod on two PFs is evicted once
    for (const n of needs) {
      const parts: EvictOutcome[] = [];
      for (const vf of n.held.vfs) {
        const ref = vf.pod;
        if (!ref) {
          parts.push({ reason: 'CannotEvict', message: `VF ${vf.pciAddr} is held by ${vf.holder}, not a pod: nothing to evict` });
          continue;
        }
        const pod = onNode.find((p) => (ref.uid ? runtimeUid(p) === ref.uid : p.metadata?.namespace === ref.namespace && p.metadata?.name === ref.name));
        if (!pod) {
          parts.push({ reason: 'Evicting', message: `VF ${vf.pciAddr}: ${vf.holder} is no longer a pod on this node; waiting for kubelet and the CNI to free the VF` });
          continue;
        }
        const uid = pod.metadata?.uid ?? podName(pod);
        let out = done.get(uid);
        if (!out) {
          out = await this.evictOne(pod, uid, n, vf.pciAddr, events);
          done.set(uid, out);
        }
        parts.push(out);
      }
      const worst = (['BlockedByPDB', 'EvictionFailed', 'CannotEvict', 'Evicting'] as const).find((r) => parts.some((p) => p.reason === r)) ?? 'Evicting';
      outcomes.set(n.pf, { reason: worst, message: [...new Set(parts.map((p) => p.message))].join('; ') });
    }
    return { outcomes, events };
  }

  private async evictOne(pod: k8s.V1Pod, uid: string, n: EvictNeed, pci: string, events: PolicyEvent[]): Promise<EvictOutcome> {
    const who = `pod ${podName(pod)}`;
    if (pod.metadata?.deletionTimestamp || this.evicted.has(uid)) {
      return { reason: 'Evicting', message: `${who} evicted, waiting for it to go and free its VFs` };
    }
    const now = this.now();
    const prev = this.attempts.get(uid);
    if (prev && now < prev.next) return prev.outcome;
    try {
      await this.o.core.createNamespacedPodEviction({
        name: pod.metadata!.name!,
        namespace: pod.metadata!.namespace!,
        // The UID precondition: a pod recreated under the same name since the list is not evicted.
        body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: pod.metadata!.name!, namespace: pod.metadata!.namespace! }, deleteOptions: { preconditions: { uid: pod.metadata!.uid! } } },
      });
    } catch (e) {
      const f = kubeFailure(e);
      if (f.code === 404) return { reason: 'Evicting', message: `${who} is gone; waiting for kubelet and the CNI to free its VFs` };
      const delay = Math.min(prev ? prev.delay * 2 : (this.o.backoffMs ?? 1_000), this.o.maxBackoffMs ?? 60_000);
      let outcome: EvictOutcome;
      if (f.code === 429) {
        const pdb = pdbOf(f, bodyOf(e));
        outcome = { reason: 'BlockedByPDB', message: `eviction of ${who} blocked by PDB ${pdb.name ? `${pod.metadata?.namespace}/${pdb.name}` : '(unnamed)'}: ${pdb.cause}; retrying with backoff` };
      } else {
        outcome = { reason: 'EvictionFailed', message: `eviction of ${who} failed: ${f.code ? `HTTP ${f.code} ` : ''}${f.message}; retrying with backoff` };
      }
      if (prev?.outcome.message !== outcome.message) {
        this.o.log.warn({ pod: podName(pod), pf: n.pf, code: f.code, retryInMs: delay }, outcome.message);
        events.push({ type: 'Warning', reason: outcome.reason === 'BlockedByPDB' ? 'NodePolicyEvictionBlocked' : 'NodePolicyEvictionFailed', message: `PF ${n.pf}: ${outcome.message}` });
      }
      this.attempts.set(uid, { next: now + delay, delay, outcome });
      return outcome;
    }
    this.attempts.delete(uid);
    this.evicted.set(uid, now);
    const message = `evicted ${who} (it holds VF ${pci} of PF ${n.pf}) to apply ${n.held.change}`;
    this.o.log.info({ pod: podName(pod), pf: n.pf }, message);
    events.push({ type: 'Normal', reason: 'NodePolicyEvicted', message: `PF ${n.pf}: ${message}` });
    return { reason: 'Evicting', message: `${who} evicted, waiting for it to go and free its VFs` };
  }

  /** On stop: give the Lease up so another node need not wait for it to expire. */
  async stop(): Promise<void> {
    await this.o.lease.release().catch((e: unknown) => this.o.log.warn({ err: kubeFailure(e).message }, 'node policy: releasing the Lease on stop failed; it expires on its own'));
  }
}
