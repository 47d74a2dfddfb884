/**
 * Pool allocation: a free address from a network's `ranges` for a `pool:` registration, through the
 * same atomic claim create as fixed addresses. No lock anywhere in the cluster:
 *
 * - each candidate is claimed with one create (the API server's 409 on a taken name is the
 *   uniqueness guarantee); on 409 the next candidate is tried, at most `maxAttempts` per family;
 * - candidates are drawn in random order (agents on different nodes rarely pick the same one),
 *   skipping what this agent already knows is claimed (`ClaimView`, usually an informer cache) and
 *   the addresses that registrations name as fixed (a pool never takes a registered pod's IP);
 * - within one agent (node), at most one allocation per pool is in flight: requests queue, so an
 *   agent never races itself and each allocation sees the previous one's claim;
 * - released addresses cool down: a tombstone (see pool-release.ts) is reused only after the
 *   network's `cooldownSeconds`, and only when no address without a claim object is left, least
 *   recently released first. Taking one over is a replace conditional on its resourceVersion;
 * - dual stack: one address per family of the pool, all or nothing (claims made by this call are
 *   deleted again if a later family fails);
 * - reservations (`reserve: true`, no pod yet) are made by whichever agent gets there first: they
 *   walk a candidate order seeded by the registration, so racing agents try the same address and
 *   the loser of the 409 finds the winner's reservation and stops there;
 * - a pod that holds a claim of this network already (same UID: a repeated ADD or a re-created
 *   sandbox, even if it was released into a tombstone meanwhile) or the reservation made for its
 *   registration gets that address back; so does a pod re-created under its name with a new UID
 *   (its node died, no DEL ran): the claim of the earlier pod of that name and registration is
 *   taken over once a fresh read shows that UID gone (claimIp). When that claim is held on another
 *   node that still exists, a plain pool pod gets a fresh address instead; a reservation waits;
 * - one allocation is bounded (`allocationTimeoutMs`): a hung one fails with TryAgainLater and the
 *   pool's queue moves on, so one stuck API call never blocks the network on the node.
 */
import { createHash } from 'node:crypto';
import { CniCode, UnderlayError } from '../errors';
import { isAlreadyExists, isConflict, isNotFound, type ClusterObjects } from '../kube/client';
import type { NetworkModel } from '../registrations/network-model';
import { formatIp, nthInRanges, parseIp, rangeContains, totalSize, type Family, type IpRange } from './cidr';
import { apiError, CLAIM_LABELS, claimIp, claimName, HeldElsewhere, refreshOwnClaim, type ClaimDeps, type ClaimRequest, type IPClaim, type IPClaimSpec } from './claims';
import { releasedAtMs, reusableAt } from './pool-release';

/** What this agent knows is claimed on a network (may lag the API server; the create decides). */
export interface ClaimView {
  claimsOf(network: string): Promise<Iterable<IPClaim>> | Iterable<IPClaim>;
}

/** A view that lists the network's claims from the API server each time (no informer). */
export function listingView(claims: ClusterObjects<IPClaim>): ClaimView {
  return { claimsOf: async (network) => (await claims.list({ labelSelector: `${CLAIM_LABELS.network}=${network}` })).items };
}

/** A view over a cache of all claims (e.g. an Informer's list()). */
export function cachedView(all: () => Iterable<IPClaim>): ClaimView {
  return {
    *claimsOf(network) {
      for (const c of all()) if (c.spec.network === network) yield c;
    },
  };
}

/** A pool claim as asked for: the network and address are the allocator's to choose. */
export type PoolRequest = Omit<ClaimRequest, 'network' | 'ip' | 'kind'> & {
  /** `reserved`: pre-allocation for a registration whose pod does not exist yet (pod.uid ''). */
  kind: 'pool' | 'reserved';
};

