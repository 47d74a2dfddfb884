/**
 * A Network: one data key of a ConfigMap in the system namespace labelled
 * `sriov-underlay.io/kind=network`. The key is the network's name; the value is YAML:
 *
 *   vlan: 100
 *   subnet: 10.100.0.0/24        # IPv4, optional when subnet6 is given
 *   gateway: 10.100.0.1
 *   subnet6: fd00:100::/64       # IPv6, optional
 *   gateway6: fd00:100::1
 *   routes: [{dst: 10.200.0.0/16}]   # gw defaults to the gateway of the route's family
 *   mtu: 9000
 *   qos: {maxTxRateMbps: 1000}
 *   resourceName: sriov-underlay.io/vf-pool-a
 *   spoofchk: true
 *   trust: false
 *   ranges: [10.100.0.100-10.100.0.199]   # the pool, for `pool:` registrations
 *   exclude: [10.100.0.150]
 *   cooldownSeconds: 600
 *   duplicateDetection: true
 *   allowedNamespaces: [db, payments]     # who may register on it (absent: every namespace, see docs)
 *   pools: [sriov-underlay.io/vf-pool-a]  # device pools whose VFs may carry it (default: resourceName)
 *
 * Rules that need only this object are checked here; rules across objects (a registration's IP
 * in this subnet) are checked by the registration index.
 */
import * as z from 'zod/mini';
import {
  contains,
  formatIp,
  formatRange,
  parseCidr,
  parseIp,
  parseRange,
  rangesOverlap,
  reservedInSubnet,
  subtractRanges,
  totalSize,
  type Cidr,
  type Family,
} from '../ipam/cidr';
import { MAX_ALLOWED_NAMESPACES, MAX_POOLS, MAX_RANGES, MAX_ROUTES } from '../registrations/limits';
import { DNS_LABEL_RE, int, ipRange, ipv4Addr, ipv4Cidr, ipv6Addr, ipv6Cidr, mtu, qos, route, vlanId } from './net-fields';

export const NETWORK_LABEL = { key: 'sriov-underlay.io/kind', value: 'network' } as const;
export const SYSTEM_NAMESPACE = 'sriov-underlay';

const RESOURCE_NAME_RE = /^[a-zA-Z0-9][-a-zA-Z0-9_.]*\/[a-zA-Z0-9][-a-zA-Z0-9_.]*$/;
const resourceName = z.string().check(z.regex(RESOURCE_NAME_RE, 'must be an extended resource name like sriov-underlay.io/vf-pool-a'));
const namespaceName = z.string().check(z.regex(DNS_LABEL_RE, 'must be a namespace name (a DNS label)'));

type Issue = { code: 'custom'; input: unknown; path: (string | number)[]; message: string };

export const networkSchema = z
  .strictObject({
    /** Absent: the VF's VLAN is not managed by the registration (the netconf's applies). */
    vlan: z.optional(vlanId),
    vlanQoS: z.optional(int(0, 7)),
    vlanProto: z.optional(z.enum(['802.1q', '802.1ad'])),
    subnet: z.optional(ipv4Cidr),
    gateway: z.optional(ipv4Addr),
    subnet6: z.optional(ipv6Cidr),
    gateway6: z.optional(ipv6Addr),
    routes: z.optional(z.array(route).check(z.maxLength(MAX_ROUTES))),
    mtu: z.optional(mtu),
    qos: z.optional(qos),
    resourceName,
    spoofchk: z.optional(z.boolean()),
    trust: z.optional(z.boolean()),
    ranges: z.optional(z.array(ipRange).check(z.maxLength(MAX_RANGES))),
    exclude: z.optional(z.array(ipRange).check(z.maxLength(MAX_RANGES))),
    cooldownSeconds: z._default(int(0, 7 * 86400), 600),
    duplicateDetection: z._default(z.boolean(), true),
    /**
     * The namespaces whose registrations may use this network. Absent: every namespace (what a
     * network meant before the field existed; docs/registrations.md "Migration").
     */
    allowedNamespaces: z.optional(z.array(namespaceName).check(z.maxLength(MAX_ALLOWED_NAMESPACES))),
    /** The device pools (extended resource names) whose VFs may carry it. Absent: [resourceName]. */
    pools: z.optional(z.array(resourceName).check(z.minLength(1), z.maxLength(MAX_POOLS))),
  })
  .check(z.superRefine((n, ctx) => {
    ctx.issues.push(...crossFieldIssues(n));
  }));

export type NetworkSpec = z.infer<typeof networkSchema>;

