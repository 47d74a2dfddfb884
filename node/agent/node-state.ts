/**
 * Publishes this node's SriovNodeState: VF capacity, allocatable, allocated and unhealthy per pool,
 * and the PFs' link speeds. The node agent runs inside the device-plugin process, so the pool state
 * comes straight from the device plugin (no second discovery); `update()` is called whenever it
 * changes and writes are coalesced (at most one in flight, the latest state wins). A replace
 * carries the resourceVersion read, so a stale writer (an old agent pod still shutting down) loses
 * with 409 and re-reads.
 */
import { isAlreadyExists, isConflict, type ClusterObjects } from '../../src/kube/client';
import type { Logger } from '../../src/log';
import type { NodePolicyStatus, NodePoolState, SriovNodeState } from '../../src/schemas/node-state';

export class NodeStatePublisher {
  private pending: NodePoolState[] | null = null;
  private pools: NodePoolState[] = [];
  /** The node policy's part of the status (node/policy), written along with the pools. */
  private policy: NodePolicyStatus | undefined;
  private running: Promise<void> | null = null;
  /** Successful writes, for tests and metrics. */
  writes = 0;

  constructor(
    private readonly objects: ClusterObjects<SriovNodeState>,
    private readonly nodeName: string,
    private readonly log?: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Publish this pool state (coalesced with any write in flight). Resolves when it is written. */
  update(pools: NodePoolState[]): Promise<void> {
    this.pending = pools;
    this.running ??= this.drain().finally(() => (this.running = null));
    return this.running;
  }

  /** Publish the node policy's status (with the last pool state). */
  updatePolicy(policy: NodePolicyStatus): Promise<void> {
    this.policy = policy;
    return this.update(this.pending ?? this.pools);
  }

  private async drain(): Promise<void> {
    while (this.pending) {
      const pools = this.pending;
      this.pending = null;
      try {
        await this.write(pools);
        this.pools = pools;
        this.writes++;
      } catch (e) {
        this.log?.warn({ node: this.nodeName, err: (e as Error).message }, 'could not publish SriovNodeState; will retry on the next change');
        this.pending ??= pools;
        throw e;
      }
    }
  }

  private async write(pools: NodePoolState[]): Promise<void> {
    const status = { updatedAt: this.now().toISOString(), pools, ...(this.policy ? { policy: this.policy } : {}) };
    for (let attempt = 0; attempt < 3; attempt++) {
      const cur = await this.objects.get(this.nodeName);
      try {
        if (!cur) {
          await this.objects.create({ metadata: { name: this.nodeName }, spec: {}, status });
        } else {
          await this.objects.replace(this.nodeName, { metadata: { name: this.nodeName, resourceVersion: cur.metadata?.resourceVersion }, spec: cur.spec ?? {}, status });
        }
        return;
      } catch (e) {
        if (!isConflict(e) && !isAlreadyExists(e)) throw e;
      }
    }
    throw new Error(`SriovNodeState ${this.nodeName} kept changing under us`);
  }
}

/** The device plugin's per-pool counts (its MetricsSource.pools()), as the daemon knows them. */
export interface DevicePluginPoolCounts {
  resource: string;
  total: number;
  healthy: number;
  allocated: number;
}

/**
 * What the agent publishes, from the device plugin's counts: capacity = VFs in the pool,
 * allocatable = healthy ones, unhealthy = the rest; plus each serving PF with its link speed.
 */
export function nodePoolStates(
  pools: DevicePluginPoolCounts[],
  pfsOf: (resource: string) => Iterable<string>,
  speedOf: (pf: string) => number | null,
): NodePoolState[] {
  return pools.map((p) => ({
    resourceName: p.resource,
    capacity: p.total,
    allocatable: p.healthy,
    allocated: p.allocated,
    unhealthy: p.total - p.healthy,
    pfs: [...new Set(pfsOf(p.resource))].sort().map((name) => ({ name, linkSpeedMbps: speedOf(name) })),
  }));
}
