import { isIP } from 'node:net';
import * as fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatIp, formatMac, parseCidr, parseIp, parseMac } from '../../../src/netlink/addr';

describe('IP parsing and formatting', () => {
  it('round-trips random IPv6 addresses and agrees with node:net on validity', () => {
    fc.assert(
      fc.property(fc.ipV6(), (s) => {
        const p = parseIp(s);
        expect(p.family).toBe(6);
        const again = formatIp(p.bytes);
        expect(isIP(again)).toBe(6);
        expect(parseIp(again).bytes.equals(p.bytes)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips random IPv4 addresses exactly', () => {
    fc.assert(
      fc.property(fc.ipV4(), (s) => {
        expect(formatIp(parseIp(s).bytes)).toBe(s);
      }),
      { numRuns: 500 },
    );
  });

  it('formats IPv6 per RFC 5952', () => {
    expect(formatIp(parseIp('2001:0db8:0000:0000:0000:0000:0000:0001').bytes)).toBe('2001:db8::1');
    expect(formatIp(parseIp('2001:db8:0:1:0:0:0:1').bytes)).toBe('2001:db8:0:1::1');
    expect(formatIp(parseIp('::').bytes)).toBe('::');
    expect(formatIp(parseIp('::ffff:192.0.2.1').bytes)).toBe('::ffff:c000:201');
  });

  it('rejects malformed input with an error naming the value', () => {
    for (const bad of ['1.2.3', '1.2.3.256', '01.2.3.4', '1::2::3', '1:2:3:4:5:6:7:8:9', 'g::1', '', 'fe80::1%eth0']) {
      expect(() => parseIp(bad)).toThrow(JSON.stringify(bad));
    }
    for (const bad of ['10.0.0.1', '10.0.0.1/33', '::1/129', '10.0.0.1/a']) expect(() => parseCidr(bad)).toThrow();
    for (const bad of ['02:00:00:00:00', '02-00-00-00-00-01', 'zz:00:00:00:00:01']) expect(() => parseMac(bad)).toThrow();
  });

  it('MAC round trip', () => {
    expect(formatMac(parseMac('0A:1b:2C:3d:4E:5f'))).toBe('0a:1b:2c:3d:4e:5f');
  });
});
