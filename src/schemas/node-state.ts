/**
 * SriovNodeState (cluster-scoped CRD, one object per node, named after the node): the VF capacity
 * the node agent publishes for `kubectl sriov nodes` and `validate` (PF link speeds for the QoS
 * check). Written only by the agent of that node, from the device plugin's pool state.
 *
 *   status:
 *     updatedAt: 2026-11-23T12:00:00Z
 *     pools:
 *       - resourceName: sriov-underlay.io/vf-pool-a
 *         capacity: 16        # VFs in the pool
 *         allocatable: 15     # healthy, as advertised to kubelet
 *         allocated: 4        # handed to pods
 *         unhealthy: 1
 *         pfs: [{name: ens1f0, linkSpeedMbps: 25000}]
 */
import * as z from 'zod/mini';

const count = z.int().check(z.gte(0));

export const nodePoolStateSchema = z.object({
  resourceName: z.string().check(z.minLength(1)),
  capacity: count,
  allocatable: count,
  allocated: count,
  unhealthy: count,
  pfs: z._default(z.array(z.object({ name: z.string(), linkSpeedMbps: z.optional(z.nullable(count)) })), []),
});
export type NodePoolState = z.infer<typeof nodePoolStateSchema>;

export const nodeStateStatusSchema = z.object({
  updatedAt: z.string(),
  pools: z.array(nodePoolStateSchema),
});
export type NodeStateStatus = z.infer<typeof nodeStateStatusSchema>;

export interface SriovNodeState {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; resourceVersion?: string; uid?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  status?: unknown;
}