export interface PoolAllocatorOptions {
  claims: ClusterObjects<IPClaim>;
  /** For giving a pod back its own claim or reservation (claimIp's idempotency and hand-over). */
  claimDeps: ClaimDeps;
  view: ClaimView;
  /** Canonical addresses that registrations name as fixed on this network: never handed out. */
  fixedAddresses?: (network: string) => ReadonlySet<string>;
  random?: () => number;
  now?: () => Date;
  /** Creates tried per family before giving up with TryAgainLater. Default 8. */
  maxAttempts?: number;
  /** How long one allocation may hold its pool's queue. Default ALLOCATION_TIMEOUT_MS. */
  allocationTimeoutMs?: number;
}

/** Below the CNI socket's answer deadline (node/agent/cni-socket.ts), so ADD hears why. */
export const ALLOCATION_TIMEOUT_MS = 7_000;

export interface PoolStats {
  allocations: number;
  /** Creates (or tombstone take-overs) that lost a race: 409. */
  retries: number;
  /** Allocations answered with the pod's own claim or reservation. */
  reused: number;
  tombstonesReused: number;
  rollbacks: number;
}

const RECENT_MS = 60_000;
const SAMPLES = 24;
const ENUMERATE_LIMIT = 1n << 20n;

export class PoolAllocator {
  readonly stats: PoolStats = { allocations: 0, retries: 0, reused: 0, tombstonesReused: 0, rollbacks: 0 };
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Claims this agent made that its view may not show yet: name → (claim, when). */
  private readonly recent = new Map<string, { claim: IPClaim; at: number }>();
  private readonly random: () => number;
  private readonly now: () => Date;

  constructor(private readonly opts: PoolAllocatorOptions) {
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? (() => new Date());
  }

  /** Allocate (or give back) one address per family of the network's pool. Queued per network, bounded in time. */
  allocate(net: NetworkModel, req: PoolRequest): Promise<IPClaim[]> {
    const prev = this.queues.get(net.name) ?? Promise.resolve();
    const limit = this.opts.allocationTimeoutMs ?? ALLOCATION_TIMEOUT_MS;
    const run = prev.catch(() => undefined).then(() => withDeadline(this.allocateNow(net, req), limit, net.name, req));
    const tail = run.catch(() => undefined);
    this.queues.set(net.name, tail);
    void tail.then(() => {
      if (this.queues.get(net.name) === tail) this.queues.delete(net.name);
    });
    return run;
  }

  /** Allocations waiting or running for a network (for tests and metrics). */
  get inFlight(): number {
    return this.queues.size;
  }

  private async allocateNow(net: NetworkModel, req: PoolRequest): Promise<IPClaim[]> {
    if (!net.pool.length) throw new UnderlayError(CniCode.RegistrationInvalid, `network "${net.name}" has no "ranges" to allocate from`);
    const known = await this.knownClaims(net.name);
    const families = [...new Set(net.pool.map((r) => r.family))].sort();
    const got: IPClaim[] = [];
    const mine = ownClaims(known.values(), req);
    try {
      for (const fam of families) {
        const own = mine.find((c) => parseIp(c.spec.ip).family === fam);
        if (own && req.kind === 'reserved' && own.spec.kind === 'reserved' && !own.spec.pod.uid) {
          got.push(own); // reserving again: nothing to write
          this.stats.reused++;
          continue;
        }
        if (own && own.spec.pod.uid === req.pod.uid && own.spec.node === req.node && releasedAtMs(own) === null) {
          // A repeated ADD: refreshed in one write, so a DEL note queued before it cannot release it.
          const fresh = await refreshOwnClaim(this.opts.claimDeps, own, { ...base(req, net.name), ip: own.spec.ip });
          if (fresh) {
            got.push(fresh);
            this.stats.reused++;
            continue;
          }
        }
        if (own) {
          try {
            got.push(await claimIp(this.opts.claimDeps, { ...base(req, net.name), ip: own.spec.ip }));
            this.stats.reused++;
            continue;
          } catch (e) {
            // An earlier pod's plain pool address, held on a node that still exists: a fresh one.
            if (!(e instanceof HeldElsewhere) || own.spec.kind === 'reserved' || own.spec.pod.uid === req.pod.uid) throw e;
          }
        }
        const c = await this.allocateFamily(net, fam, req, known);
        got.push(c);
      }
    } catch (e) {
      // All or nothing: give back what this call created (a claim we merely reused stays).
      for (const c of got) {
        if (mine.some((m) => m.metadata?.name === c.metadata?.name)) continue;
        this.stats.rollbacks++;
        this.recent.delete(c.metadata!.name!);
        await this.opts.claims.delete(c.metadata!.name!, { uid: c.metadata?.uid, resourceVersion: c.metadata?.resourceVersion }).catch(() => undefined);
      }
      throw e;
    }
    this.stats.allocations++;
    return got;
  }

