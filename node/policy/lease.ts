/**
 * The cluster-wide lock of `disruption: evict`: one coordination.k8s.io/v1 Lease, so that one node
 * at a time evicts pods to apply a VF count. The holder identity is the node name.
 *
 * Expiry is judged as client-go's leader election does it, on this node's clock only: a Lease whose
 * resourceVersion has not moved for leaseDurationSeconds *since this node first saw it* is
 * expired (the holder stopped renewing: it died or lost the API). Comparing renewTime with the local
 * clock instead would make clock skew between nodes decide. Taking over and renewing are updates
 * from the resourceVersion just read, so two nodes racing for a free or expired Lease get one
 * success and one 409 Conflict; creating it, one success and one 409 AlreadyExists.
 */
import * as k8s from '@kubernetes/client-node';
import { isAlreadyExists, isConflict, isNotFound } from '../../src/kube/client';

/** The one Lease every node's policy takes before it evicts anything (deploy/20-rbac.yaml names it). */
export const EVICT_LEASE_NAME = 'sriov-underlay-node-policy';
/** How long a holder that stopped renewing keeps the Lease (it renews every pass, 2 s by default). */
export const EVICT_LEASE_SECONDS = 30;

export interface LeaseOptions {
  namespace: string;
  name: string;
  /** This node's name. */
  holder: string;
  durationS: number;
  now?: () => number;
}

export type LeaseState = { held: true } | { held: false; holder: string };

export class NodeLease {
  private seen: { rv: string; at: number } | null = null;
  /** Whether this node held the Lease after its last hold(). */
  held = false;

  constructor(private readonly api: k8s.CoordinationV1Api, readonly o: LeaseOptions) {}

  get label(): string {
    return `Lease ${this.o.namespace}/${this.o.name}`;
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  private async read(): Promise<k8s.V1Lease | null> {
    try {
      return await this.api.readNamespacedLease({ namespace: this.o.namespace, name: this.o.name });
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  /** Take, renew or take over the Lease; or say who holds it. API failures are thrown. */
  async hold(): Promise<LeaseState> {
    const { namespace, name, holder: me, durationS } = this.o;
    const now = this.now();
    const stamp = new k8s.V1MicroTime(now);
    const cur = await this.read();
    if (!cur) {
      try {
        const made = await this.api.createNamespacedLease({
          namespace,
          body: { metadata: { name, namespace }, spec: { holderIdentity: me, leaseDurationSeconds: durationS, acquireTime: stamp, renewTime: stamp, leaseTransitions: 0 } },
        });
        this.seen = { rv: made.metadata?.resourceVersion ?? '', at: now };
        return this.setHeld(true);
      } catch (e) {
        if (isAlreadyExists(e)) return this.setHeld(false, await this.winner());
        throw e;
      }
    }
    const rv = cur.metadata?.resourceVersion ?? '';
    if (this.seen?.rv !== rv) this.seen = { rv, at: now };
    const holder = cur.spec?.holderIdentity ?? '';
    const duration = (cur.spec?.leaseDurationSeconds ?? durationS) * 1000;
    const mine = holder === me;
    if (!mine && holder !== '' && now - this.seen.at <= duration) return this.setHeld(false, holder);
    const spec: k8s.V1LeaseSpec = { ...cur.spec, holderIdentity: me, leaseDurationSeconds: durationS, renewTime: stamp };
    if (!mine) Object.assign(spec, { acquireTime: stamp, leaseTransitions: (cur.spec?.leaseTransitions ?? 0) + 1 });
    try {
      const out = await this.api.replaceNamespacedLease({ namespace, name, body: { ...cur, spec } });
      this.seen = { rv: out.metadata?.resourceVersion ?? '', at: now };
      return this.setHeld(true);
    } catch (e) {
      if (isConflict(e)) return this.setHeld(false, await this.winner());
      throw e;
    }
  }

  /** Who won a race for the Lease (409): read it again to name them. */
  private async winner(): Promise<string> {
    const now = await this.read().catch(() => null);
    const holder = now?.spec?.holderIdentity;
    return holder && holder !== this.o.holder ? holder : 'another node';
  }

  /** Give the Lease up (holder cleared), if this node holds it; a no-op otherwise. */
  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    const cur = await this.read();
    if (!cur || cur.spec?.holderIdentity !== this.o.holder) return;
    const spec: k8s.V1LeaseSpec = { ...cur.spec, holderIdentity: undefined, renewTime: new k8s.V1MicroTime(this.now()) };
    try {
      await this.api.replaceNamespacedLease({ namespace: this.o.namespace, name: this.o.name, body: { ...cur, spec } });
    } catch (e) {
      if (!isConflict(e)) throw e; // someone else has it now: nothing to give up
    }
  }

  private setHeld(held: true): LeaseState;
  private setHeld(held: false, holder: string): LeaseState;
  private setHeld(held: boolean, holder?: string): LeaseState {
    this.held = held;
    return held ? { held: true } : { held: false, holder: holder! };
  }
}
