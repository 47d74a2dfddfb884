/**
 * Flag parsing for the node daemon: node:util parseArgs for the syntax, zod for the values, so a
 * bad flag is named with what is wrong and nothing starts.
 */
import { parseArgs } from 'node:util';
import { describeIssues } from '../src/schemas/format';
import { NodeFlagsSchema, type NodeFlags } from '../src/schemas/node-flags';
import { DEFAULT_DEVINFO_DIR } from './device-plugin/allocate';

export const FLAG_DEFAULTS = {
  components: 'device-plugin',
  'kubelet-dir': '/var/lib/kubelet',
  'sysfs-root': '/sys',
  config: '/etc/sriov-underlay/device-plugin/pools.yaml',
  'devinfo-dir': DEFAULT_DEVINFO_DIR,
  'registration-mode': 'auto',
  'log-level': 'info',
  'metrics-address': ':9410',
  'rescan-interval-ms': '500',
  kubeconfig: '',
  'agent-socket': '/run/sriov-underlay/agent.sock',
  'release-queue-dir': '/var/lib/sriov-underlay/release-queue',
  'pod-resources-socket': '/var/lib/kubelet/pod-resources/kubelet.sock',
  'reconcile-interval-ms': '30000',
  'node-policy': '/etc/sriov-underlay/node-policy/policy.yaml',
  'node-policy-configmap': 'sriov-underlay/node-policy',
  'node-policy-interval-ms': '2000',
  'cni-state-dir': '/var/lib/cni/sriov-underlay',
  'cni-socket': '/run/sriov-underlay-cni/cni.sock',
  'cni-metrics-address': ':9411',
  'cni-sysctl-root': '/proc/sys',
  'cni-command-deadline-ms': '90000',
} as const;

export const USAGE = `Usage: sriov-underlay-node [flags]

The sriov-underlay node daemon. Components run in one process and start independently.

Flags:
  --components LIST          components to run, comma-separated (default ${FLAG_DEFAULTS.components}; available: device-plugin, agent, node-policy, cni-server)
  --kubelet-dir DIR          kubelet root dir, holding device-plugins/ and plugins_registry/ (default ${FLAG_DEFAULTS['kubelet-dir']})
  --sysfs-root DIR           where sysfs is mounted (default ${FLAG_DEFAULTS['sysfs-root']})
  --config FILE              device-plugin pools config, JSON or YAML, usually a mounted ConfigMap (default ${FLAG_DEFAULTS.config})
  --devinfo-dir DIR          where Allocate writes Network Plumbing WG device-info files; "" disables (default ${FLAG_DEFAULTS['devinfo-dir']})
  --registration-mode MODE   auto | legacy | plugin-watcher; auto uses plugin-watcher when <kubelet-dir>/plugins_registry exists (default auto)
  --log-level LEVEL          error | warning | info | debug (default info)
  --metrics-address ADDR     host:port for Prometheus /metrics; "" disables (default ${FLAG_DEFAULTS['metrics-address']})
  --rescan-interval-ms N     cheap sysfs/config/checkpoint rescan period (default ${FLAG_DEFAULTS['rescan-interval-ms']})

Node agent (component "agent"):
  --node-name NAME           this node's name (default $NODE_NAME, from the downward API)
  --kubeconfig FILE          kubeconfig; "" uses the in-cluster service account (default "")
  --agent-socket PATH        unix socket the CNI asks for per-pod settings (default ${FLAG_DEFAULTS['agent-socket']})
  --release-queue-dir DIR    where the CNI's DEL leaves claim-release notes (default ${FLAG_DEFAULTS['release-queue-dir']})
  --pod-resources-socket P   kubelet PodResources socket, for pods without a deviceID; "" disables (default ${FLAG_DEFAULTS['pod-resources-socket']})
  --reconcile-interval-ms N  period of the leaked-claim reconcile loop; 0 disables (default ${FLAG_DEFAULTS['reconcile-interval-ms']})
  --reconcile-report-only    log what reconcile would release, release nothing

Node policy (component "node-policy"; applied before the device plugin first registers):
  --node-policy FILE         the node policy, a mounted ConfigMap key; absent = no policy (default ${FLAG_DEFAULTS['node-policy']})
  --node-policy-configmap NS/NAME  the ConfigMap it is mounted from, for messages (default ${FLAG_DEFAULTS['node-policy-configmap']})
  --node-policy-interval-ms N      re-check period: held changes go through once their VFs are free (default ${FLAG_DEFAULTS['node-policy-interval-ms']})
  --cni-state-dir DIR        the CNI's private state dir, read (never written) for the VFs it holds; mount it read-only (default ${FLAG_DEFAULTS['cni-state-dir']})

CNI server (component "cni-server"; runs the CNI for the shim, docs/cni-server.md):
  --cni-socket PATH          the root-only socket the shim connects to; its dir is made 0700 (default ${FLAG_DEFAULTS['cni-socket']})
  --cni-metrics-address ADDR host:port for the CNI server's /metrics; "" disables (default ${FLAG_DEFAULTS['cni-metrics-address']})
  --cni-sysctl-root DIR      where the CNI server writes the pods' net.* sysctls: a container's /proc/sys is read-only, so
                             the DaemonSet mounts the host's /proc/sys/net under DIR/net (default ${FLAG_DEFAULTS['cni-sysctl-root']})
  --cni-command-deadline-ms N  a call still running after this is answered "try again later" (code 11) and runs on to its end (default ${FLAG_DEFAULTS['cni-command-deadline-ms']})
  -h, --help                 print this help
`;

export class FlagError extends Error {}

export function parseFlags(argv: string[]): NodeFlags {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        components: { type: 'string' },
        'kubelet-dir': { type: 'string' },
        'sysfs-root': { type: 'string' },
        config: { type: 'string' },
        'devinfo-dir': { type: 'string' },
        'registration-mode': { type: 'string' },
        'log-level': { type: 'string' },
        'metrics-address': { type: 'string' },
        'rescan-interval-ms': { type: 'string' },
        'node-name': { type: 'string' },
        kubeconfig: { type: 'string' },
        'agent-socket': { type: 'string' },
        'release-queue-dir': { type: 'string' },
        'pod-resources-socket': { type: 'string' },
        'reconcile-interval-ms': { type: 'string' },
        'reconcile-report-only': { type: 'boolean' },
        'node-policy': { type: 'string' },
        'node-policy-configmap': { type: 'string' },
        'node-policy-interval-ms': { type: 'string' },
        'cni-state-dir': { type: 'string' },
        'cni-socket': { type: 'string' },
        'cni-metrics-address': { type: 'string' },
        'cni-sysctl-root': { type: 'string' },
        'cni-command-deadline-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    throw new FlagError((e as Error).message);
  }
  const nodeName = process.env.NODE_NAME || undefined;
  const r = NodeFlagsSchema.safeParse({ ...FLAG_DEFAULTS, 'node-name': nodeName, 'reconcile-report-only': false, help: false, ...values });
  if (!r.success) throw new FlagError(describeIssues('flags', r.error.issues).replaceAll('field "', 'flag "--'));
  return r.data;
}
