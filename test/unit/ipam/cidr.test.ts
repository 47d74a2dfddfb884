import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as net from 'node:net';
import {
  canonicalIp,
  contains,
  formatIp,
  formatPrefix,
  formatRange,
  iterateRanges,
  normalizeRanges,
  nthInRanges,
  parseCidr,
  parseIp,
  parseRange,
  rangeContains,
  reservedInSubnet,
  subtractRanges,
  totalSize,
  tryParseCidr,
  tryParseIp,
  tryParseRange,
  type IpRange,
} from '../../../src/ipam/cidr';

const v6Value = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n });
const v4Value = fc.bigInt({ min: 0n, max: (1n << 32n) - 1n });

describe('addresses', () => {
  it('parses and formats IPv4', () => {
    expect(parseIp('10.100.0.11')).toEqual({ family: 4, value: 0x0a64000bn });
    expect(formatIp(4, 0x0a64000bn)).toBe('10.100.0.11');
  });

  it('rejects malformed IPv4 that the kernel would not take', () => {
    for (const s of ['10.0.0', '10.0.0.256', '010.0.0.1', '10.0.0.1.', '1.2.3.4/24', ' 1.2.3.4', '']) {
      expect(tryParseIp(s), s).toBeNull();
    }
  });

  it('parses IPv6 forms: compressed, full, embedded IPv4', () => {
    expect(canonicalIp('fd00:0100:0000:0000:0000:0000:0000:0011')).toBe('fd00:100::11');
    expect(canonicalIp('::')).toBe('::');
    expect(canonicalIp('::1')).toBe('::1');
    expect(canonicalIp('fe80::')).toBe('fe80::');
    expect(parseIp('::ffff:10.0.0.1').value).toBe((0xffffn << 32n) | 0x0a000001n);
    // RFC 5952: the longest zero run is compressed, the first one on a tie, a single zero never.
    expect(canonicalIp('1:0:0:2:0:0:0:3')).toBe('1:0:0:2::3');
    expect(canonicalIp('1:0:0:2:0:0:3:4')).toBe('1::2:0:0:3:4');
    expect(canonicalIp('1:2:3:4:5:6:0:8')).toBe('1:2:3:4:5:6:0:8');
    expect(canonicalIp('FD00::A')).toBe('fd00::a');
  });

  it('rejects malformed IPv6', () => {
    for (const s of ['1::2::3', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '12345::', 'fe80::1%eth0', 'g::1', ':1:2:3:4:5:6:7', '1:2:3:4:5:6:7::8']) {
      expect(tryParseIp(s), s).toBeNull();
    }
  });

  it('round-trips any IPv6 value, and the text agrees with the WHATWG URL serializer', () => {
    fc.assert(
      fc.property(v6Value, (v) => {
        const s = formatIp(6, v);
        expect(parseIp(s)).toEqual({ family: 6, value: v });
        expect(net.isIPv6(s)).toBe(true);
        expect(new URL(`http://[${s}]/`).hostname).toBe(`[${s}]`);
      }),
    );
  });

  it('round-trips any IPv4 value, and node agrees it is an address', () => {
    fc.assert(
      fc.property(v4Value, (v) => {
        const s = formatIp(4, v);
        expect(net.isIPv4(s)).toBe(true);
        expect(parseIp(s)).toEqual({ family: 4, value: v });
      }),
    );
  });

  it('agrees with node:net on which strings are addresses', () => {
    const chars = fc.constantFrom(...'0123456789abcdef:.'.split(''));
    fc.assert(
      fc.property(fc.string({ unit: chars, maxLength: 20 }), (s) => {
        const mine = tryParseIp(s);
        const nodeSays = net.isIP(s);
        // node accepts the same set for these characters; leading zeros in IPv4 octets are
        // refused by both.
        expect(mine === null ? 0 : mine.family).toBe(nodeSays);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('CIDRs', () => {
  it('computes network and last address', () => {
    const c = parseCidr('10.100.0.77/24');
    expect(formatPrefix(c)).toBe('10.100.0.0/24');
    expect(formatIp(4, c.last)).toBe('10.100.0.255');
    expect(formatIp(4, c.addr)).toBe('10.100.0.77');
    const c6 = parseCidr('fd00:100::5/64');
    expect(formatPrefix(c6)).toBe('fd00:100::/64');
    expect(formatIp(6, c6.last)).toBe('fd00:100::ffff:ffff:ffff:ffff');
  });

  it('refuses a prefix too long for the family, or no prefix', () => {
    expect(tryParseCidr('10.0.0.0/33')).toBeNull();
    expect(tryParseCidr('fd00::/129')).toBeNull();
    expect(tryParseCidr('10.0.0.0')).toBeNull();
    expect(tryParseCidr('10.0.0.0/')).toBeNull();
    expect(tryParseCidr('10.0.0.0/2x')).toBeNull();
    expect(() => parseCidr('nope')).toThrow(/not a CIDR/);
  });

  it('contains exactly the addresses between network and last, of its family', () => {
    fc.assert(
      fc.property(v4Value, fc.integer({ min: 0, max: 32 }), v4Value, (base, prefix, probe) => {
        const c = parseCidr(`${formatIp(4, base)}/${prefix}`);
        const hostBits = 32n - BigInt(prefix);
        const inside = probe >> hostBits === base >> hostBits;
        expect(contains(c, { family: 4, value: probe })).toBe(inside);
        expect(contains(c, { family: 6, value: probe })).toBe(false);
      }),
    );
  });

  it('reserves network and broadcast in IPv4, the subnet-router anycast in IPv6, nothing in /31 and /32', () => {
    expect(reservedInSubnet(parseCidr('10.0.0.0/24')).map((v) => formatIp(4, v))).toEqual(['10.0.0.0', '10.0.0.255']);
    expect(reservedInSubnet(parseCidr('fd00::/64')).map((v) => formatIp(6, v))).toEqual(['fd00::']);
    expect(reservedInSubnet(parseCidr('10.0.0.0/31'))).toEqual([]);
    expect(reservedInSubnet(parseCidr('10.0.0.1/32'))).toEqual([]);
  });
});

describe('ranges', () => {
  it('parses a-b, CIDR and single-address forms', () => {
    expect(formatRange(parseRange('10.0.0.10-10.0.0.20'))).toBe('10.0.0.10-10.0.0.20');
    expect(formatRange(parseRange('10.0.0.8/30'))).toBe('10.0.0.8-10.0.0.11');
    expect(formatRange(parseRange('fd00::7'))).toBe('fd00::7');
    expect(tryParseRange('10.0.0.20-10.0.0.10')).toBeNull();
    expect(tryParseRange('10.0.0.1-fd00::1')).toBeNull();
  });

  it('nthInRanges walks the ranges in order', () => {
    const rs = [parseRange('10.0.0.1-10.0.0.3'), parseRange('10.0.0.10-10.0.0.11')];
    expect([0n, 2n, 3n, 4n].map((n) => formatIp(4, nthInRanges(rs, n)!.value))).toEqual([
      '10.0.0.1',
      '10.0.0.3',
      '10.0.0.10',
      '10.0.0.11',
    ]);
    expect(nthInRanges(rs, 5n)).toBeNull();
    expect(totalSize(rs)).toBe(5n);
  });

  it('iterates a huge IPv6 range lazily', () => {
    const it6 = iterateRanges([parseRange('fd00::/64')]);
    const first = [it6.next().value, it6.next().value].map((ip) => formatIp(6, ip!.value));
    expect(first).toEqual(['fd00::', 'fd00::1']);
  });

  // Small ranges over a small universe so the brute-force model stays cheap.
  const smallRange = fc
    .tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 10 }))
    .map(([s, len]): IpRange => ({ family: 4, start: BigInt(s), end: BigInt(s + len) }));

  it('subtractRanges keeps exactly the addresses in ranges and not in exclusions', () => {
    fc.assert(
      fc.property(fc.array(smallRange, { maxLength: 5 }), fc.array(smallRange, { maxLength: 5 }), (rs, xs) => {
        const out = subtractRanges(rs, xs);
        for (let v = 0n; v <= 72n; v++) {
          const ip = { family: 4 as const, value: v };
          const want = rs.some((r) => rangeContains(r, ip)) && !xs.some((x) => rangeContains(x, ip));
          expect(out.some((r) => rangeContains(r, ip))).toBe(want);
        }
        // normalized: sorted, disjoint and not adjacent
        for (let i = 1; i < out.length; i++) expect(out[i]!.start > out[i - 1]!.end + 1n).toBe(true);
      }),
    );
  });

  it('normalizeRanges keeps families apart', () => {
    const out = normalizeRanges([
      { family: 6, start: 1n, end: 5n },
      { family: 4, start: 3n, end: 9n },
      { family: 4, start: 1n, end: 2n },
    ]);
    expect(out).toEqual([
      { family: 4, start: 1n, end: 9n },
      { family: 6, start: 1n, end: 5n },
    ]);
  });
});
