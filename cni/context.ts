/** Defaults, allowed path prefixes and shared handles for one CNI invocation. */
import type { core } from 'zod/mini';
import { DEFAULT_RELEASE_QUEUE_DIR } from '../src/schemas/claim-release';
import type { NetConf } from '../src/schemas/netconf';
import { VfRecords } from '../src/state/vf-records';

export const DEFAULT_SYSFS_ROOT = '/sys';
/** CNI-private: locks, VF records, attachment index, queued IPAM releases. Never mounted into the node daemon. */
export const DEFAULT_STATE_DIR = '/var/lib/cni/sriov-underlay';
export const DEFAULT_LOG_FILE = '/var/log/sriov-underlay/cni.log';
/** Longer than any single ADD/DEL should hold a VF; kubelet retries after a failure anyway. */
export const LOCK_TIMEOUT_MS = 20_000;

/**
 * Netconf comes from NetworkAttachmentDefinitions, which namespace admins write, yet the plugin
 * runs as root with every capability. So each path field may only point where the plugin's own
 * files live. Prefixes beyond these (a test's temp tree, a node with another layout) come from the
 * plugin's environment, which the container runtime sets and only root on the node controls.
 */
export const PATH_PREFIXES = {
  sysfsRoot: ['/sys'],
  stateDir: [DEFAULT_STATE_DIR],
  releaseQueueDir: [DEFAULT_RELEASE_QUEUE_DIR],
  logFile: ['/var/log/sriov-underlay'],
} as const;
export const EXTRA_PREFIXES_ENV = 'SRIOV_UNDERLAY_PATH_PREFIXES';

type PathField = keyof typeof PATH_PREFIXES;

/** The extra prefixes from the environment: only absolute, normalized entries count. */
export function extraPrefixes(env: NodeJS.ProcessEnv): string[] {
  return (env[EXTRA_PREFIXES_ENV] ?? '').split(':').filter((p) => p.length > 1 && p.startsWith('/') && !p.endsWith('/') && !p.split('/').some((s) => s === '.' || s === '..'));
}

const under = (p: string, prefix: string) => p === prefix || p.startsWith(`${prefix}/`);

/** Issues (zod-shaped, so describeIssues names the field) for path fields outside their prefixes. */
export function netconfPathIssues(conf: NetConf, env: NodeJS.ProcessEnv): core.$ZodIssue[] {
  const extra = extraPrefixes(env);
  const issues: core.$ZodIssue[] = [];
  for (const field of Object.keys(PATH_PREFIXES) as PathField[]) {
    const value = conf[field];
    if (value === undefined || (field === 'logFile' && value === '')) continue;
    const allowed = [...PATH_PREFIXES[field], ...extra];
    // The log file itself must be inside a prefix; a dir may be the prefix itself.
    if (allowed.some((pre) => (field === 'logFile' ? value.startsWith(`${pre}/`) : under(value, pre)))) continue;
    issues.push({
      code: 'custom',
      input: value,
      path: [field],
      message: `must be under ${PATH_PREFIXES[field].join(' or ')}${extra.length ? ` or ${extra.join(' or ')}` : ''} (more prefixes only through ${EXTRA_PREFIXES_ENV} in the runtime's environment)`,
    });
  }
  return issues;
}

export interface Ctx {
  sysfsRoot: string;
  stateDir: string;
  releaseQueueDir: string;
  records: VfRecords;
}

export function makeCtx(conf: NetConf): Ctx {
  const stateDir = conf.stateDir ?? DEFAULT_STATE_DIR;
  return {
    sysfsRoot: conf.sysfsRoot ?? DEFAULT_SYSFS_ROOT,
    stateDir,
    releaseQueueDir: conf.releaseQueueDir ?? DEFAULT_RELEASE_QUEUE_DIR,
    records: new VfRecords(stateDir),
  };
}