  private async knownClaims(network: string): Promise<Map<string, IPClaim>> {
    const known = new Map<string, IPClaim>();
    let listed: Iterable<IPClaim>;
    try {
      listed = await this.opts.view.claimsOf(network);
    } catch (e) {
      throw apiError(`list the claims of network "${network}"`, e);
    }
    for (const c of listed) if (c.metadata?.name) known.set(c.metadata.name, c);
    const now = Date.now();
    for (const [name, r] of this.recent) {
      if (now - r.at > RECENT_MS || known.has(name)) this.recent.delete(name);
      else if (r.claim.spec.network === network) known.set(name, r.claim);
    }
    return known;
  }

  private async allocateFamily(net: NetworkModel, fam: Family, req: PoolRequest, known: Map<string, IPClaim>): Promise<IPClaim> {
    const ranges = net.pool.filter((r) => r.family === fam);
    const size = totalSize(ranges);
    const fixed = this.opts.fixedAddresses?.(net.name) ?? new Set<string>();
    const max = this.opts.maxAttempts ?? 8;
    const tried = new Set<string>();
    const isFree = (text: string) => {
      const name = claimName(net.name, text);
      return !known.has(name) && !tried.has(name) && !fixed.has(text);
    };
    let attempts = 0;
    // Reservations: every agent walks the same order for the same registration, so racing agents
    // collide on the same name and the 409 makes one reservation (see below), not several.
    const fresh = req.kind === 'reserved' ? this.seededCandidates(ranges, fam, size, isFree, `${req.source.namespace}/${req.source.key}`) : this.freeCandidates(ranges, fam, size, isFree);
    for (let next = fresh.next(); !next.done; next = fresh.next()) {
      if (attempts >= max) break;
      const text = next.value;
      const name = claimName(net.name, text);
      tried.add(name);
      attempts++;
      try {
        const c = await this.opts.claims.create(newClaim(net.name, text, req, this.now()));
        this.recent.set(name, { claim: c, at: Date.now() });
        return c;
      } catch (e) {
        if (!isAlreadyExists(e)) throw apiError(`claim ${text} on network "${net.name}"`, e);
        this.stats.retries++;
        if (req.kind === 'reserved') {
          const other = await this.opts.claims.get(name).catch(() => undefined);
          if (other && ownClaims([other], req).length) return other; // another agent reserved it for us
        }
      }
    }
    // No address without a claim object (or every try lost a race): cooled-down tombstones,
    // least recently released first.
    const nowMs = this.now().getTime();
    const cooled = [...known.values()]
      .filter((c) => parseIp(c.spec.ip).family === fam && !tried.has(c.metadata!.name!) && !fixed.has(c.spec.ip))
      .filter((c) => inPool(ranges, c.spec.ip))
      .map((c) => ({ c, at: reusableAt(c, net.spec.cooldownSeconds) }))
      .filter((x): x is { c: IPClaim; at: number } => x.at !== null && x.at <= nowMs)
      .sort((a, b) => releasedAtMs(a.c)! - releasedAtMs(b.c)!);
    for (const { c } of cooled) {
      if (attempts >= max) break;
      attempts++;
      const name = c.metadata!.name!;
      try {
        const body = newClaim(net.name, c.spec.ip, req, this.now());
        body.metadata!.resourceVersion = c.metadata?.resourceVersion;
        const taken = await this.opts.claims.replace(name, body);
        this.recent.set(name, { claim: taken, at: Date.now() });
        this.stats.tombstonesReused++;
        return taken;
      } catch (e) {
        if (!isConflict(e) && !isNotFound(e)) throw apiError(`reuse released ${c.spec.ip} on network "${net.name}"`, e);
        this.stats.retries++;
      }
    }
    if (attempts >= max) {
      throw new UnderlayError(
        CniCode.TryAgainLater,
        `pool of network "${net.name}" (IPv${fam}): ${attempts} candidate addresses were claimed by others while we tried; try again`,
      );
    }
    throw new UnderlayError(CniCode.IpConflict, exhaustedMessage(net, fam, size, known, fixed, nowMs));
  }

