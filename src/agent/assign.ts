/**
 * Turning a resolved registration into claimed addresses at ADD: fixed IPs are claimed as named;
 * a pool entry reuses the pod's own claim or its reservation, else takes free addresses from the
 * network's ranges (one per family, all or nothing). Candidates start at an offset hashed from the
 * pod's name so agents on different nodes rarely race for the same address, and every agent walks
 * the same order for the same registration (reservations converge without coordination).
 */
import { createHash } from 'node:crypto';
import { CniCode, UnderlayError } from '../errors';
import { formatIp, nthInRanges, parseIp, totalSize, type Family } from '../ipam/cidr';
import { CLAIM_LABELS, claimIp, claimName, type ClaimDeps, type ClaimMode, type ClaimPod, type IPClaim } from '../ipam/claims';
import type { NetworkModel } from '../registrations/network-model';
import type { ResolvedSettings } from '../registrations/types';

export interface Attachment {
  pod: ClaimPod;
  node: string;
  containerID: string;
  interface: string;
  vf?: string;
}

const MAX_POOL_TRIES = 32;

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

function startOffset(seed: string, size: bigint): bigint {
  const h = BigInt(`0x${createHash('sha256').update(seed).digest('hex').slice(0, 16)}`);
  return size === 0n ? 0n : h % size;
}

/**
 * Claim one address per family of the network's pool for this attachment (kind `pool`), or for a
 * registration with no pod yet (kind `reserved`, `a.pod.uid` empty). Returns the claims.
 */
export async function claimFromPool(deps: ClaimDeps, net: NetworkModel, s: ResolvedSettings, a: Attachment, kind: ClaimMode): Promise<IPClaim[]> {
  const existing = (await deps.claims.list({ labelSelector: `${CLAIM_LABELS.network}=${net.name}` })).items;
  const taken = new Set(existing.map((c) => c.metadata?.name));
  const mine = existing.filter(
    (c) =>
      c.spec.pod.namespace === a.pod.namespace &&
      c.spec.pod.name === a.pod.name &&
      ((a.pod.uid !== '' && c.spec.pod.uid === a.pod.uid) || (!c.spec.pod.uid && c.spec.source.namespace === s.source.namespace && c.spec.source.key === s.source.key)),
  );
  const families = [...new Set(net.pool.map((r) => r.family))].sort();
  const got: IPClaim[] = [];
  try {
    for (const fam of families) {
      const own = mine.find((c) => parseIp(c.spec.ip).family === fam);
      const base = { ...a, network: net.name, kind, source: s.source, settings: settingsRecord(s) };
      if (own) {
        got.push(await claimIp(deps, { ...base, ip: own.spec.ip }));
        continue;
      }
      got.push(await claimNewFromRanges(deps, net, fam, `${s.source.namespace}/${s.source.key}`, taken, base));
    }
  } catch (e) {
    // All or nothing: give back what this call took (with preconditions; a claim we merely reused stays).
    for (const c of got) {
      if (mine.some((m) => m.metadata?.name === c.metadata?.name)) continue;
      await deps.claims.delete(c.metadata!.name!, { uid: c.metadata?.uid, resourceVersion: c.metadata?.resourceVersion }).catch(() => undefined);
    }
    throw e;
  }
  return got;
}

async function claimNewFromRanges(
  deps: ClaimDeps,
  net: NetworkModel,
  fam: Family,
  seed: string,
  taken: Set<string | undefined>,
  base: Omit<Parameters<typeof claimIp>[1], 'ip'>,
): Promise<IPClaim> {
  const ranges = net.pool.filter((r) => r.family === fam);
  const size = totalSize(ranges);
  let n = startOffset(seed, size);
  let tries = 0;
  for (let seen = 0n; seen < size && tries < MAX_POOL_TRIES; seen++, n = (n + 1n) % size) {
    const ip = nthInRanges(ranges, n)!;
    const text = formatIp(fam, ip.value);
    if (taken.has(claimName(net.name, text))) continue;
    tries++;
    try {
      return await claimIp(deps, { ...base, ip: text });
    } catch (e) {
      if (e instanceof UnderlayError && e.code === CniCode.IpConflict) continue; // taken since our list
      throw e;
    }
  }
  throw new UnderlayError(
    tries >= MAX_POOL_TRIES ? CniCode.TryAgainLater : CniCode.IpConflict,
    tries >= MAX_POOL_TRIES
      ? `pool of network "${net.name}" (IPv${fam}): ${MAX_POOL_TRIES} addresses were taken while we tried; try again`
      : `pool of network "${net.name}" (IPv${fam}) is exhausted: all ${size} addresses are claimed`,
  );
}

/** The settings with the pool's addresses filled in (prefix from the network's subnet). */
export function withClaimedIps(s: ResolvedSettings, net: NetworkModel, claims: IPClaim[]): ResolvedSettings {
  const ips = claims.map((c) => {
    const ip = parseIp(c.spec.ip);
    return `${formatIp(ip.family, ip.value)}/${net.subnets[ip.family]!.prefix}`;
  });
  return { ...s, ips };
}
