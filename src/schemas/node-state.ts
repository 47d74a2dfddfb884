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

const policyConditionSchema = z.object({
  type: z.enum(['Applied', 'Blocked', 'Failed']),
  status: z.enum(['True', 'False']),
  reason: z.string(),
  message: z.string(),
  /** Blocked: who holds the VFs ("pod db/mysql-0"). */
  pods: z.optional(z.array(z.string())),
});
export type PolicyCondition = z.infer<typeof policyConditionSchema>;

/** One PF under the node policy: desired vs actual, and how the last apply went. */
export const pfPolicyStatusSchema = z.object({
  name: z.string(),
  pciAddr: z.string(),
  entries: z.array(z.string()),
  externallyManaged: z.boolean(),
  desired: z.object({
    numVfs: z.optional(count),
    mtu: z.optional(count),
    linkUp: z.optional(z.boolean()),
    vfDrivers: z.array(z.object({ vfs: z.string(), driver: z.string() })),
  }),
  actual: z.object({
    totalVfs: count,
    numVfs: count,
    mtu: z.nullable(count),
    linkUp: z.nullable(z.boolean()),
    speedMbps: z.nullable(count),
    /** Driver of each VF by index ("" = unbound). */
    vfDrivers: z.array(z.string()),
  }),
  conditions: z.array(policyConditionSchema),
});
export type PfPolicyStatus = z.infer<typeof pfPolicyStatusSchema>;

/** The node policy as this node applied it (written by the node-policy component). */
export const nodePolicyStatusSchema = z.object({
  /** "ConfigMap sriov-underlay/node-policy key "policy.yaml"" */
  source: z.string(),
  appliedAt: z.string(),
  /** Entries rejected on this node, one line each naming the entry and field. */
  rejected: z.array(z.string()),
  pfs: z.array(pfPolicyStatusSchema),
});
export type NodePolicyStatus = z.infer<typeof nodePolicyStatusSchema>;

export const nodeStateStatusSchema = z.object({
  updatedAt: z.string(),
  pools: z._default(z.array(nodePoolStateSchema), []),
  policy: z.optional(nodePolicyStatusSchema),
});
export type NodeStateStatus = z.infer<typeof nodeStateStatusSchema>;

export interface SriovNodeState {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; resourceVersion?: string; uid?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  status?: unknown;
}