  /**
   * Unclaimed addresses in random order. Sparse pools: random draws (a /64 is never walked);
   * when draws keep hitting claimed addresses, the free ones are listed and shuffled.
   */
  private *freeCandidates(ranges: IpRange[], fam: Family, size: bigint, isFree: (t: string) => boolean): Generator<string> {
    if (size === 0n) return;
    let misses = 0;
    while (misses < SAMPLES) {
      const ip = nthInRanges(ranges, this.randomBelow(size))!;
      const text = formatIp(fam, ip.value);
      if (isFree(text)) {
        misses = 0;
        yield text;
      } else misses++;
    }
    if (size > ENUMERATE_LIMIT) return; // huge and this crowded: give up, report as a race
    const free: string[] = [];
    for (let n = 0n; n < size; n++) {
      const text = formatIp(fam, nthInRanges(ranges, n)!.value);
      if (isFree(text)) free.push(text);
    }
    for (let i = free.length - 1; i >= 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [free[i], free[j]] = [free[j]!, free[i]!];
      const t = free[i]!;
      if (isFree(t)) yield t;
    }
  }

  /** Unclaimed addresses from an offset hashed from `seed`, in order, wrapping once. */
  private *seededCandidates(ranges: IpRange[], fam: Family, size: bigint, isFree: (t: string) => boolean, seed: string): Generator<string> {
    if (size === 0n) return;
    const start = BigInt(`0x${createHash('sha256').update(seed).digest('hex').slice(0, 16)}`) % size;
    for (let i = 0n; i < size; i++) {
      const text = formatIp(fam, nthInRanges(ranges, (start + i) % size)!.value);
      if (isFree(text)) yield text;
    }
  }

  private randomBelow(n: bigint): bigint {
    if (n <= BigInt(Number.MAX_SAFE_INTEGER)) return BigInt(Math.floor(this.random() * Number(n)));
    let v = 0n;
    for (let bits = 0n; bits < BigInt(n.toString(2).length) + 32n; bits += 32n) v = (v << 32n) | BigInt(Math.floor(this.random() * 2 ** 32));
    return v % n;
  }
}

function base(req: PoolRequest, network: string): Omit<ClaimRequest, 'ip'> {
  const b: Omit<ClaimRequest, 'ip'> = { network, kind: req.kind, pod: req.pod, node: req.node, containerID: req.containerID, interface: req.interface, source: req.source };
  if (req.vf) b.vf = req.vf;
  if (req.settings) b.settings = req.settings;
  return b;
}

/**
 * The pod's own claims of this network, best first: its UID's (a repeated ADD, a new sandbox, even
 * released meanwhile), the reservation of its registration, then an earlier pod's of the same name
 * and registration (re-created under a new UID without a DEL; claimIp confirms that UID is gone).
 */
function ownClaims(known: Iterable<IPClaim>, req: PoolRequest): IPClaim[] {
  const ranked: Array<[number, IPClaim]> = [];
  for (const c of known) {
    const p = c.spec.pod;
    if (p.namespace !== req.pod.namespace || p.name !== req.pod.name) continue;
    const sameRegistration = c.spec.source.namespace === req.source.namespace && c.spec.source.key === req.source.key;
    if (req.pod.uid !== '' && p.uid === req.pod.uid) ranked.push([0, c]);
    else if (c.spec.kind === 'reserved' && !p.uid && sameRegistration) ranked.push([1, c]);
    else if (req.pod.uid !== '' && p.uid && sameRegistration && c.spec.kind !== 'fixed') ranked.push([2, c]);
  }
  return ranked.sort((a, b) => a[0] - b[0]).map(([, c]) => c);
}

