/**
 * A validated Network with its prefixes parsed once, for the index, the pool allocator and the CLI.
 */
import { parseCidr, parseIp, parseRange, type Cidr, type Family, type IpRange } from '../ipam/cidr';
import { poolRanges, type NetworkSpec } from '../schemas/network';
import type { CmMeta } from './parse';

export interface NetworkModel {
  name: string;
  spec: NetworkSpec;
  subnets: Partial<Record<Family, Cidr>>;
  gateways: Partial<Record<Family, bigint>>;
  /** Addresses a pool may hand out (ranges minus exclude, network, broadcast, gateways). */
  pool: IpRange[];
  meta: CmMeta;
  /** Namespaces that may register on it; null: every namespace (the field is absent). */
  allowedNamespaces: ReadonlySet<string> | null;
  /** Device pools (extended resource names) whose VFs may carry it. */
  pools: readonly string[];
}

export function buildNetwork(name: string, spec: NetworkSpec, meta: CmMeta): NetworkModel {
  const subnets: Partial<Record<Family, Cidr>> = {};
  if (spec.subnet) subnets[4] = parseCidr(spec.subnet);
  if (spec.subnet6) subnets[6] = parseCidr(spec.subnet6);
  const gateways: Partial<Record<Family, bigint>> = {};
  if (spec.gateway) gateways[4] = parseIp(spec.gateway).value;
  if (spec.gateway6) gateways[6] = parseIp(spec.gateway6).value;
  const pool = spec.ranges
    ? poolRanges(subnets, spec.ranges.map(parseRange), (spec.exclude ?? []).map(parseRange), [spec.gateway, spec.gateway6])
    : [];
  const allowedNamespaces = spec.allowedNamespaces ? new Set(spec.allowedNamespaces) : null;
  return { name, spec, subnets, gateways, pool, meta, allowedNamespaces, pools: spec.pools ?? [spec.resourceName] };
}

/** Where a network is defined, for messages: `configmap sriov-underlay/networks key "vlan100"`. */
export function networkLabel(net: NetworkModel): string {
  return `configmap ${net.meta.namespace}/${net.meta.name} key "${net.name}"`;
}

/**
 * Why the VF at `vf`, in device pool `pool` (null: in none on this node), may not carry the
 * network, or null when it may.
 */
export function poolRefusal(net: NetworkModel, vf: string, pool: string | null): string | null {
  if (pool !== null && net.pools.includes(pool)) return null;
  const where = pool === null ? 'is in no device pool on this node' : `is in device pool "${pool}"`;
  const field = net.spec.pools ? 'pools' : 'resourceName';
  return `VF ${vf} ${where}, but network "${net.name}" may only be carried by ${net.pools.map((p) => `"${p}"`).join(', ')} (${networkLabel(net)} field "${field}")`;
}
