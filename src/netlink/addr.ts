/** Small, allocation-light parsers and formatters for IP and MAC addresses (no node:net). */
import { CniCode, UnderlayError } from '../errors';

export type Family = 4 | 6;

export interface ParsedIp {
  family: Family;
  bytes: Buffer;
}

export interface ParsedCidr extends ParsedIp {
  prefix: number;
}

function bad(what: string, value: string): UnderlayError {
  return new UnderlayError(CniCode.InvalidNetworkConfig, `invalid ${what} ${JSON.stringify(value)}`);
}

function parseV4Into(s: string, out: Buffer, off: number): boolean {
  const parts = s.split('.');
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const p = parts[i] as string;
    if (!/^\d{1,3}$/.test(p)) return false;
    const n = Number(p);
    if (n > 255 || (p.length > 1 && p[0] === '0')) return false;
    out[off + i] = n;
  }
  return true;
}

function parseV6(input: string): Buffer | null {
  let s = input;
  // An embedded IPv4 tail (::ffff:1.2.3.4) is rewritten as two hex groups.
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) >= 0) {
    const v4 = Buffer.alloc(4);
    if (!parseV4Into(s.slice(lastColon + 1), v4, 0)) return null;
    s = `${s.slice(0, lastColon + 1)}${v4.readUInt16BE(0).toString(16)}:${v4.readUInt16BE(2).toString(16)}`;
  }
  const dbl = s.indexOf('::');
  if (dbl >= 0 && dbl !== s.lastIndexOf('::')) return null;
  const groups = (part: string): string[] | null => {
    if (part === '') return [];
    const g = part.split(':');
    return g.every((x) => /^[0-9a-fA-F]{1,4}$/.test(x)) ? g : null;
  };
  const head = groups(dbl >= 0 ? s.slice(0, dbl) : s);
  const tail = groups(dbl >= 0 ? s.slice(dbl + 2) : '');
  if (!head || !tail) return null;
  const n = head.length + tail.length;
  if (dbl < 0 ? n !== 8 : n > 7) return null;
  const out = Buffer.alloc(16);
  head.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  tail.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), 16 - (tail.length - i) * 2));
  return out;
}

export function parseIp(s: string): ParsedIp {
  if (s.includes(':')) {
    const bytes = parseV6(s);
    if (!bytes) throw bad('IPv6 address', s);
    return { family: 6, bytes };
  }
  const bytes = Buffer.alloc(4);
  if (!parseV4Into(s, bytes, 0)) throw bad('IPv4 address', s);
  return { family: 4, bytes };
}

export function parseCidr(s: string): ParsedCidr {
  const slash = s.indexOf('/');
  if (slash < 0) throw bad('CIDR (address/prefix)', s);
  const ip = parseIp(s.slice(0, slash));
  const p = s.slice(slash + 1);
  const prefix = Number(p);
  if (!/^\d{1,3}$/.test(p) || prefix > (ip.family === 4 ? 32 : 128)) throw bad('CIDR prefix length', s);
  return { ...ip, prefix };
}

export function formatIp(b: Buffer | Uint8Array, off = 0, len = b.length - off): string {
  if (len === 4) return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
  if (len !== 16) throw new UnderlayError(CniCode.Internal, `cannot format a ${len}-byte address`);
  const w: number[] = [];
  for (let i = 0; i < 16; i += 2) w.push(((b[off + i] as number) << 8) | (b[off + i + 1] as number));
  // RFC 5952: compress the longest run (>= 2) of zero words, the first one on ties.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(w);
  return `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

const MAC_RE = /^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$/;

export function parseMac(s: string): Buffer {
  if (!MAC_RE.test(s)) throw bad('MAC address', s);
  return Buffer.from(s.replace(/:/g, ''), 'hex');
}

export function formatMac(b: Buffer | Uint8Array, off = 0, len = 6): string {
  let s = '';
  for (let i = 0; i < len; i++) {
    const x = b[off + i] as number;
    s += (i ? ':' : '') + (x < 16 ? '0' : '') + x.toString(16);
  }
  return s;
}
