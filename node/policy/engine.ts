/**
 * Applying one PF's plan, safely and idempotently. Order: PF MTU, sriov_numvfs, PF link up, VF
 * drivers. Every step compares what is there with what is wanted first, so a node that matches
 * gets no write at all, and a run interrupted anywhere converges on the next one.
 *
 * Safety rules:
 *  - sriov_numvfs destroys every VF of the PF: it is written only when a fresh read of the in-use
 *    sources (in-use.ts) finds none of the PF's VFs in use, and held (Blocked, naming the pods)
 *    otherwise, or when a source cannot be read;
 *  - a VF's driver is changed only when that VF is not in use;
 *  - vfio-pci is bound only where it can work (module loaded; an IOMMU group, or vfio's no-IOMMU
 *    mode): otherwise Failed, saying so, and the VFs are left alone;
 *  - externallyManaged: never a write, only the comparison.
 */
import type { LinkInfo, LinkPatch } from '../../src/netlink';
import { listPfs, listVfs, netdevSpeedMbps, pciDriverLoaded, readVf, vfioNoIommuMode, type PfDevice, type VfDevice } from '../../src/sysfs/pci';
import type { InUse, PodRef } from './in-use';
import { rebindVf, writeNumVfs, type SysfsWriter } from './kernel';
import { formatRanges, wantedDriver, type PfPlan } from './plan';
import type { PfPolicyStatus, PolicyCondition } from './status';

export interface Links {
  getLink(name: string): LinkInfo | null;
  setLink(index: number, patch: LinkPatch): void;
}

export interface EngineDeps {
  root: string;
  writer: SysfsWriter;
  links: Links;
  /** Fresh in-use read for these VFs (called right before each destructive step). */
  inUse(vfs: readonly VfDevice[]): Promise<InUse>;
  /**
   * With the device plugin in the same process: stop handing out (on) the PF's VFs before its
   * sriov_numvfs is rewritten, so nothing can be allocated between the last check and the write.
   */
  fence?(pfNetdev: string, on: boolean): Promise<void>;
}

export interface PfApplyResult {
  status: PfPolicyStatus;
  /** What was written, in order ("sriov_numvfs 4 -> 6"); empty when the PF already matched. */
  actions: string[];
  /**
   * Set when a sriov_numvfs change is held only because VFs are in use (every source was read):
   * the VFs and who holds them. What `disruption: evict` works from.
   */
  numVfsHeld?: { change: string; vfs: Array<{ pciAddr: string; holder: string; pod?: PodRef }> };
}

const heldVfs = (u: InUse, held: Array<[string, string]>) => held.map(([pciAddr, holder]) => ({ pciAddr, holder, ...(u.pods.has(pciAddr) ? { pod: u.pods.get(pciAddr)! } : {}) }));

const fitsKind = (driver: string | null, userspace: boolean, kind: 'netdevice' | 'vfio-pci'): boolean =>
  kind === 'vfio-pci' ? driver === 'vfio-pci' : driver !== null && !userspace;

function readPf(root: string, pci: string): PfDevice | undefined {
  return listPfs(root).find((p) => p.pciAddr === pci);
}

function inUseText(holders: Array<[string, string]>): string {
  const byWho = new Map<string, string[]>();
  for (const [pci, who] of holders) byWho.set(who, [...(byWho.get(who) ?? []), pci]);
  return [...byWho].map(([who, pcis]) => `VF${pcis.length > 1 ? 's' : ''} ${pcis.join(', ')} in use by ${who}`).join('; ');
}

