/**
 * A queued claim release: written by the CNI at DEL (which never talks to the agent or the API),
 * consumed by the node agent, which deletes the pod's IPClaims and retries while the API is
 * unreachable. The queue dir (default /var/lib/sriov-underlay/release-queue) is the only one the
 * CNI shares with the node daemon: the CNI only creates new notes there under random names and
 * never reads anything back; the agent reads them through this schema, bounded in size, and deletes
 * them. Notes of the previous release (`<stateDir>/claim-releases/<containerId>-<ifName>.json`,
 * without network, node and addresses) still parse; the CNI moves them into the queue.
 */
import * as z from 'zod/mini';
import { CONTAINER_ID_RE, IFNAME_RE } from './netconf';

/** The one dir the CNI shares with the node daemon (a hostPath of its own, nothing else in it). */
export const DEFAULT_RELEASE_QUEUE_DIR = '/var/lib/sriov-underlay/release-queue';
/** Where the previous release queued notes, under the CNI's stateDir. */
export const LEGACY_CLAIM_RELEASE_DIR = 'claim-releases';
/** A note is a few hundred bytes; anything near this is not one. */
export const CLAIM_RELEASE_MAX_BYTES = 16 * 1024;

const short = (max: number) => z.string().check(z.maxLength(max));

export const claimReleaseSchema = z.object({
  /** The format version (src/state/formats.ts): 1 since 0.1.0. */
  v: z.literal(1),
  /** The release that wrote the note (absent in 0.1.0's). */
  writtenBy: z.optional(short(64)),
  containerId: z.string().check(z.regex(CONTAINER_ID_RE), z.maxLength(256)),
  ifName: z.string().check(z.regex(IFNAME_RE)),
  namespace: z.optional(short(253)),
  name: z.optional(short(253)),
  uid: z.optional(short(64)),
  /** The netconf's network name (the NAD's "name"). */
  network: z.optional(short(253)),
  /** The node the CNI ran on, as its kernel hostname says (the agent trusts its own NODE_NAME over it). */
  node: z.optional(short(253)),
  /** What the pod had on this attachment (CIDR notation), when the CNI still knew it. */
  addresses: z.optional(z.array(short(64)).check(z.maxLength(64))),
  queuedAt: short(64),
});
export type ClaimRelease = z.infer<typeof claimReleaseSchema>;
