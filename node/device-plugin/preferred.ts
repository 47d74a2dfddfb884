/**
 * GetPreferredAllocation: which of the available VFs kubelet should hand a container.
 *  1. Everything in mustInclude is in the answer.
 *  2. One NUMA node if it can be done: the node of the mustInclude devices, else a node that can
 *     supply the rest alone (spread: the roomiest; pack: the tightest fit), else the roomiest.
 *  3. Over PFs: spread takes round-robin from the least-used PF (redundancy across uplinks); pack
 *     fills the PFs already in use first, then the tightest PF that fits (keeps others whole).
 * Unknown or unhealthy IDs are only used when nothing better is left; kubelet decides anyway.
 */
import type { PoolDevice } from './pool-state';

export type Placement = 'spread' | 'pack';

interface Cand {
  id: string;
  pf: string;
  node: string;
}

function groupBy<T>(items: readonly T[], keyOf: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const it of items) {
    const k = keyOf(it);
    const list = m.get(k);
    if (list) list.push(it);
    else m.set(k, [it]);
  }
  return m;
}

function pickFromPfs(cands: Cand[], need: number, placement: Placement, pfUse: Map<string, number>): string[] {
  const byPf = groupBy(cands, (c) => c.pf);
  const out: string[] = [];
  if (placement === 'spread') {
    while (out.length < need && byPf.size > 0) {
      const [pf, list] = [...byPf.entries()].sort(
        (a, b) => (pfUse.get(a[0]) ?? 0) - (pfUse.get(b[0]) ?? 0) || b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1),
      )[0]!;
      out.push(list.shift()!.id);
      pfUse.set(pf, (pfUse.get(pf) ?? 0) + 1);
      if (list.length === 0) byPf.delete(pf);
    }
    return out;
  }
  while (out.length < need && byPf.size > 0) {
    const left = need - out.length;
    const pfs = [...byPf.entries()];
    const used = pfs.filter(([pf]) => (pfUse.get(pf) ?? 0) > 0).sort((a, b) => (pfUse.get(b[0]) ?? 0) - (pfUse.get(a[0]) ?? 0));
    const fits = pfs.filter(([, l]) => l.length >= left).sort((a, b) => a[1].length - b[1].length || (a[0] < b[0] ? -1 : 1));
    const roomiest = [...pfs].sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1));
    const [pf, list] = used[0] ?? fits[0] ?? roomiest[0]!;
    while (out.length < need && list.length > 0) {
      out.push(list.shift()!.id);
      pfUse.set(pf, (pfUse.get(pf) ?? 0) + 1);
    }
    byPf.delete(pf);
  }
  return out;
}

export function preferredAllocation(
  available: readonly string[],
  mustInclude: readonly string[],
  size: number,
  devices: ReadonlyMap<string, PoolDevice>,
  placement: Placement,
): string[] {
  const result = [...new Set(mustInclude)];
  if (result.length >= size) return result;
  const taken = new Set(result);
  const pfOf = (id: string) => devices.get(id)?.vf.pfPciAddr ?? `?${id}`;
  const nodeOf = (id: string) => String(devices.get(id)?.vf.topologyNode ?? 'none');
  const pfUse = new Map<string, number>();
  for (const id of result) pfUse.set(pfOf(id), (pfUse.get(pfOf(id)) ?? 0) + 1);

  const uniq = [...new Set(available)].filter((id) => !taken.has(id)).sort();
  const good = uniq.filter((id) => devices.get(id)?.healthy === true).map((id) => ({ id, pf: pfOf(id), node: nodeOf(id) }));
  const rest = uniq.filter((id) => devices.get(id)?.healthy !== true);
  let need = size - result.length;

  const byNode = groupBy(good, (c) => c.node);
  const nodes = [...byNode.entries()].sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1));
  let first: string | undefined;
  if (result.length > 0) {
    const counts = groupBy(result, nodeOf);
    first = [...counts.entries()].sort((a, b) => b[1].length - a[1].length)[0]?.[0];
  }
  if (first === undefined) {
    const fitting = nodes.filter(([, l]) => l.length >= need);
    first = (placement === 'pack' ? fitting[fitting.length - 1] : fitting[0])?.[0] ?? nodes[0]?.[0];
  }
  const order = [...nodes.filter(([n]) => n === first), ...nodes.filter(([n]) => n !== first)];
  for (const [, cands] of order) {
    if (need <= 0) break;
    const picked = pickFromPfs(cands, need, placement, pfUse);
    result.push(...picked);
    need -= picked.length;
  }
  if (need > 0) result.push(...rest.slice(0, need));
  return result;
}
