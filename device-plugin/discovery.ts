/**
 * Discovery: every VF of every SR-IOV PF under the sysfs root, with what the pool selectors and
 * Allocate need. Reads go through src/sysfs only. VFs are keyed by PCI address: a VF whose netdev
 * moved into a pod netns has no host netdev but is still the same device.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listPfs, listVfs, netdevLinkType, numaNodeCount, type PfDevice, type VfDevice } from '../src/sysfs/pci';

export type LinkType = 'ether' | 'infiniband' | 'other';

export interface VfRecord extends VfDevice {
  /** Link type of the VF's own netdev, else of its PF's netdev (a moved VF keeps its PF's type). */
  linkType: LinkType | null;
  /** NUMA node for topology hints: the device's own, or 0 on a host with one node. */
  topologyNode: number | null;
}

export interface Discovery {
  pfs: PfDevice[];
  vfs: VfRecord[];
}

export function discover(root: string): Discovery {
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
  return { pfs, vfs };
}

/**
 * A cheap summary of what can change under us without a netlink event (sriov_numvfs, driver
 * binds, netdev names): compared between rescans so the full discovery runs only on change.
 * It reads the same sysfs entries the reader does, but only their names and link targets.
 */
export function sysfsFingerprint(root: string): string {
  const base = path.join(root, 'bus/pci/devices');
  const parts: string[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync(base);
  } catch {
    return '';
  }
  for (const addr of entries) {
    const dev = path.join(base, addr);
    let numVfs: string;
    try {
      numVfs = fs.readFileSync(path.join(dev, 'sriov_numvfs'), 'utf8').trim();
    } catch {
      continue; // not a PF
    }
    parts.push(`${addr}=${numVfs}`);
    for (const e of safeList(dev)) {
      if (!e.startsWith('virtfn')) continue;
      const vf = path.join(dev, e);
      parts.push(`${e}:${safeLink(vf)}:${safeLink(path.join(vf, 'driver'))}:${safeList(path.join(vf, 'net')).join(',')}`);
    }
  }
  return parts.join('|');
}

function safeList(p: string): string[] {
  try {
    return fs.readdirSync(p).sort();
  } catch {
    return [];
  }
}

function safeLink(p: string): string {
  try {
    return path.basename(fs.readlinkSync(p));
  } catch {
    return '-';
  }
}
