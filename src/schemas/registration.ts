/**
 * A pod network Registration: one data key of a ConfigMap in the pod's namespace labelled
 * `sriov-underlay.io/kind=registration`. The key is a pod name (or a StatefulSet name, see `ips`);
 * the value is YAML. Exactly one way of choosing the address:
 *
 *   ip: 10.100.0.11                    # fixed; or [10.100.0.11, fd00:100::11] for dual stack
 *   ips: [10.100.0.21, 10.100.0.22]    # StatefulSet: key "mysql" gives mysql-0 the first, ...
 *   ips6: [fd00:100::21, fd00:100::22] # ...and the IPv6 list, same order, for dual stack
 *   pool: vlan100                      # random from the network's ranges at pod creation
 *   reserve: true                      # with pool: chosen and claimed when the registration appears
 *
 * plus `network` (required unless `pool` names it), and optional `mac`, `qos`, `routes`, `mtu`,
 * `vlan` (must equal the network's; a guard for ops) and `replicas` (StatefulSet size hint).
 * Rules needing the network (IP inside the subnet) are checked by the registration index.
 */
import * as z from 'zod/mini';
import { parseIp } from '../ipam/cidr';
import { MAX_ADDRESSES_PER_ENTRY, MAX_ROUTES } from '../registrations/limits';
import { int, ipAddr, ipv4Addr, ipv6Addr, mtu, networkName, qos, route, unicastMac, vlanId } from './net-fields';

export const REGISTRATION_LABEL = { key: 'sriov-underlay.io/kind', value: 'registration' } as const;

type Issue = { code: 'custom'; input: unknown; path: (string | number)[]; message: string };

export const registrationSchema = z
  .strictObject({
    network: z.optional(networkName),
    ip: z.optional(z.union([ipAddr, z.array(ipAddr).check(z.minLength(1), z.maxLength(2))])),
    ips: z.optional(z.array(ipv4Addr).check(z.minLength(1), z.maxLength(MAX_ADDRESSES_PER_ENTRY))),
    ips6: z.optional(z.array(ipv6Addr).check(z.minLength(1), z.maxLength(MAX_ADDRESSES_PER_ENTRY))),
    pool: z.optional(networkName),
    reserve: z.optional(z.boolean()),
    mac: z.optional(unicastMac),
    qos: z.optional(qos),
    routes: z.optional(z.array(route).check(z.maxLength(MAX_ROUTES))),
    mtu: z.optional(mtu),
    vlan: z.optional(vlanId),
    replicas: z.optional(int(0, 100_000)),
  })
  .check(z.superRefine((r, ctx) => {
    ctx.issues.push(...crossFieldIssues(r));
  }));

export type RegistrationSpec = z.infer<typeof registrationSchema>;

function crossFieldIssues(r: RegistrationSpec): Issue[] {
  const issues: Issue[] = [];
  const push = (path: (string | number)[], input: unknown, message: string) => issues.push({ code: 'custom', input, path, message });
  const sts = r.ips !== undefined || r.ips6 !== undefined;
  const ways = [r.ip !== undefined && 'ip', sts && 'ips', r.pool !== undefined && 'pool'].filter(Boolean);
  if (ways.length === 0) push(['ip'], undefined, 'one of "ip", "ips"/"ips6" or "pool" is required');
  if (ways.length > 1) push([ways[1] as string], undefined, `cannot be combined with "${ways[0] as string}"`);
  if (r.network === undefined && r.pool === undefined) push(['network'], undefined, 'is required (or name the network with "pool")');
  if (r.network !== undefined && r.pool !== undefined && r.network !== r.pool) {
    push(['pool'], r.pool, `names network "${r.pool}" but "network" is "${r.network}"`);
  }
  if (r.reserve !== undefined && r.pool === undefined) push(['reserve'], r.reserve, 'only applies with "pool"');
  if (Array.isArray(r.ip) && r.ip.length === 2) {
    const [a, b] = r.ip.map((s) => parseIp(s).family);
    if (a === b) push(['ip', 1], r.ip[1], `is IPv${b} like ip.0; a dual-stack "ip" lists one IPv4 and one IPv6 address`);
  }
  for (const field of ['ips', 'ips6'] as const) {
    const list = r[field];
    if (!list) continue;
    const seen = new Map<bigint, number>();
    list.forEach((s, i) => {
      const v = parseIp(s).value;
      const first = seen.get(v);
      if (first !== undefined) push([field, i], s, `repeats ${field}.${first}`);
      else seen.set(v, i);
    });
    if (r.replicas !== undefined && list.length < r.replicas) {
      push([field], list, `lists ${list.length} addresses but replicas is ${r.replicas}`);
    }
  }
  if (r.ips && r.ips6 && r.ips.length !== r.ips6.length) {
    push(['ips6'], r.ips6, `lists ${r.ips6.length} addresses but ips lists ${r.ips.length}; dual stack pairs them by ordinal`);
  }
  if (sts && r.mac !== undefined) push(['mac'], r.mac, 'cannot be shared by the pods of a StatefulSet "ips" entry');
  if (r.replicas !== undefined && !sts) push(['replicas'], r.replicas, 'only applies with "ips"/"ips6"');
  return issues;
}