export async function applyPf(plan: PfPlan, deps: EngineDeps): Promise<PfApplyResult> {
  const actions: string[] = [];
  const blocked: string[] = [];
  const failed: string[] = [];
  const mismatch: string[] = [];
  const blockedPods = new Set<string>();
  let numVfsHeld: PfApplyResult['numVfsHeld'];
  const pci = plan.pf.pciAddr;
  const write = !plan.externallyManaged;

  const link = (): LinkInfo | null => (plan.pf.netdevs[0] ? deps.links.getLink(plan.pf.netdevs[0]) : null);
  const step = (what: string, fn: () => void): void => {
    try {
      fn();
    } catch (e) {
      failed.push(`${what}: ${(e as Error).message}`);
    }
  };

  // 1. PF MTU (live; VFs keep working).
  if (plan.mtu !== undefined) {
    const l = link();
    if (!l) failed.push(`mtu: PF ${plan.name} has no netdev in this netns`);
    else if (l.mtu !== plan.mtu) {
      if (!write) mismatch.push(`mtu is ${l.mtu}, the policy says ${plan.mtu}`);
      else step(`set mtu ${plan.mtu} on ${plan.name}`, () => {
        deps.links.setLink(l.index, { mtu: plan.mtu! });
        actions.push(`mtu ${l.mtu} -> ${plan.mtu}`);
      });
    }
  }

  // 2. sriov_numvfs: only with none of the PF's VFs in use.
  const pfNow = readPf(deps.root, pci);
  if (!pfNow) {
    failed.push(`PF ${pci} is gone from sysfs`);
  } else if (plan.numVfs !== undefined && pfNow.numVfs !== plan.numVfs) {
    if (!write) mismatch.push(`sriov_numvfs is ${pfNow.numVfs}, the policy says ${plan.numVfs}`);
    else {
      const vfs = listVfs(deps.root, pci);
      const u = await deps.inUse(vfs);
      const held = vfs.filter((v) => u.holders.has(v.pciAddr)).map((v): [string, string] => [v.pciAddr, u.holders.get(v.pciAddr)!]);
      if (u.unknown) {
        blocked.push(`sriov_numvfs ${pfNow.numVfs} -> ${plan.numVfs} held: cannot tell which VFs are free (${u.unknown})`);
      } else if (held.length) {
        blocked.push(`sriov_numvfs ${pfNow.numVfs} -> ${plan.numVfs} held: ${inUseText(held)}`);
        numVfsHeld = { change: `sriov_numvfs ${pfNow.numVfs} -> ${plan.numVfs}`, vfs: heldVfs(u, held) };
        for (const [, who] of held) blockedPods.add(who);
      } else {
        // Fence, then look again: an Allocate answered just before the fence shows up now.
        const fence = deps.fence && vfs.length && plan.pf.netdevs[0] ? deps.fence.bind(deps, plan.pf.netdevs[0]) : null;
        if (fence) await fence(true);
        try {
          const again = fence ? await deps.inUse(vfs) : u;
          const late = vfs.filter((v) => again.holders.has(v.pciAddr)).map((v): [string, string] => [v.pciAddr, again.holders.get(v.pciAddr)!]);
          if (again.unknown || late.length) {
            blocked.push(`sriov_numvfs ${pfNow.numVfs} -> ${plan.numVfs} held: ${again.unknown ? `cannot tell which VFs are free (${again.unknown})` : inUseText(late)}`);
            for (const [, who] of late) blockedPods.add(who);
            if (!again.unknown) numVfsHeld = { change: `sriov_numvfs ${pfNow.numVfs} -> ${plan.numVfs}`, vfs: heldVfs(again, late) };
          } else {
            step(`sriov_numvfs ${pfNow.numVfs} -> ${plan.numVfs} on ${plan.name}`, () => {
              writeNumVfs(deps.writer, deps.root, pci, pfNow.numVfs, plan.numVfs!);
              actions.push(`sriov_numvfs ${pfNow.numVfs} -> ${plan.numVfs}`);
            });
          }
        } finally {
          if (fence) await fence(false);
        }
      }
    }
  }

  // 3. PF link up.
  if (plan.linkUp) {
    const l = link();
    if (!l) failed.push(`linkUp: PF ${plan.name} has no netdev in this netns`);
    else if (!l.up) {
      if (!write) mismatch.push('the link is down, the policy says up');
      else step(`set ${plan.name} up`, () => {
        deps.links.setLink(l.index, { up: true });
        actions.push('link up');
      });
    }
  }

  // 4. VF drivers, VF by VF; in-use VFs are held.
  if (plan.drivers.length && pfNow) {
    const vfs = listVfs(deps.root, pci);
    const wrong = vfs.filter((v) => {
      const k = wantedDriver(plan, v.vfIndex);
      return k !== undefined && !fitsKind(v.driver, v.userspace, k);
    });
    if (wrong.length && !write) {
      mismatch.push(`VF drivers: ${wrong.map((v) => `vf ${v.vfIndex} is ${v.driver ?? 'unbound'}, wants ${wantedDriver(plan, v.vfIndex)}`).join('; ')}`);
    } else if (wrong.length) {
      const toVfio = wrong.filter((v) => wantedDriver(plan, v.vfIndex) === 'vfio-pci');
      const noIommu = toVfio.filter((v) => v.iommuGroup === null);
      let vfioOk = true;
      if (toVfio.length && !pciDriverLoaded(deps.root, 'vfio-pci')) {
        failed.push(`vfio-pci is not loaded on this node (modprobe vfio-pci); VFs ${toVfio.map((v) => v.vfIndex).join(',')} left alone`);
        vfioOk = false;
      } else if (noIommu.length && !vfioNoIommuMode(deps.root)) {
        failed.push(`no IOMMU for VFs ${noIommu.map((v) => v.vfIndex).join(',')} (no iommu_group; enable the IOMMU, or vfio's enable_unsafe_noiommu_mode); left alone`);
        vfioOk = false;
      }
      const u = await deps.inUse(vfs);
      const heldVfs: Array<[string, string]> = [];
      for (const v of wrong) {
        const kind = wantedDriver(plan, v.vfIndex)!;
        if (kind === 'vfio-pci' && !vfioOk) continue;
        const who = u.holders.get(v.pciAddr) ?? (u.unknown ? `unknown (${u.unknown})` : undefined);
        if (who) {
          heldVfs.push([v.pciAddr, who]);
          continue;
        }
        step(`bind VF ${v.vfIndex} (${v.pciAddr}) to ${kind}`, () => {
          rebindVf(deps.writer, deps.root, v.pciAddr, v.driver, kind === 'vfio-pci' ? 'vfio-pci' : null);
          const after = readVf(deps.root, v.pciAddr);
          actions.push(`vf ${v.vfIndex} ${v.driver ?? 'unbound'} -> ${after.driver ?? 'unbound'}`);
          if (!fitsKind(after.driver, after.userspace, kind)) throw new Error(`the kernel left it on ${after.driver ?? 'no driver'}`);
        });
      }
      if (heldVfs.length) {
        blocked.push(`driver change held: ${inUseText(heldVfs)}`);
        for (const [, who] of heldVfs) blockedPods.add(who);
      }
    }
  }

  const conditions: PolicyCondition[] = [];
  const ok = !blocked.length && !failed.length && !mismatch.length;
  conditions.push({
    type: 'Applied',
    status: ok ? 'True' : 'False',
    reason: ok ? (plan.externallyManaged ? 'Verified' : actions.length ? 'Applied' : 'AlreadyMatching') : plan.externallyManaged && mismatch.length ? 'ExternallyManagedMismatch' : blocked.length ? 'Held' : 'Error',
    message: ok ? (actions.length ? actions.join('; ') : 'the PF matches the policy') : [...mismatch, ...blocked, ...failed].join('; '),
  });
  if (blocked.length) conditions.push({ type: 'Blocked', status: 'True', reason: 'VFsInUse', message: blocked.join('; '), pods: [...blockedPods].sort() });
  if (failed.length) conditions.push({ type: 'Failed', status: 'True', reason: 'WriteFailed', message: failed.join('; ') });
  return { status: pfStatus(plan, deps, conditions), actions, ...(numVfsHeld ? { numVfsHeld } : {}) };
}

