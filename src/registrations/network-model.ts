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
  return { name, spec, subnets, gateways, pool, meta };
}
