/**
 * The device plugin's pools config: which VFs form which extended resource. Read from a file
 * mounted from a ConfigMap (JSON or YAML). Each pool is validated on its own so one bad pool does
 * not take the others down; see node/device-plugin/config.ts for how errors are reported.
 */
import { z } from 'zod';

const PCI_ADDR = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
const HEX_ID = /^[0-9a-f]{4}$/;
// An extended resource name is <prefix>/<name>; the prefix is a DNS subdomain, the name a
// qualified-name part (kubelet rejects anything else at registration).
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const NAME_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/** A parsed "<base>#<ranges>" selector: base is a PF netdev name or PF PCI address. */
export interface VfRangeSelector {
  base: string;
  /** Inclusive VF-index ranges; null selects every VF of the PF. */
  ranges: Array<[number, number]> | null;
}

/** Parse "ens1f0", "ens1f0#0-3,7" (VF indexes 0..3 and 7). Returns an error text on bad syntax. */
export function parseVfRangeSelector(text: string): VfRangeSelector | string {
  const hash = text.indexOf('#');
  if (hash < 0) return { base: text, ranges: null };
  const base = text.slice(0, hash);
  const spec = text.slice(hash + 1);
  if (base === '') return `"${text}": nothing before "#"`;
  if (spec === '') return `"${text}": no VF range after "#"`;
  const ranges: Array<[number, number]> = [];
  for (const part of spec.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) return `"${text}": "${part}" is not a VF index or range (expected N or N-M)`;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) return `"${text}": range "${part}" ends before it starts`;
    if (hi > 4095) return `"${text}": VF index ${hi} is out of range (max 4095)`;
    ranges.push([lo, hi]);
  }
  return { base, ranges };
}

export const vfRangeSelector = (what: 'pfName' | 'rootDevice') =>
  z.string().transform((s, ctx): VfRangeSelector => {
    const parsed = parseVfRangeSelector(s);
    if (typeof parsed === 'string') {
      ctx.addIssue({ code: 'custom', message: parsed });
      return z.NEVER;
    }
    if (what === 'pfName' && !/^[^\s/]{1,15}$/.test(parsed.base)) {
      ctx.addIssue({ code: 'custom', message: `"${parsed.base}" is not a netdev name (1-15 chars, no "/" or spaces)` });
      return z.NEVER;
    }
    if (what === 'rootDevice' && !PCI_ADDR.test(parsed.base)) {
      ctx.addIssue({ code: 'custom', message: `"${parsed.base}" is not a PCI address (dddd:bb:dd.f, lower-case hex)` });
      return z.NEVER;
    }
    return parsed;
  });

export const hexIds = z
  .array(z.string().transform((s) => s.toLowerCase().replace(/^0x/, '')).pipe(z.string().regex(HEX_ID, 'expected a 4-digit hex PCI id like "8086"')))
  .min(1, 'must list at least one value when present');

export const PoolSelectorsSchema = z
  .object({
    vendors: hexIds.optional(),
    devices: hexIds.optional(),
    drivers: z.array(z.string().min(1)).min(1, 'must list at least one value when present').optional(),
    pfNames: z.array(vfRangeSelector('pfName')).min(1, 'must list at least one value when present').optional(),
    rootDevices: z.array(vfRangeSelector('rootDevice')).min(1, 'must list at least one value when present').optional(),
    linkTypes: z.array(z.enum(['ether', 'infiniband'])).min(1, 'must list at least one value when present').optional(),
    numaNodes: z.array(z.number().int().min(0)).min(1, 'must list at least one value when present').optional(),
  })
  .strict();
export type PoolSelectors = z.infer<typeof PoolSelectorsSchema>;

export const PoolSchema = z
  .object({
    resourceName: z.string().max(63).regex(NAME_PART, 'letters, digits, "-", "_", "." only, starting and ending alphanumeric'),
    resourcePrefix: z.string().max(253).regex(DNS_SUBDOMAIN, 'must be a lower-case DNS subdomain').default('sriov-underlay.io'),
    deviceType: z.enum(['netdevice', 'vfio']).default('netdevice'),
    placement: z.enum(['spread', 'pack']).default('spread'),
    selectors: PoolSelectorsSchema.default({}),
  })
  .strict();
export type Pool = z.infer<typeof PoolSchema>;
export type PoolInput = z.input<typeof PoolSchema>;

/** The file's envelope. Pools are checked one by one afterwards, so here they are just objects. */
export const PoolsConfigSchema = z
  .object({
    resourceList: z.array(z.unknown()),
  })
  .strict();
