/** Defaults and shared handles for one CNI invocation. */
import type { NetConf } from '../src/schemas/netconf';
import { VfRecords } from '../src/state/vf-records';

export const DEFAULT_SYSFS_ROOT = '/sys';
export const DEFAULT_STATE_DIR = '/var/lib/cni/sriov-underlay';
export const DEFAULT_LOG_FILE = '/var/log/sriov-underlay/cni.log';
/** Longer than any single ADD/DEL should hold a VF; kubelet retries after a failure anyway. */
export const LOCK_TIMEOUT_MS = 20_000;

export interface Ctx {
  sysfsRoot: string;
  stateDir: string;
  records: VfRecords;
}

export function makeCtx(conf: NetConf): Ctx {
  const stateDir = conf.stateDir ?? DEFAULT_STATE_DIR;
  return { sysfsRoot: conf.sysfsRoot ?? DEFAULT_SYSFS_ROOT, stateDir, records: new VfRecords(stateDir) };
}
