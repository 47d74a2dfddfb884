/**
 * Requests kubelet sends to the device plugin over gRPC, checked before use. Field names are the
 * .proto names (the loader keeps case).
 */
import { z } from 'zod';

const deviceIds = z.array(z.string().min(1, 'empty device ID'));

export const AllocateRequestSchema = z.object({
  container_requests: z
    .array(z.object({ devices_ids: deviceIds.min(1, 'no device IDs requested') }))
    .min(1, 'no container requests'),
});
export type AllocateRequest = z.infer<typeof AllocateRequestSchema>;

export const PreferredAllocationRequestSchema = z.object({
  container_requests: z
    .array(
      z.object({
        available_deviceIDs: deviceIds,
        must_include_deviceIDs: deviceIds,
        allocation_size: z.number().int().min(1, 'allocation_size must be at least 1'),
      }),
    )
    .min(1, 'no container requests'),
});
export type PreferredAllocationRequest = z.infer<typeof PreferredAllocationRequestSchema>;

export const PreStartContainerRequestSchema = z.object({ devices_ids: deviceIds });
