/**
 * Discovery: every VF of every SR-IOV PF under the sysfs root, with what the pool selectors and
 * Allocate need. Reads go through src/sysfs only. VFs are keyed by PCI address: a VF whose netdev
 * moved into a pod netns has no host netdev but is still the same device.
 */
import { listPciAddrs, listPfs, listVfs, netdevLinkType, numaNodeCount, readChangeMarkers, type PfDevice, type VfDevice } from '../../src/sysfs/pci';

export type LinkType = 'ether' | 'infiniband' | 'other';

export interface VfRecord extends VfDevice {
  /** Link type of the VF's own netdev, else of its PF's netdev (a moved VF keeps its PF's type). */
  linkType: LinkType | null;
  /** NUMA node for topology hints: the device's own, or 0 on a host with one node. */
  topologyNode: number | null;
}

export interface Discovery {
  /** Every PCI device address seen, read first (a device added later shows up as a change). */
  pciAddrs: string[];
  pfs: PfDevice[];
  vfs: VfRecord[];
}

export function discover(root: string): Discovery {
  const pciAddrs = listPciAddrs(root);
  const pfs = listPfs(root);
  const singleNode = numaNodeCount(root) <= 1;
  const vfs: VfRecord[] = [];
  for (const pf of pfs) {
    const pfType = pf.netdevs[0] ? netdevLinkType(root, pf.netdevs[0]) : null;
    for (const vf of listVfs(root, pf.pciAddr)) {
      const own = vf.netdevs[0] ? netdevLinkType(root, vf.netdevs[0]) : null;
      vfs.push({
        ...vf,
        linkType: own ?? pfType,
        topologyNode: vf.numaNode ?? (singleNode ? 0 : null),
      });
    }
  }
  return { pciAddrs, pfs, vfs };
}

/**
 * Change detection without re-reading everything: a Discovery remembers the change markers it saw
 * (device list, sriov_numvfs per PF, driver per VF); a rescan reads just those, asynchronously, and
 * runs the full discovery only when they differ. Netdev names are left out on purpose: they change
 * whenever a VF moves into a pod, and pool membership never depends on them.
 */
export function markersOf(d: Discovery): string {
  return JSON.stringify({ devices: d.pciAddrs, numVfs: d.pfs.map((p) => p.numVfs), drivers: d.vfs.map((v) => v.driver) });
}

export async function currentMarkers(root: string, d: Discovery): Promise<string> {
  const m = await readChangeMarkers(
    root,
    d.pfs.map((p) => p.pciAddr),
    d.vfs.map((v) => v.pciAddr),
  );
  return JSON.stringify({ devices: m.devices, numVfs: m.numVfs.map((n) => n ?? 0), drivers: m.drivers });
}
