/**
 * Field schemas shared by the Network and Registration schemas (and the agent protocol): addresses,
 * prefixes, routes, QoS, MAC. Kept apart so both objects spell and check a field the same way.
 */
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { tryParseCidr, tryParseIp, tryParseRange } from '../ipam/cidr';

z.config(en());

export const MAC_RE = /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/;
/** DNS-1123 label: network names end up in IPClaim object names. */
export const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export const int = (min: number, max: number) => z.int().check(z.gte(min), z.lte(max));

export const ipAddr = z.string().check(z.refine((s) => tryParseIp(s) !== null, 'must be an IPv4 or IPv6 address'));
export const ipv4Addr = z.string().check(z.refine((s) => tryParseIp(s)?.family === 4, 'must be an IPv4 address like 10.100.0.11'));
export const ipv6Addr = z.string().check(z.refine((s) => tryParseIp(s)?.family === 6, 'must be an IPv6 address like fd00:100::11'));
export const ipv4Cidr = z.string().check(z.refine((s) => tryParseCidr(s)?.family === 4, 'must be an IPv4 CIDR like 10.100.0.0/24'));
export const ipv6Cidr = z.string().check(z.refine((s) => tryParseCidr(s)?.family === 6, 'must be an IPv6 CIDR like fd00:100::/64'));
export const ipRange = z.string().check(
  z.refine((s) => tryParseRange(s) !== null, 'must be a range like 10.100.0.100-10.100.0.199, a CIDR or an address'),
);

export const mac = z.string().check(z.regex(MAC_RE, 'must be a MAC address like 02:00:00:aa:bb:cc'));
export const unicastMac = mac.check(
  z.refine((s) => (parseInt(s.slice(0, 2), 16) & 1) === 0, 'must be a unicast MAC (the first octet must be even)'),
);
export const networkName = z.string().check(z.regex(DNS_LABEL_RE, 'must be a DNS label: lowercase letters, digits and "-", at most 63'));

export const route = z.strictObject({
  dst: z.string().check(z.refine((s) => tryParseCidr(s) !== null, 'must be a CIDR like 10.200.0.0/16 or fd00:200::/64')),
  gw: z.optional(ipAddr),
});
export type Route = z.infer<typeof route>;

export const rateMbps = int(0, 1_000_000);
export const qos = z
  .strictObject({
    maxTxRateMbps: z.optional(rateMbps),
    minTxRateMbps: z.optional(rateMbps),
  })
  .check(
    z.superRefine((q, ctx) => {
      if (q.minTxRateMbps !== undefined && q.maxTxRateMbps && q.minTxRateMbps > q.maxTxRateMbps) {
        ctx.issues.push({
          code: 'custom',
          input: q.minTxRateMbps,
          path: ['minTxRateMbps'],
          message: `must not exceed maxTxRateMbps (${q.maxTxRateMbps})`,
        });
      }
    }),
  );
export type Qos = z.infer<typeof qos>;

export const mtu = int(68, 65535);
export const vlanId = int(0, 4094);
