/**
 * Which pool a VF belongs to. Every selector present must match (AND across selectors, OR within
 * one), and the VF's driver must fit the pool's deviceType. The first matching pool wins.
 */
import type { Pool, VfRangeSelector } from '../../src/schemas/device-pools';
import type { VfRecord } from './discovery';

const USERSPACE_DRIVERS = new Set(['vfio-pci']);

function inRanges(sel: VfRangeSelector, vfIndex: number): boolean {
  return sel.ranges === null || sel.ranges.some(([lo, hi]) => vfIndex >= lo && vfIndex <= hi);
}

/** Does the VF's driver give the kind of device the pool hands out? */
export function fitsDeviceType(pool: Pool, vf: VfRecord): boolean {
  if (vf.driver === null) return false; // unbound: nothing to hand out
  return pool.deviceType === 'vfio' ? USERSPACE_DRIVERS.has(vf.driver) : !vf.userspace;
}

export function poolMatches(pool: Pool, vf: VfRecord): boolean {
  const s = pool.selectors;
  if (!fitsDeviceType(pool, vf)) return false;
  if (s.vendors && (vf.vendor === null || !s.vendors.includes(vf.vendor))) return false;
  if (s.devices && (vf.device === null || !s.devices.includes(vf.device))) return false;
  if (s.drivers && (vf.driver === null || !s.drivers.includes(vf.driver))) return false;
  if (s.pfNames && !s.pfNames.some((p) => p.base === vf.pfNetdev && inRanges(p, vf.vfIndex))) return false;
  if (s.rootDevices && !s.rootDevices.some((p) => p.base === vf.pfPciAddr && inRanges(p, vf.vfIndex))) return false;
  if (s.linkTypes && (vf.linkType === null || !s.linkTypes.includes(vf.linkType as 'ether' | 'infiniband'))) return false;
  if (s.numaNodes && (vf.topologyNode === null || !s.numaNodes.includes(vf.topologyNode))) return false;
  return true;
}

/** Index of the first pool that matches, or -1. */
export function firstMatchingPool(pools: readonly Pool[], vf: VfRecord): number {
  return pools.findIndex((p) => poolMatches(p, vf));
}

export const fullResourceName = (pool: Pool): string => `${pool.resourcePrefix}/${pool.resourceName}`;
