/**
 * Which VFs are in use, read fresh right before anything destructive. A VF counts as in use when
 * any source says so:
 *  - kubelet's device-manager checkpoint (the devices it assigned, by pod UID);
 *  - kubelet's PodResources List (the same, with the pod's namespace/name);
 *  - the CNI's VF records (a VF the CNI moved into a pod and has not restored);
 *  - sysfs: a VF on a kernel netdev driver whose netdev is not in the host netns (it is in a pod).
 * When a source that exists cannot be read or parsed, nothing can be said to be free: `unknown`
 * carries why, and the engine then holds every VF-destroying change.
 */
import { readKubeletCheckpoint, type CheckpointEntry } from '../../src/state/kubelet-checkpoint';
import { VfRecords } from '../../src/state/vf-records';
import type { VfDevice } from '../../src/sysfs/pci';
import type { PodResources } from '../../src/proto/podresources';

/** A pod as a source names it: kubelet's checkpoint knows only its UID, PodResources only its name. */
export interface PodRef {
  namespace?: string;
  name?: string;
  uid?: string;
}

export interface InUse {
  /** PCI address -> who holds it ("pod db/mysql-0", "pod uid 1234...", ...). */
  holders: Map<string, string>;
  /** PCI address -> the pod holding it, when a source named one (what `disruption: evict` evicts). */
  pods: Map<string, PodRef>;
  /** Set when some source could not be read: nothing may be treated as free. */
  unknown: string | null;
}

export interface InUseSources {
  /** <kubelet-dir>/device-plugins/kubelet_internal_checkpoint; null skips it. */
  checkpointPath: string | null;
  /** The CNI's state dir (read only, through VfRecords); null skips it. */
  stateDir: string | null;
  /** PodResources List; null skips it. */
  podResources: (() => Promise<PodResources[]>) | null;
}

function fromCheckpoint(file: string, holders: Map<string, string>, pods: Map<string, PodRef>): string | null {
  let entries: CheckpointEntry[] | undefined;
  try {
    entries = readKubeletCheckpoint(file);
  } catch (e) {
    return (e as Error).message;
  }
  for (const e of entries ?? []) {
    for (const id of e.deviceIds) {
      if (!holders.has(id)) holders.set(id, `pod uid ${e.podUid}`);
      pods.set(id, { ...pods.get(id), uid: e.podUid });
    }
  }
  return null;
}

export async function readInUse(src: InUseSources, vfs: readonly VfDevice[]): Promise<InUse> {
  const holders = new Map<string, string>();
  const pods = new Map<string, PodRef>();
  const problems: string[] = [];
  if (src.podResources) {
    try {
      for (const p of await src.podResources()) {
        for (const c of p.containers) {
          for (const d of c.devices) {
            for (const id of d.deviceIds) {
              holders.set(id, `pod ${p.namespace}/${p.name}`);
              pods.set(id, { namespace: p.namespace, name: p.name });
            }
          }
        }
      }
    } catch (e) {
      problems.push(`kubelet PodResources: ${(e as Error).message}`);
    }
  }
  if (src.checkpointPath) {
    const err = fromCheckpoint(src.checkpointPath, holders, pods);
    if (err) problems.push(err);
  }
  if (src.stateDir) {
    const { records, errors } = new VfRecords(src.stateDir).all();
    problems.push(...errors);
    for (const r of records) {
      if (r.pod && !pods.has(r.pciAddr)) pods.set(r.pciAddr, { ...r.pod });
      if (holders.has(r.pciAddr)) continue;
      holders.set(r.pciAddr, r.pod ? `pod ${r.pod.namespace}/${r.pod.name}` : `container ${r.containerId.slice(0, 12)}`);
    }
  }
  for (const vf of vfs) {
    if (vf.driver !== null && !vf.userspace && vf.netdevs.length === 0 && !holders.has(vf.pciAddr)) {
      holders.set(vf.pciAddr, 'a netdev outside the host netns (in a pod?)');
    }
  }
  return { holders, pods, unknown: problems.length ? problems.join('; ') : null };
}
