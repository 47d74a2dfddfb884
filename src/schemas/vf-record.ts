/**
 * The durable record the CNI keeps for each VF it hands to a pod: who holds it (the allocation
 * marker) and the VF's full original state, written before anything is changed.
 */
import * as z from 'zod/mini';
import { PCI_ADDR_RE } from '../sysfs/pci';
import { CONTAINER_ID_RE, IFNAME_RE, ipamSchema } from './netconf';

/** A record is ~1-2 KiB; its delegated IPAM config is a NAD's, which fits well below this. */
export const VF_RECORD_MAX_BYTES = 256 * 1024;
export const pciAddr = z.string().check(z.regex(PCI_ADDR_RE, 'must be a PCI address like 0000:81:10.2'));

const vfInfo = z.object({
  mac: z.string(),
  vlan: z.int(),
  qos: z.int(),
  vlanProto: z.enum(['802.1Q', '802.1ad']),
  spoofchk: z.optional(z.boolean()),
  trust: z.optional(z.boolean()),
  linkState: z.optional(z.enum(['auto', 'enable', 'disable'])),
  minTxRate: z.int(),
  maxTxRate: z.int(),
});
export type VfSettings = z.infer<typeof vfInfo>;

const netdevState = z.object({
  name: z.string(),
  mac: z.string(),
  mtu: z.int(),
  up: z.boolean(),
  altnames: z.array(z.string()),
});
export type NetdevState = z.infer<typeof netdevState>;

export const vfRecordSchema = z.object({
  /** The format version (src/state/formats.ts); 0.1.0 wrote 1, and so does this release. */
  version: z.literal(1),
  /** The release that wrote the file (absent in 0.1.0's), named when a reader refuses a newer format. */
  writtenBy: z.optional(z.string().check(z.maxLength(64))),
  pciAddr,
  networkName: z.string(),
  // Both end up in file names (the attachment index) and in an IPAM plugin's environment.
  containerId: z.string().check(z.regex(CONTAINER_ID_RE, 'must be alphanumeric plus _ . -'), z.maxLength(256)),
  ifName: z.string().check(z.regex(IFNAME_RE, 'must be a valid interface name')),
  netns: z.string(),
  pod: z.optional(z.object({ namespace: z.string(), name: z.string(), uid: z.string() })),
  phase: z.enum(['adding', 'ready']),
  createdAt: z.string(),
  original: z.object({
    pfNetdev: z.nullable(z.string()),
    vfIndex: z.int(),
    userspace: z.boolean(),
    /** PF-side VF settings; null when the PF reports no VF table at all. */
    vf: z.nullable(vfInfo),
    /** The VF netdev on the host; null for a userspace-bound VF. */
    netdev: z.nullable(netdevState),
  }),
  /** What ADD set (for CHECK and for finding the netdev in the pod netns). */
  applied: z.optional(
    z.object({
      vf: z.partial(vfInfo),
      /** ifindex: the netdev's index in the pod netns, which survives a rename or MAC change there. */
      netdev: z.nullable(z.object({ name: z.string(), mac: z.string(), mtu: z.int(), ifindex: z.optional(z.int()) })),
      ips: z.array(z.string()),
      routes: z.array(z.object({ dst: z.string(), gw: z.optional(z.string()) })),
    }),
  ),
  /** The delegated IPAM config, so DEL/GC can release it without the original netconf. */
  ipam: z.optional(ipamSchema),
  cniVersion: z.string(),
});
export type VfRecord = z.infer<typeof vfRecordSchema>;
