/**
 * IPv4 and IPv6 addresses, prefixes and ranges as BigInt, so one set of functions serves both
 * families. Pure and dependency-free: the schemas, the registration index, the pools and the CLI
 * all use it. Text output is canonical (RFC 5952 for IPv6) so an address has one spelling and can
 * be used in object names and map keys. Text is parsed and printed by the netlink layer's address
 * helpers (the project's one IP parser); this module adds the arithmetic.
 */
import { formatIp as formatAddress, parseIp as parseAddress, type Family, type ParsedIp } from '../netlink/addr';

export type { Family };

export interface Ip {
  family: Family;
  value: bigint;
}

export interface Cidr {
  family: Family;
  prefix: number;
  /** The address as written (may have host bits set, as in `10.0.0.5/24`). */
  addr: bigint;
  network: bigint;
  /** The last address of the prefix (the IPv4 broadcast address). */
  last: bigint;
}

/** An inclusive address range within one family. */
export interface IpRange {
  family: Family;
  start: bigint;
  end: bigint;
}

export const BITS: Record<Family, number> = { 4: 32, 6: 128 };

export class AddressError extends Error {}

/** The one address parser is the netlink layer's (bytes); IPAM works on the same value as a bigint. */
function toBigInt(bytes: Buffer): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function toBytes(family: Family, value: bigint): Buffer {
  const out = Buffer.alloc(family === 4 ? 4 : 16);
  for (let i = out.length - 1, v = value; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

/** Parse an address; null when it is not one. */
export function tryParseIp(s: string): Ip | null {
  let parsed: ParsedIp;
  try {
    parsed = parseAddress(s);
  } catch {
    return null;
  }
  return { family: parsed.family, value: toBigInt(parsed.bytes) };
}

export function parseIp(s: string): Ip {
  const ip = tryParseIp(s);
  if (!ip) throw new AddressError(`"${s}" is not an IPv4 or IPv6 address`);
  return ip;
}

export function formatIp(family: Family, value: bigint): string {
  return formatAddress(toBytes(family, value));
}

export function canonicalIp(s: string): string {
  const ip = parseIp(s);
  return formatIp(ip.family, ip.value);
}

function mask(family: Family, prefix: number): bigint {
  const bits = BigInt(BITS[family]);
  const all = (1n << bits) - 1n;
  return (all << (bits - BigInt(prefix))) & all;
}

export function tryParseCidr(s: string): Cidr | null {
  const slash = s.indexOf('/');
  if (slash === -1) return null;
  const ip = tryParseIp(s.slice(0, slash));
  const p = s.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(p)) return null;
  const prefix = Number(p);
  if (prefix > BITS[ip.family]) return null;
  const m = mask(ip.family, prefix);
  const network = ip.value & m;
  const last = network | (~m & ((1n << BigInt(BITS[ip.family])) - 1n));
  return { family: ip.family, prefix, addr: ip.value, network, last };
}

export function parseCidr(s: string): Cidr {
  const c = tryParseCidr(s);
  if (!c) throw new AddressError(`"${s}" is not a CIDR like 10.0.0.0/24 or fd00::/64`);
  return c;
}

/** `10.0.0.0/24` for the prefix itself (host bits cleared). */
export function formatPrefix(c: Cidr): string {
  return `${formatIp(c.family, c.network)}/${c.prefix}`;
}

/** `10.0.0.5/24`: an address with the prefix length of its subnet, as an interface address. */
export function withPrefix(ip: Ip, subnet: Cidr): string {
  return `${formatIp(ip.family, ip.value)}/${subnet.prefix}`;
}

export function contains(c: Cidr, ip: Ip): boolean {
  return c.family === ip.family && ip.value >= c.network && ip.value <= c.last;
}

/** Addresses that are never a host's: the network address and, for IPv4, the broadcast. */
export function reservedInSubnet(c: Cidr): bigint[] {
  const hostBits = BITS[c.family] - c.prefix;
  // /31 and /32 (RFC 3021) and /127, /128 have no network or broadcast address to avoid.
  if (hostBits <= 1) return [];
  // IPv6 has no broadcast; its all-zeros host id is the subnet-router anycast address.
  return c.family === 4 ? [c.network, c.last] : [c.network];
}

export function rangeSize(r: IpRange): bigint {
  return r.end >= r.start ? r.end - r.start + 1n : 0n;
}

export function cidrRange(c: Cidr): IpRange {
  return { family: c.family, start: c.network, end: c.last };
}

/**
 * A range written as `a-b` (inclusive), a CIDR, or a single address.
 * Null when the text is none of those or `b` precedes `a`.
 */
export function tryParseRange(s: string): IpRange | null {
  const dash = s.indexOf('-');
  if (dash !== -1) {
    const a = tryParseIp(s.slice(0, dash).trim());
    const b = tryParseIp(s.slice(dash + 1).trim());
    if (!a || !b || a.family !== b.family || b.value < a.value) return null;
    return { family: a.family, start: a.value, end: b.value };
  }
  if (s.includes('/')) {
    const c = tryParseCidr(s);
    return c ? cidrRange(c) : null;
  }
  const ip = tryParseIp(s);
  return ip ? { family: ip.family, start: ip.value, end: ip.value } : null;
}

export function parseRange(s: string): IpRange {
  const r = tryParseRange(s);
  if (!r) throw new AddressError(`"${s}" is not a range like 10.0.0.10-10.0.0.50, a CIDR or an address`);
  return r;
}

export function formatRange(r: IpRange): string {
  return r.start === r.end ? formatIp(r.family, r.start) : `${formatIp(r.family, r.start)}-${formatIp(r.family, r.end)}`;
}

export function rangesOverlap(a: IpRange, b: IpRange): boolean {
  return a.family === b.family && a.start <= b.end && b.start <= a.end;
}

export function rangeContains(r: IpRange, ip: Ip): boolean {
  return r.family === ip.family && ip.value >= r.start && ip.value <= r.end;
}

/** Sort and merge overlapping or adjacent ranges of each family. */
export function normalizeRanges(ranges: readonly IpRange[]): IpRange[] {
  const sorted = [...ranges].sort((a, b) => a.family - b.family || (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: IpRange[] = [];
  for (const r of sorted) {
    if (r.end < r.start) continue;
    const prev = out[out.length - 1];
    if (prev && prev.family === r.family && r.start <= prev.end + 1n) {
      if (r.end > prev.end) prev.end = r.end;
    } else {
      out.push({ ...r });
    }
  }
  return out;
}

/** `ranges` minus every address in `excluded`, normalized. */
export function subtractRanges(ranges: readonly IpRange[], excluded: readonly IpRange[]): IpRange[] {
  let cur = normalizeRanges(ranges);
  for (const x of normalizeRanges(excluded)) {
    const next: IpRange[] = [];
    for (const r of cur) {
      if (!rangesOverlap(r, x)) {
        next.push(r);
        continue;
      }
      if (r.start < x.start) next.push({ family: r.family, start: r.start, end: x.start - 1n });
      if (r.end > x.end) next.push({ family: r.family, start: x.end + 1n, end: r.end });
    }
    cur = next;
  }
  return cur;
}

/** Every address of the ranges in order. A generator: a /64 is never materialized. */
export function* iterateRanges(ranges: readonly IpRange[]): Generator<Ip> {
  for (const r of ranges) {
    for (let v = r.start; v <= r.end; v++) yield { family: r.family, value: v };
  }
}

/** The n-th address (0-based) across the ranges, or null past the end. O(number of ranges). */
export function nthInRanges(ranges: readonly IpRange[], n: bigint): Ip | null {
  let left = n;
  for (const r of ranges) {
    const size = rangeSize(r);
    if (left < size) return { family: r.family, value: r.start + left };
    left -= size;
  }
  return null;
}

export function totalSize(ranges: readonly IpRange[]): bigint {
  return ranges.reduce((s, r) => s + rangeSize(r), 0n);
}
