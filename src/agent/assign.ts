/**
 * Turning a resolved registration into claimed addresses at ADD: fixed IPs are claimed as named;
 * pool entries go through the pool allocator (src/ipam/pool-allocator.ts, via the agent's
 * IpamService), whose claims withClaimedIps turns into the settings handed to the CNI.
 */
import { formatIp, parseIp } from '../ipam/cidr';
import { claimIp, type ClaimDeps, type ClaimPod, type IPClaim } from '../ipam/claims';
import { releaseClaim } from '../ipam/pool-release';
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

/**
 * Claim every fixed address of the registration, all or nothing: when one family fails (another
 * holder, a conflict), the claims this call got for the other families are released again, so a
 * dual-stack pod never runs, nor holds an address, with only half of its registration.
 */
export async function claimFixed(deps: ClaimDeps, s: ResolvedSettings, a: Attachment): Promise<IPClaim[]> {
  const done: IPClaim[] = [];
  try {
    for (const cidr of s.ips) {
      done.push(await claimIp(deps, { ...a, network: s.network, ip: bare(cidr), kind: 'fixed', source: s.source, settings: settingsRecord(s) }));
    }
  } catch (err) {
    const now = deps.now?.() ?? new Date();
    for (const c of done) {
      // The precondition makes this release only what this call holds; a changed claim stays.
      await releaseClaim(deps.claims, c, now).catch(() => undefined);
    }
    throw err;
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
