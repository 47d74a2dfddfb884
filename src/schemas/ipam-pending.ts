/**
 * A delegated-IPAM release the CNI could not finish (the IPAM backend was down), queued in its
 * private state dir (`<stateDir>/ipam-pending/<containerId>_<ifName>.json`) and retried by later
 * DEL and GC calls. The CNI EXECUTES what it names, so every field is checked before use: the
 * plugin is a bare name resolved in the current CNI_PATH only, the environment is the four CNI_*
 * variables of the attachment and nothing else (no LD_PRELOAD, no PATH), and stdin is a netconf
 * whose `ipam.type` is that plugin. Entries of the previous release (which also stored CNI_PATH)
 * still parse; their CNI_PATH is ignored.
 */
import * as z from 'zod/mini';
import { CONTAINER_ID_RE, IFNAME_RE, pluginName } from './netconf';

export const IPAM_PENDING_DIR = 'ipam-pending';
/**
 * Where entries that fail validation are set aside. Not inside IPAM_PENDING_DIR: release 0.1.0 reads
 * every name there, unvalidated, and a rollback to it would run (or choke on) whatever was set aside.
 */
export const IPAM_PENDING_SET_ASIDE_DIR = 'ipam-pending.set-aside';
/** A netconf is at most a NetworkAttachmentDefinition's size (1 MiB in etcd); an entry holds one. */
export const IPAM_PENDING_MAX_BYTES = 1024 * 1024;

const envValue = z.string().check(z.maxLength(4096));

export const ipamPendingSchema = z
  .object({
    /** The format version (src/state/formats.ts): absent in 0.1.0's entries, which are version 1. */
    v: z.optional(z.literal(1)),
    /** The release that wrote the entry (absent in 0.1.0's). */
    writtenBy: z.optional(z.string().check(z.maxLength(64))),
    type: pluginName,
    stdin: z.string().check(z.maxLength(IPAM_PENDING_MAX_BYTES)),
    env: z.strictObject({
      CNI_CONTAINERID: z.optional(z.string().check(z.regex(CONTAINER_ID_RE, 'must be alphanumeric plus _ . -'), z.maxLength(256))),
      CNI_IFNAME: z.optional(z.string().check(z.regex(IFNAME_RE, 'must be a valid interface name'))),
      CNI_NETNS: z.optional(envValue),
      CNI_ARGS: z.optional(envValue),
      /** Written by the previous release; never used: the plugin is found in today's CNI_PATH. */
      CNI_PATH: z.optional(envValue),
    }),
  })
  .check(
    z.superRefine((p, ctx) => {
      let conf: unknown;
      try {
        conf = JSON.parse(p.stdin);
      } catch {
        ctx.issues.push({ code: 'custom', input: p.stdin, path: ['stdin'], message: 'must be a JSON netconf' });
        return;
      }
      const t = (conf as { ipam?: { type?: unknown } } | null)?.ipam?.type;
      if (t !== p.type) ctx.issues.push({ code: 'custom', input: t, path: ['stdin', 'ipam', 'type'], message: `must be the entry's type "${p.type}"` });
    }),
  );
export type IpamPending = z.infer<typeof ipamPendingSchema>;

/** The variables the entry may set for the plugin; CNI_PATH always comes from the current call. */
export function pendingEnv(p: IpamPending): Record<string, string> {
  const { CNI_PATH: _ignored, ...env } = p.env;
  return env as Record<string, string>;
}
