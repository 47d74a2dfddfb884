/**
 * The IPAM half of a node agent, in one object: a claims informer (the allocator's view of what is
 * taken, and what the reconcile loop and reservations read instead of listing), a node informer
 * (which nodes exist), the pool allocator (queued per pool on this node), and the reconcile loop
 * for this node.
 * The agent creates it with its clients and registration index, starts it, and calls allocate()
 * for pool registrations (at ADD, and for reservations when a registration appears).
 */
import type * as k8s from '@kubernetes/client-node';
import type { ClusterObjects, KubeClients } from '../kube/client';
import { clusterObjectInformer, nodeInformer, type Informer } from '../kube/informer';
import type { Logger } from '../log';
import type { RegistrationIndex } from '../registrations/index';
import type { NetworkModel } from '../registrations/network-model';
import type { ClaimDeps, IPClaim } from './claims';
import { cachedView, fixedAddressesByNetwork, PoolAllocator, type PoolRequest } from './pool-allocator';
import { ClusterReader, Reconciler, type Finding } from './reconcile';

export interface IpamServiceOptions {
  clients: KubeClients;
  claims: ClusterObjects<IPClaim>;
  claimDeps: ClaimDeps;
  index: RegistrationIndex;
  nodeName: string;
  log: Logger;
  /** Default 30 s; 0 disables the loop (tests call reconcile() themselves). */
  reconcileIntervalMs?: number;
  reportOnly?: boolean;
  /** PoolAllocator's allocationTimeoutMs. */
  allocationTimeoutMs?: number;
  /** The informers' watch connect deadline. */
  watchConnectMs?: number;
  onReleased?: (f: Finding) => void;
  now?: () => number;
}

export class IpamService {
  readonly allocator: PoolAllocator;
  readonly reconciler: Reconciler;
  private readonly informer: Informer<IPClaim>;
  private readonly nodes: Informer<k8s.V1Node>;
  private fixedCache: { generation: number; byNetwork: Map<string, Set<string>> } = { generation: -1, byNetwork: new Map() };

  constructor(private readonly opts: IpamServiceOptions) {
    this.informer = clusterObjectInformer(opts.claims, opts.clients.watch, { name: `ipclaims (${opts.nodeName})`, log: opts.log, ...(opts.watchConnectMs ? { watchConnectMs: opts.watchConnectMs } : {}) });
    this.nodes = nodeInformer(opts.clients, { log: opts.log, ...(opts.watchConnectMs ? { watchConnectMs: opts.watchConnectMs } : {}) });
    this.allocator = new PoolAllocator({
      claims: opts.claims,
      claimDeps: opts.claimDeps,
      view: cachedView(() => this.informer.list()),
      fixedAddresses: (network) => this.fixed().get(network) ?? new Set(),
      ...(opts.allocationTimeoutMs !== undefined ? { allocationTimeoutMs: opts.allocationTimeoutMs } : {}),
    });
    this.reconciler = new Reconciler({
      claims: opts.claims,
      reader: new ClusterReader(opts.clients.core, opts.clients.apps),
      claimsCache: () => this.claims(),
      nodesCache: () => (this.nodes.hasSynced ? new Set(this.nodes.list().map((n) => n.metadata?.name ?? '')) : null),
      nodeName: opts.nodeName,
      cooldownFor: (n) => opts.index.network(n)?.spec.cooldownSeconds,
      log: opts.log,
      ...(opts.reportOnly !== undefined ? { reportOnly: opts.reportOnly } : {}),
      ...(opts.onReleased ? { onReleased: opts.onReleased } : {}),
      ...(opts.now ? { now: opts.now } : {}),
    });
  }

  async start(): Promise<void> {
    await Promise.all([this.informer.start(), this.nodes.start()]);
    const every = this.opts.reconcileIntervalMs ?? 30_000;
    if (every > 0) this.reconciler.start(every);
  }

  async stop(): Promise<void> {
    await this.reconciler.stop();
    await this.informer.stop();
    await this.nodes.stop();
  }

  allocate(net: NetworkModel, req: PoolRequest): Promise<IPClaim[]> {
    return this.allocator.allocate(net, req);
  }

  /** Every claim as the informer holds it; null until it has listed. */
  claims(): IPClaim[] | null {
    return this.informer.hasSynced ? this.informer.list() : null;
  }

  reconcile() {
    return this.reconciler.runOnce();
  }

  /** Fixed addresses per network, recomputed only when the index changed. */
  private fixed(): Map<string, Set<string>> {
    if (this.fixedCache.generation !== this.opts.index.generation) {
      this.fixedCache = { generation: this.opts.index.generation, byNetwork: fixedAddressesByNetwork(this.opts.index.registrations()) };
    }
    return this.fixedCache.byNetwork;
  }
}