function crossFieldIssues(n: {
  subnet?: string | undefined;
  gateway?: string | undefined;
  subnet6?: string | undefined;
  gateway6?: string | undefined;
  routes?: { dst: string; gw?: string | undefined }[] | undefined;
  mtu?: number | undefined;
  vlan?: number | undefined;
  vlanQoS?: number | undefined;
  ranges?: string[] | undefined;
  exclude?: string[] | undefined;
  resourceName: string;
  pools?: string[] | undefined;
}): Issue[] {
  const issues: Issue[] = [];
  const push = (path: (string | number)[], input: unknown, message: string) => issues.push({ code: 'custom', input, path, message });
  if (!n.subnet && !n.subnet6) push(['subnet'], undefined, 'a network needs "subnet" (IPv4), "subnet6" (IPv6) or both');
  const subnets: Partial<Record<Family, Cidr>> = {};
  if (n.subnet) subnets[4] = parseCidr(n.subnet);
  if (n.subnet6) subnets[6] = parseCidr(n.subnet6);
  for (const [field, subnetField, text, fam] of [
    ['gateway', 'subnet', n.gateway, 4],
    ['gateway6', 'subnet6', n.gateway6, 6],
  ] as const) {
    if (text === undefined) continue;
    const s = subnets[fam];
    if (!s) {
      push([field], text, `needs "${subnetField}"`);
      continue;
    }
    const why = hostAddressProblem(s, text);
    if (why) push([field], text, why);
  }
  n.routes?.forEach((r, i) => {
    const fam = parseCidr(r.dst).family;
    const s = subnets[fam];
    if (!s) return push(['routes', i, 'dst'], r.dst, `is IPv${fam} but the network has no IPv${fam} subnet`);
    if (r.gw !== undefined) {
      const gw = parseIp(r.gw);
      if (gw.family !== fam) return push(['routes', i, 'gw'], r.gw, `is not IPv${fam} like its dst`);
      if (!contains(s, gw)) return push(['routes', i, 'gw'], r.gw, `is not inside ${fam === 4 ? 'subnet' : 'subnet6'} (an on-link next hop is required)`);
    } else if (!(fam === 4 ? n.gateway : n.gateway6)) {
      push(['routes', i, 'gw'], undefined, `is required when the network has no ${fam === 4 ? 'gateway' : 'gateway6'}`);
    }
  });
  if (n.mtu !== undefined && n.subnet6 && n.mtu < 1280) push(['mtu'], n.mtu, 'must be at least 1280 on a network with IPv6');
  if (n.vlanQoS && !n.vlan) push(['vlanQoS'], n.vlanQoS, 'requires a non-zero "vlan"');
  if (n.exclude && !n.ranges) push(['exclude'], n.exclude, 'needs "ranges" to exclude from');
  // resourceName is what kubelet's PodResources is asked about: it must be one of the pools.
  if (n.pools && !n.pools.includes(n.resourceName)) push(['pools'], n.pools, `must include resourceName "${n.resourceName}"`);
  if (n.ranges) issues.push(...poolIssues(subnets, n.ranges, n.exclude ?? [], [n.gateway, n.gateway6]));
  return issues;
}

/** Why an address cannot be a host's in this subnet, or null when it can. */
export function hostAddressProblem(subnet: Cidr, text: string): string | null {
  const ip = parseIp(text);
  const name = `${formatIp(subnet.family, subnet.network)}/${subnet.prefix}`;
  if (!contains(subnet, ip)) return `${text} is not inside the subnet ${name}`;
  if (reservedInSubnet(subnet).includes(ip.value)) {
    return ip.value === subnet.network ? `${text} is the network address of ${name}` : `${text} is the broadcast address of ${name}`;
  }
  return null;
}

function poolIssues(subnets: Partial<Record<Family, Cidr>>, ranges: string[], exclude: string[], gateways: (string | undefined)[]): Issue[] {
  const issues: Issue[] = [];
  const push = (path: (string | number)[], input: unknown, message: string) => issues.push({ code: 'custom', input, path, message });
  const parsed = ranges.map((t) => parseRange(t));
  parsed.forEach((r, i) => {
    const s = subnets[r.family];
    if (!s) return push(['ranges', i], ranges[i], `is IPv${r.family} but the network has no IPv${r.family} subnet`);
    if (r.start < s.network || r.end > s.last) push(['ranges', i], ranges[i], `is not inside the subnet ${formatIp(s.family, s.network)}/${s.prefix}`);
    for (let j = 0; j < i; j++) {
      if (rangesOverlap(parsed[j]!, r)) push(['ranges', i], ranges[i], `overlaps ranges.${j} (${formatRange(parsed[j]!)})`);
    }
  });
  const ex = exclude.map((t) => parseRange(t));
  ex.forEach((x, i) => {
    if (!parsed.some((r) => rangesOverlap(r, x))) push(['exclude', i], exclude[i], 'excludes nothing: it is outside every range');
  });
  if (issues.length) return issues;
  const usable = poolRanges(subnets, parsed, ex, gateways);
  for (const fam of [4, 6] as const) {
    if (parsed.some((r) => r.family === fam) && totalSize(usable.filter((r) => r.family === fam)) === 0n) {
      push(['exclude'], exclude, `leaves no usable IPv${fam} address in "ranges"`);
    }
  }
  return issues;
}

/** The addresses a pool may hand out: ranges minus exclude, network, broadcast and gateways. */
export function poolRanges(
  subnets: Partial<Record<Family, Cidr>>,
  ranges: ReturnType<typeof parseRange>[],
  exclude: ReturnType<typeof parseRange>[],
  gateways: (string | undefined)[],
) {
  const never = [...exclude];
  for (const s of Object.values(subnets)) {
    for (const v of reservedInSubnet(s)) never.push({ family: s.family, start: v, end: v });
  }
  for (const g of gateways) {
    if (!g) continue;
    const ip = parseIp(g);
    never.push({ family: ip.family, start: ip.value, end: ip.value });
  }
  return subtractRanges(ranges, never);
}