/** The allocation, or TryAgainLater once `ms` have passed (the allocation itself runs on, harmlessly: a retry of the same UID finds its claim). */
function withDeadline<T>(p: Promise<T>, ms: number, network: string, req: PoolRequest): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new UnderlayError(CniCode.TryAgainLater, `pool of network "${network}": allocation for pod ${req.pod.namespace}/${req.pod.name} took longer than ${ms} ms (Kubernetes API slow?); try again`)),
      ms,
    );
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

function newClaim(network: string, ip: string, req: PoolRequest, now: Date): IPClaim {
  const t = now.toISOString();
  const labels: Record<string, string> = { [CLAIM_LABELS.network]: network, [CLAIM_LABELS.kind]: req.kind };
  if (req.node && req.node.length <= 63) labels[CLAIM_LABELS.node] = req.node;
  if (req.pod.uid) labels[CLAIM_LABELS.podUid] = req.pod.uid;
  const spec: IPClaimSpec = {
    network,
    ip,
    kind: req.kind,
    pod: req.pod,
    node: req.node,
    containerID: req.containerID,
    interface: req.interface,
    source: req.source,
    claimedAt: t,
    updatedAt: t,
  };
  if (req.vf) spec.vf = req.vf;
  if (req.settings) spec.settings = req.settings;
  return { metadata: { name: claimName(network, ip), labels }, spec };
}

function inPool(ranges: IpRange[], text: string): boolean {
  const ip = parseIp(text);
  return ranges.some((r) => rangeContains(r, ip));
}

function exhaustedMessage(net: NetworkModel, fam: Family, size: bigint, known: Map<string, IPClaim>, fixed: ReadonlySet<string>, nowMs: number): string {
  let inUse = 0;
  let cooling = 0;
  let nextAt = Infinity;
  const ranges = net.pool.filter((r) => r.family === fam);
  for (const c of known.values()) {
    if (parseIp(c.spec.ip).family !== fam || !inPool(ranges, c.spec.ip)) continue;
    const at = reusableAt(c, net.spec.cooldownSeconds);
    if (at === null) inUse++;
    else if (at > nowMs) {
      cooling++;
      nextAt = Math.min(nextAt, at);
    }
  }
  const reg = [...fixed].filter((t) => inPool(ranges, t)).length;
  return (
    `pool of network "${net.name}" (IPv${fam}) is exhausted: ${size} addresses, ${inUse} claimed, ${cooling} cooling down` +
    `${reg ? `, ${reg} registered as fixed` : ''}` +
    `${Number.isFinite(nextAt) ? `; the next one is reusable at ${new Date(nextAt).toISOString()}` : ''}`
  );
}

/** The canonical fixed addresses registrations name per network (for `fixedAddresses`). */
export function fixedAddressesByNetwork(
  regs: Iterable<{ spec: { network?: string | undefined; pool?: string | undefined; ip?: string | string[] | undefined; ips?: string[] | undefined; ips6?: string[] | undefined } }>,
): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const r of regs) {
    const net = r.spec.network ?? r.spec.pool;
    if (!net) continue;
    const list = [...(r.spec.ip === undefined ? [] : typeof r.spec.ip === 'string' ? [r.spec.ip] : r.spec.ip), ...(r.spec.ips ?? []), ...(r.spec.ips6 ?? [])];
    if (!list.length) continue;
    let set = out.get(net);
    if (!set) out.set(net, (set = new Set()));
    for (const t of list) {
      const ip = parseIp(t);
      set.add(formatIp(ip.family, ip.value));
    }
  }
  return out;
}
