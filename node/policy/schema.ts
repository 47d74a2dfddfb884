/**
 * The node policy: which VFs each node should have. A ConfigMap beside the pools config, mounted as a
 * file (one key), e.g.
 *
 *   policies:
 *     - name: fabric-a
 *       nodeSelector: {sriov-underlay.io/fabric: a}   # node labels; omitted = every node
 *       pfNames: [ens1f0]                            # or rootDevices, or vendors/devices (PF ids)
 *       numVfs: 8                                    # omitted = leave sriov_numvfs alone
 *       mtu: 9000                                    # PF MTU; omitted = leave alone
 *       linkUp: true                                 # bring the PF up; omitted = leave the link alone
 *     - name: fabric-a-dpdk
 *       pfNames: ["ens1f0#4-7"]                      # a VF range: the driver applies to these VFs
 *       vfDriver: vfio-pci                           # or netdevice (the kernel's VF driver)
 *       externallyManaged: false                     # true: never write, only verify and report
 *       disruption: none                             # evict: evict the pods holding its VFs (docs/node-policy.md)
 *
 * Entries are validated one by one (a bad entry is rejected whole, naming ConfigMap, key and field);
 * the envelope is validated first, and a file whose envelope is unusable changes nothing.
 */
import { z } from 'zod';
import { hexIds, vfRangeSelector } from '../../src/schemas/device-pools';

const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
const NAME = /^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/;
const nonEmpty = 'must list at least one value when present';

/** Hard caps: a policy file is small; anything bigger is a mistake or an attack. */
export const POLICY_LIMITS = { bytes: 256 * 1024, entries: 256 } as const;

export const VF_DRIVERS = ['netdevice', 'vfio-pci'] as const;
export type VfDriverKind = (typeof VF_DRIVERS)[number];

export const PolicyEntrySchema = z
  .object({
    name: z.string().regex(NAME, 'must be a lower-case DNS label-like name (a-z, 0-9, "-", "."), at most 63 characters'),
    nodeSelector: z
      .record(z.string().regex(LABEL_KEY, 'must be a Kubernetes label key'), z.string().regex(LABEL_VALUE, 'must be a Kubernetes label value'))
      .default({}),
    pfNames: z.array(vfRangeSelector('pfName')).min(1, nonEmpty).max(64).optional(),
    rootDevices: z.array(vfRangeSelector('rootDevice')).min(1, nonEmpty).max(64).optional(),
    vendors: hexIds.optional(),
    devices: hexIds.optional(),
    numVfs: z.number().int().min(0).max(4096).optional(),
    mtu: z.number().int().min(68, 'at least 68 (the IPv4 minimum)').max(65535).optional(),
    linkUp: z.literal(true, { error: 'only true (bring the PF up); omit it to leave the link alone' }).optional(),
    vfDriver: z.enum(VF_DRIVERS).optional(),
    externallyManaged: z.boolean().default(false),
    disruption: z.enum(['none', 'evict']).default('none'),
  })
  .strict()
  .superRefine((e, ctx) => {
    if (!e.pfNames && !e.rootDevices && !e.vendors && !e.devices) {
      ctx.addIssue({ code: 'custom', path: ['pfNames'], message: 'select the PFs: pfNames, rootDevices or vendors/devices' });
    }
    const ranged = [...(e.pfNames ?? []), ...(e.rootDevices ?? [])].some((s) => s.ranges !== null);
    if (ranged && e.vfDriver === undefined) {
      ctx.addIssue({ code: 'custom', path: [e.pfNames ? 'pfNames' : 'rootDevices'], message: 'a VF range ("#N-M") only chooses the VFs that vfDriver applies to: set vfDriver, or drop the range' });
    }
    if (e.disruption === 'evict' && e.externallyManaged) {
      ctx.addIssue({ code: 'custom', path: ['disruption'], message: 'evict with externallyManaged: true would evict pods for a change this node never writes' });
    }
    if (e.numVfs === undefined && e.mtu === undefined && e.linkUp === undefined && e.vfDriver === undefined) {
      ctx.addIssue({ code: 'custom', path: ['numVfs'], message: 'declares nothing: set numVfs, mtu, linkUp or vfDriver' });
    }
  });
export type PolicyEntry = z.infer<typeof PolicyEntrySchema>;

/** The file's envelope; entries are checked one by one afterwards. */
export const PolicyFileSchema = z
  .object({
    policies: z.array(z.unknown()).max(POLICY_LIMITS.entries, `at most ${POLICY_LIMITS.entries} entries`),
  })
  .strict();
