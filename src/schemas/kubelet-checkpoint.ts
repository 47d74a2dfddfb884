/**
 * kubelet's device-manager checkpoint (<kubelet-dir>/device-plugins/kubelet_internal_checkpoint):
 * the devices kubelet has assigned to pods. Only the fields the device plugin reads are checked.
 * DeviceIDs is a NUMA-node -> IDs map since kubelet 1.20 and a plain list before.
 */
import { z } from 'zod';

export const KubeletCheckpointSchema = z.object({
  Data: z.object({
    PodDeviceEntries: z
      .array(
        z.object({
          PodUID: z.string(),
          ContainerName: z.string(),
          ResourceName: z.string(),
          DeviceIDs: z.union([z.record(z.string(), z.array(z.string()).nullable()), z.array(z.string())]).nullable(),
        }),
      )
      .nullable(),
  }),
});
export type KubeletCheckpoint = z.infer<typeof KubeletCheckpointSchema>;
