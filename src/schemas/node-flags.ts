/**
 * Command-line flags of the node daemon (dist/bin/sriov-underlay-node). Components are started
 * independently: the device plugin, the node agent, the node policy and the CNI server.
 */
import { z } from 'zod';

const absPath = z.string().startsWith('/', 'must be an absolute path');

export const NODE_COMPONENTS = ['device-plugin', 'agent', 'node-policy', 'cni-server'] as const;

export const NodeFlagsSchema = z
  .object({
    components: z
      .string()
      .transform((s) => s.split(',').map((c) => c.trim()).filter((c) => c !== ''))
      .pipe(z.array(z.enum(NODE_COMPONENTS)).min(1, 'name at least one component')),
    'kubelet-dir': absPath,
    'sysfs-root': absPath,
    config: absPath,
    'devinfo-dir': z.union([absPath, z.literal('')]),
    'registration-mode': z.enum(['auto', 'legacy', 'plugin-watcher']),
    'log-level': z.enum(['panic', 'error', 'warning', 'warn', 'info', 'debug']),
    'metrics-address': z.union([z.literal(''), z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:]*):\d{1,5}$/, 'must be host:port (host may be empty), or "" to disable')]),
    'rescan-interval-ms': z.coerce.number().int().min(50, 'at least 50 ms').max(60_000, 'at most 60000 ms'),
    // The node agent (component "agent").
    'node-name': z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a Kubernetes node name (set NODE_NAME or --node-name)').optional(),
    kubeconfig: z.union([absPath, z.literal('')]),
    'agent-socket': absPath,
    'release-queue-dir': absPath,
    'pod-resources-socket': z.union([absPath, z.literal('')]),
    'reconcile-interval-ms': z.coerce.number().int().min(0).max(3_600_000),
    'reconcile-report-only': z.boolean(),
    // The node policy (component "node-policy").
    'node-policy': absPath,
    'node-policy-configmap': z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be namespace/name'),
    'node-policy-interval-ms': z.coerce.number().int().min(100).max(600_000),
    // Read-only: the CNI's private records, so the node policy never re-creates VFs the CNI holds.
    'cni-state-dir': absPath,
    // The CNI server (component "cni-server").
    'cni-socket': absPath,
    'cni-sysctl-root': absPath,
    'cni-metrics-address': z.union([z.literal(''), z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:]*):\d{1,5}$/, 'must be host:port (host may be empty), or "" to disable')]),
    'cni-command-deadline-ms': z.coerce.number().int().min(1_000, 'at least 1000 ms').max(600_000, 'at most 600000 ms'),
    help: z.boolean(),
  })
  .strict()
  .refine((f) => !f.components.includes('agent') || f['node-name'] !== undefined, {
    path: ['node-name'],
    message: 'the agent needs the node name: set NODE_NAME (downward API) or --node-name',
  });
export type NodeFlags = z.infer<typeof NodeFlagsSchema>;
