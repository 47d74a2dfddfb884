/**
 * From the policy entries, this node's labels and its PFs to one plan per PF: what each PF should
 * look like. Pure; nothing is read or written here. An entry that cannot be applied exactly as
 * written on this node is rejected whole (nothing of it reaches any PF), with a reason naming the
 * entry and the field:
 *  - a nodeSelector while the node's labels are unknown;
 *  - a pfNames/rootDevices entry naming a PF this node does not have, or selectors matching none;
 *  - numVfs above a PF's sriov_totalvfs;
 *  - overlapping another entry on a PF (both are rejected: neither is "the right one");
 *  - a VF range past the end of the PF's VFs (as the plan leaves them).
 */
import type { VfRangeSelector } from '../../src/schemas/device-pools';
import type { PfDevice } from '../../src/sysfs/pci';
import type { PolicyEntry, VfDriverKind } from './schema';

export type Ranges = Array<[number, number]> | null;

export interface VfDriverRule {
  entry: string;
  /** VF indexes the rule covers; null = every VF of the PF. */
  ranges: Ranges;
  driver: VfDriverKind;
}

export interface PfPlan {
  pf: PfDevice;
  /** The PF's netdev name, or its PCI address when it has none. */
  name: string;
  entries: string[];
  externallyManaged: boolean;
  evict: boolean;
  numVfs?: number;
  mtu?: number;
  linkUp?: true;
  drivers: VfDriverRule[];
}

export interface Rejection {
  entry: string;
  field: string;
  message: string;
}

export interface Plan {
  pfs: PfPlan[];
  rejected: Rejection[];
}

export function nodeSelected(e: PolicyEntry, labels: Readonly<Record<string, string>> | null): boolean | null {
  const sel = Object.entries(e.nodeSelector);
  if (sel.length === 0) return true;
  if (labels === null) return null;
  return sel.every(([k, v]) => labels[k] === v);
}

function pfMatches(e: PolicyEntry, pf: PfDevice): boolean {
  if (e.pfNames && !e.pfNames.some((s) => pf.netdevs.includes(s.base))) return false;
  if (e.rootDevices && !e.rootDevices.some((s) => s.base === pf.pciAddr)) return false;
  if (e.vendors && (pf.vendor === null || !e.vendors.includes(pf.vendor))) return false;
  if (e.devices && (pf.device === null || !e.devices.includes(pf.device))) return false;
  return true;
}

/** The VF ranges of an entry on one PF: the union of its matching range selectors (null = all). */
function rangesOn(e: PolicyEntry, pf: PfDevice): Ranges {
  const sels: VfRangeSelector[] = [
    ...(e.pfNames ?? []).filter((s) => pf.netdevs.includes(s.base)),
    ...(e.rootDevices ?? []).filter((s) => s.base === pf.pciAddr),
  ];
  if (sels.length === 0 || sels.some((s) => s.ranges === null)) return null;
  return sels.flatMap((s) => s.ranges ?? []);
}

export function inRanges(r: Ranges, i: number): boolean {
  return r === null || r.some(([lo, hi]) => i >= lo && i <= hi);
}

function rangesIntersect(a: Ranges, b: Ranges): boolean {
  if (a === null || b === null) return true;
  return a.some(([alo, ahi]) => b.some(([blo, bhi]) => alo <= bhi && blo <= ahi));
}

