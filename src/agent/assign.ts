/**
 * Turning a resolved registration into claimed addresses at ADD: fixed IPs are claimed as named;
 * pool entries go through the pool allocator (src/ipam/pool-allocator.ts, via the agent's
 * IpamService), whose claims withClaimedIps turns into the settings handed to the CNI.
 */
import { formatIp, parseIp } from '../ipam/cidr';
import { claimIp, type ClaimDeps, type ClaimPod, type IPClaim } from '../ipam/claims';
import type { NetworkModel } from '../registrations/network-model';
import type { ResolvedSettings } from '../registrations/types';

export interface Attachment {
  pod: ClaimPod;
  node: string;
  containerID: string;
  interface: string;
  vf?: string;
}

/** Addresses without their prefix length, for claims. */
function bare(cidr: string): string {
  return cidr.slice(0, cidr.indexOf('/'));
}

export async function claimFixed(deps: ClaimDeps, s: ResolvedSettings, a: Attachment): Promise<IPClaim[]> {
  const done: IPClaim[] = [];
  for (const cidr of s.ips) {
    done.push(await claimIp(deps, { ...a, network: s.network, ip: bare(cidr), kind: 'fixed', source: s.source, settings: settingsRecord(s) }));
  }
  return done;
}

export function settingsRecord(s: ResolvedSettings): Record<string, unknown> {
  return JSON.parse(JSON.stringify(s)) as Record<string, unknown>;
}

/** The settings with the pool's addresses filled in (prefix from the network's subnet). */
export function withClaimedIps(s: ResolvedSettings, net: NetworkModel, claims: IPClaim[]): ResolvedSettings {
  const ips = claims.map((c) => {
    const ip = parseIp(c.spec.ip);
    return `${formatIp(ip.family, ip.value)}/${net.subnets[ip.family]!.prefix}`;
  });
  return { ...s, ips };
}
