/**
 * The CNI network configuration of the `sriov-underlay` plugin. A drop-in for sriov-cni's fields
 * plus mtu, sysfsRoot, stateDir, releaseQueueDir, logFile/logLevel and agentSocket. Unknown keys are kept, as the
 * CNI spec requires plugins to tolerate them.
 *
 * Written with zod/mini: it is on the CNI binary's start-up path, where full zod costs ~20 ms.
 */
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { PCI_ADDR_RE } from '../sysfs/pci';

export const MAC_RE = /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/;
/** CNI_CONTAINERID as the spec allows it. */
export const CONTAINER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** Linux interface names: 1-15 bytes, no '/', ':' or whitespace, not "." or "..". */
export const IFNAME_RE = /^(?!\.{1,2}$)[^\s/:]{1,15}$/;

// Mini ships without messages; English ones make every error name what is wrong.
z.config(en());

const mac = z.string().check(z.regex(MAC_RE, 'must be a MAC address like 02:00:00:aa:bb:cc'));
const onOff = z.enum(['on', 'off']);
const absPath = z.string().check(z.startsWith('/', 'must be an absolute path'));
/**
 * A path the plugin (root, all capabilities) reads, writes or creates: absolute and already in
 * normal form, so a prefix check on it means what it says (no "..", "//", "/./" or trailing "/").
 * Which prefixes are allowed is checked after parsing (cni/context.ts: netconfPathIssues), since it
 * depends on the node's configuration, not on the netconf.
 */
const normalPath = absPath.check(
  z.maxLength(1024),
  z.refine(
    (p) => !p.includes('\0') && (p === '/' || p.slice(1).split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..')),
    'must be a normalized absolute path (no "..", ".", "//" or trailing "/")',
  ),
);
/**
 * A CNI plugin name as libcni resolves it: a bare file name looked up in CNI_PATH, never a path.
 * Shared by the netconf, the VF record and the queued IPAM releases, which all name one.
 */
export const pluginName = z
  .string()
  .check(z.regex(/^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$/, 'must be a bare plugin name found in CNI_PATH (letters, digits, "_.+-"), not a path'), z.refine((s) => !s.includes('..'), 'must not contain ".."'));
const int = (min: number, max: number) => z.int().check(z.gte(min), z.lte(max));

export const LOG_LEVELS = ['panic', 'error', 'warning', 'info', 'debug'] as const;

export const ipamSchema = z.looseObject({ type: pluginName });

export const validAttachmentSchema = z.looseObject({ containerID: z.string(), ifname: z.string() });

export const netconfSchema = z
  .looseObject({
    cniVersion: z.string().check(z.regex(/^\d+\.\d+\.\d+$/, 'must be a semantic version like 1.1.0')),
    name: z.string().check(z.minLength(1)),
    type: z.string().check(z.minLength(1)),
    deviceID: z.optional(z.string().check(z.regex(PCI_ADDR_RE, 'must be a PCI address like 0000:81:10.2'))),
    vlan: z.optional(int(0, 4094)),
    vlanQoS: z.optional(int(0, 7)),
    vlanProto: z.optional(
      z.pipe(
        z.string(),
        z.transform((s) => s.toLowerCase()),
      ).check(z.refine((s) => s === '802.1q' || s === '802.1ad', 'must be "802.1q" or "802.1ad"')),
    ),
    mac: z.optional(mac),
    spoofchk: z.optional(onOff),
    trust: z.optional(onOff),
    link_state: z.optional(z.enum(['auto', 'enable', 'disable'])),
    min_tx_rate: z.optional(int(0, 1_000_000)),
    max_tx_rate: z.optional(int(0, 1_000_000)),
    mtu: z.optional(int(68, 65535)),
    logLevel: z.optional(z.enum(LOG_LEVELS)),
    /** "" turns logging off. */
    logFile: z.optional(z.union([z.literal(''), normalPath])),
    sysfsRoot: z.optional(normalPath),
    stateDir: z.optional(normalPath),
    /** Where DEL leaves claim-release notes for the node agent (the one dir the two share). */
    releaseQueueDir: z.optional(normalPath),
    agentSocket: z.optional(absPath),
    /** ARP probe / IPv6 DAD before ADD finishes (default true); a registration's network setting wins. */
    duplicateDetection: z.optional(z.boolean()),
    ipam: z.optional(ipamSchema),
    runtimeConfig: z.optional(z.looseObject({ mac: z.optional(mac) })),
    'cni.dev/valid-attachments': z.optional(z.array(validAttachmentSchema)),
  })
  .check(
    z.superRefine((c, ctx) => {
      if (c.vlanQoS !== undefined && c.vlanQoS !== 0 && !c.vlan) {
        ctx.issues.push({ code: 'custom', input: c.vlanQoS, path: ['vlanQoS'], message: 'requires a non-zero "vlan"' });
      }
      if (c.vlanProto !== undefined && c.vlanProto !== '802.1q' && !c.vlan) {
        ctx.issues.push({ code: 'custom', input: c.vlanProto, path: ['vlanProto'], message: 'requires a non-zero "vlan"' });
      }
      if (c.min_tx_rate !== undefined && c.max_tx_rate !== undefined && c.max_tx_rate !== 0 && c.min_tx_rate > c.max_tx_rate) {
        ctx.issues.push({
          code: 'custom',
          input: c.min_tx_rate,
          path: ['min_tx_rate'],
          message: `must not exceed max_tx_rate (${c.max_tx_rate})`,
        });
      }
    }),
  );

export type NetConf = z.infer<typeof netconfSchema>;