export const formatRanges = (r: Ranges): string => (r === null ? 'all' : r.map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}-${hi}`)).join(','));

const pfName = (pf: PfDevice): string => pf.netdevs[0] ?? pf.pciAddr;

/** Why two entries cannot both hold one PF, or null when they can (disjoint VF driver ranges, same PF settings). */
function conflict(a: PolicyEntry, b: PolicyEntry, pf: PfDevice): string | null {
  const n = pfName(pf);
  if (a.externallyManaged !== b.externallyManaged) return `one is externallyManaged and the other is not (PF ${n})`;
  for (const f of ['numVfs', 'mtu', 'linkUp', 'disruption'] as const) {
    if (a[f] !== undefined && b[f] !== undefined && a[f] !== b[f]) return `${f} ${String(a[f])} vs ${String(b[f])} on PF ${n}`;
  }
  if (a.vfDriver !== undefined && b.vfDriver !== undefined) {
    const ra = rangesOn(a, pf);
    const rb = rangesOn(b, pf);
    if (rangesIntersect(ra, rb)) return `both set vfDriver for VFs ${formatRanges(ra)} / ${formatRanges(rb)} of PF ${n}`;
  }
  return null;
}

export function buildPlan(entries: readonly PolicyEntry[], labels: Readonly<Record<string, string>> | null, pfs: readonly PfDevice[]): Plan {
  const rejected: Rejection[] = [];
  const reject = (e: PolicyEntry, field: string, message: string) => rejected.push({ entry: e.name, field, message });
  // 1. entries for this node, each with the PFs it selects; unknown PFs reject the entry.
  let live: Array<{ e: PolicyEntry; pfs: PfDevice[] }> = [];
  for (const e of entries) {
    const sel = nodeSelected(e, labels);
    if (sel === false) continue;
    if (sel === null) {
      reject(e, 'nodeSelector', "this node's labels are unknown (no API access); entry not applied");
      continue;
    }
    const missing = [
      ...(e.pfNames ?? []).filter((s) => !pfs.some((p) => p.netdevs.includes(s.base))).map((s) => ['pfNames', `no SR-IOV PF "${s.base}" on this node`] as const),
      ...(e.rootDevices ?? []).filter((s) => !pfs.some((p) => p.pciAddr === s.base)).map((s) => ['rootDevices', `no SR-IOV PF ${s.base} on this node`] as const),
    ];
    if (missing.length) {
      reject(e, missing[0]![0], missing.map((m) => m[1]).join('; '));
      continue;
    }
    const mine = pfs.filter((p) => pfMatches(e, p));
    if (mine.length === 0) {
      reject(e, e.pfNames ? 'pfNames' : e.rootDevices ? 'rootDevices' : e.vendors ? 'vendors' : 'devices', 'selects no SR-IOV PF on this node');
      continue;
    }
    const tooMany = mine.find((p) => e.numVfs !== undefined && e.numVfs > p.totalVfs);
    if (tooMany) {
      reject(e, 'numVfs', `${e.numVfs} is more than PF ${pfName(tooMany)} supports (sriov_totalvfs ${tooMany.totalVfs})`);
      continue;
    }
    live.push({ e, pfs: mine });
  }
  // 2. overlaps: every entry involved in a conflict is rejected.
  const bad = new Map<string, string>();
  for (let i = 0; i < live.length; i++) {
    for (let j = i + 1; j < live.length; j++) {
      const a = live[i]!;
      const b = live[j]!;
      for (const pf of a.pfs) {
        if (!b.pfs.includes(pf)) continue;
        const why = conflict(a.e, b.e, pf);
        if (!why) continue;
        if (!bad.has(a.e.name)) bad.set(a.e.name, `overlaps entry "${b.e.name}": ${why}`);
        if (!bad.has(b.e.name)) bad.set(b.e.name, `overlaps entry "${a.e.name}": ${why}`);
      }
    }
  }
  for (const { e } of live) if (bad.has(e.name)) reject(e, 'pfNames', `${bad.get(e.name)!}; entry rejected`);
  live = live.filter(({ e }) => !bad.has(e.name));
  // 3. merge per PF; a VF range past the PF's VF count rejects its entry, and the PF is merged again.
  for (;;) {
    const plans = merge(live);
    const past = findRangePastEnd(plans);
    if (!past) return { pfs: plans, rejected };
    reject(past.e, past.e.pfNames ? 'pfNames' : 'rootDevices', past.message);
    live = live.filter((l) => l.e !== past.e);
  }

  function findRangePastEnd(plans: PfPlan[]): { e: PolicyEntry; message: string } | null {
    for (const p of plans) {
      const count = p.numVfs ?? p.pf.numVfs;
      for (const r of p.drivers) {
        const top = r.ranges === null ? -1 : Math.max(...r.ranges.map(([, hi]) => hi));
        if (top >= count) {
          const e = live.find((l) => l.e.name === r.entry)!.e;
          return { e, message: `VF range ${formatRanges(r.ranges)} of PF ${p.name} goes past its last VF (${count} VFs: 0-${count - 1})` };
        }
      }
    }
    return null;
  }
}

function merge(live: ReadonlyArray<{ e: PolicyEntry; pfs: PfDevice[] }>): PfPlan[] {
  const byPf = new Map<string, PfPlan>();
  for (const { e, pfs } of live) {
    for (const pf of pfs) {
      let p = byPf.get(pf.pciAddr);
      if (!p) {
        p = { pf, name: pfName(pf), entries: [], externallyManaged: e.externallyManaged, evict: false, drivers: [] };
        byPf.set(pf.pciAddr, p);
      }
      p.entries.push(e.name);
      if (e.disruption === 'evict') p.evict = true;
      if (e.numVfs !== undefined) p.numVfs = e.numVfs;
      if (e.mtu !== undefined) p.mtu = e.mtu;
      if (e.linkUp !== undefined) p.linkUp = e.linkUp;
      if (e.vfDriver !== undefined) p.drivers.push({ entry: e.name, ranges: rangesOn(e, pf), driver: e.vfDriver });
    }
  }
  return [...byPf.values()].sort((a, b) => a.pf.pciAddr.localeCompare(b.pf.pciAddr));
}

/** The driver kind the plan wants for VF `i` of the PF, or undefined when it leaves the VF alone. */
export function wantedDriver(p: PfPlan, i: number): VfDriverKind | undefined {
  return p.drivers.find((r) => inRanges(r.ranges, i))?.driver;
}
