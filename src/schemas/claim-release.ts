/**
 * A queued claim release: written durably by the CNI at DEL (which never talks to the agent or the
 * API), consumed by the node agent, which deletes the pod's IPClaims and retries while the API is
 * unreachable. One file per attachment: `<stateDir>/claim-releases/<containerId>-<ifName>.json`.
 */
import * as z from 'zod/mini';

export const CLAIM_RELEASE_DIR = 'claim-releases';

export const claimReleaseSchema = z.object({
  v: z.literal(1),
  containerId: z.string().check(z.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/)),
  ifName: z.string().check(z.regex(/^[^\s/:]{1,15}$/)),
  namespace: z.optional(z.string()),
  name: z.optional(z.string()),
  uid: z.optional(z.string()),
  queuedAt: z.string(),
});
export type ClaimRelease = z.infer<typeof claimReleaseSchema>;

export function claimReleaseFile(containerId: string, ifName: string): string {
  return `${containerId}-${ifName}.json`;
}
