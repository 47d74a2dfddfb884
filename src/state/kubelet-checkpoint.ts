/**
 * The one reader of kubelet's device-manager checkpoint (<kubelet-dir>/device-plugins/
 * kubelet_internal_checkpoint), for the device plugin's allocation tracker and the node policy's
 * in-use check: bounded, never through a symlink, through KubeletCheckpointSchema, with the NUMA-map
 * and plain-list forms of DeviceIDs flattened.
 */
import { CniCode, UnderlayError } from '../errors';
import { describeIssues } from '../schemas/format';
import { KubeletCheckpointSchema } from '../schemas/kubelet-checkpoint';
import { readBounded } from './bounded-file';

/** Checkpoints are small (one entry per container with devices); a larger file is not kubelet's. */
export const MAX_CHECKPOINT_BYTES = 16 * 1024 * 1024;

export interface CheckpointEntry {
  podUid: string;
  resource: string;
  deviceIds: string[];
}

/** The entries; undefined when there is no checkpoint. Throws naming the file (and field) otherwise. */
export function readKubeletCheckpoint(file: string): CheckpointEntry[] | undefined {
  const bytes = readBounded(file, MAX_CHECKPOINT_BYTES);
  if (bytes === undefined) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new UnderlayError(CniCode.DecodeFailure, `kubelet checkpoint ${file}: not JSON (${(e as Error).message})`);
  }
  const r = KubeletCheckpointSchema.safeParse(doc);
  if (!r.success) throw new UnderlayError(CniCode.DecodeFailure, describeIssues(`kubelet checkpoint ${file}`, r.error.issues));
  return (r.data.Data.PodDeviceEntries ?? []).map((e) => ({
    podUid: e.PodUID,
    resource: e.ResourceName,
    deviceIds: Array.isArray(e.DeviceIDs) ? e.DeviceIDs : Object.values(e.DeviceIDs ?? {}).flatMap((v) => v ?? []),
  }));
}
