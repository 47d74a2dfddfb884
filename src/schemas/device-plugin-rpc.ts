/**
 * Requests kubelet sends to the device plugin over gRPC, checked before use. Field names are the
 * .proto names (the loader keeps case).
 *
 * Bounds (documented in docs/device-plugin.md, "Bad requests"): a message is at most
 * MAX_RPC_MESSAGE_BYTES (enforced by the gRPC server), any list at most MAX_LIST values (also
 * enforced on the raw bytes, node/device-plugin/rpc-wire.ts), at most MAX_CONTAINER_REQUESTS containers
 * per request, device IDs 1 to MAX_DEVICE_ID_LENGTH characters and never repeated.
 */
import { z } from 'zod';

export const MAX_RPC_MESSAGE_BYTES = 1024 * 1024;
export const MAX_LIST = 4096;
export const MAX_CONTAINER_REQUESTS = 256;
/** Our device IDs are PCI addresses (12 characters); kubelet only sends back IDs we listed. */
export const MAX_DEVICE_ID_LENGTH = 64;

const deviceIds = z
  .array(z.string().min(1, 'empty device ID').max(MAX_DEVICE_ID_LENGTH, `device ID longer than ${MAX_DEVICE_ID_LENGTH} characters`))
  .max(MAX_LIST, `more than ${MAX_LIST} device IDs`)
  .superRefine((ids, ctx) => {
    const seen = new Set<string>();
    ids.forEach((id, i) => {
      if (id && seen.has(id)) ctx.addIssue({ code: 'custom', message: `device ID ${JSON.stringify(id)} appears more than once`, path: [i] }); // empty ones are reported already
      seen.add(id);
    });
  });

const containers = <T extends z.ZodTypeAny>(item: T) =>
  z.array(item).min(1, 'no container requests').max(MAX_CONTAINER_REQUESTS, `more than ${MAX_CONTAINER_REQUESTS} container requests`);

export const AllocateRequestSchema = z
  .object({ container_requests: containers(z.object({ devices_ids: deviceIds.min(1, 'no device IDs requested') })) })
  .superRefine((r, ctx) => {
    // kubelet never gives one device to two containers
    const earlier = new Set<string>();
    r.container_requests.forEach((c, ci) => {
      c.devices_ids.forEach((id, i) => {
        if (earlier.has(id)) ctx.addIssue({ code: 'custom', message: `device ID ${JSON.stringify(id)} is also requested by an earlier container`, path: ['container_requests', ci, 'devices_ids', i] });
      });
      for (const id of c.devices_ids) earlier.add(id);
    });
  });
export type AllocateRequest = z.infer<typeof AllocateRequestSchema>;

export const PreferredAllocationRequestSchema = z.object({
  container_requests: containers(
    z.object({
      available_deviceIDs: deviceIds,
      must_include_deviceIDs: deviceIds,
      allocation_size: z.number().int().min(1, 'allocation_size must be at least 1').max(MAX_LIST, `allocation_size must be at most ${MAX_LIST}`),
    }),
  ),
});
export type PreferredAllocationRequest = z.infer<typeof PreferredAllocationRequestSchema>;

export const PreStartContainerRequestSchema = z.object({ devices_ids: deviceIds });