/** Desired vs actual, read after the apply. */
function pfStatus(plan: PfPlan, deps: EngineDeps, conditions: PolicyCondition[]): PfPolicyStatus {
  const pf = readPf(deps.root, plan.pf.pciAddr);
  const l = plan.pf.netdevs[0] ? safeLink(deps.links, plan.pf.netdevs[0]) : null;
  const vfs = pf ? listVfs(deps.root, pf.pciAddr) : [];
  return {
    name: plan.name,
    pciAddr: plan.pf.pciAddr,
    entries: plan.entries,
    externallyManaged: plan.externallyManaged,
    desired: {
      ...(plan.numVfs !== undefined ? { numVfs: plan.numVfs } : {}),
      ...(plan.mtu !== undefined ? { mtu: plan.mtu } : {}),
      ...(plan.linkUp ? { linkUp: true } : {}),
      vfDrivers: plan.drivers.map((r) => ({ vfs: formatRanges(r.ranges), driver: r.driver })),
    },
    actual: {
      totalVfs: pf?.totalVfs ?? 0,
      numVfs: pf?.numVfs ?? 0,
      mtu: l?.mtu ?? null,
      linkUp: l ? l.up : null,
      speedMbps: plan.pf.netdevs[0] ? netdevSpeedMbps(deps.root, plan.pf.netdevs[0]) : null,
      vfDrivers: vfs.map((v) => v.driver ?? ''),
    },
    conditions,
  };
}

function safeLink(links: Links, name: string): LinkInfo | null {
  try {
    return links.getLink(name);
  } catch {
    return null;
  }
}
