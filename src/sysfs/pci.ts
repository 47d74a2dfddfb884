/**
 * The one sysfs reader: the PF/VF model of SR-IOV devices, read from a root path so tests and the
 * demo can point it at a generated tree. Only cheap reads (readlink/readdir/small files); the CNI
 * calls readVf on every ADD.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CniCode, UnderlayError } from '../errors';

export const PCI_ADDR_RE = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

/** Drivers that take the device away from the kernel network stack (DPDK and friends). */
const USERSPACE_DRIVERS = new Set(['vfio-pci', 'uio_pci_generic', 'igb_uio']);

export interface VfDevice {
  pciAddr: string;
  vendor: string | null; // "8086"
  device: string | null; // "10ca"
  driver: string | null;
  numaNode: number | null;
  iommuGroup: number | null;
  pfPciAddr: string;
  pfNetdev: string | null;
  vfIndex: number;
  /** Entries of <vf>/net/ as seen from the host netns (empty when the netdev is in a pod netns). */
  netdevs: string[];
  /** Bound to a userspace driver: there is no netdev to move. */
  userspace: boolean;
}

export interface PfDevice {
  pciAddr: string;
  vendor: string | null;
  device: string | null;
  driver: string | null;
  numaNode: number | null;
  netdevs: string[];
  numVfs: number;
  totalVfs: number;
}

export function sysfsDevicePath(root: string, pciAddr: string): string {
  return path.join(root, 'bus/pci/devices', pciAddr);
}

function readTrimmed(p: string): string | null {
  try {
    return fs.readFileSync(p, 'utf8').trim();
  } catch {
    return null;
  }
}

function readIntFile(p: string): number | null {
  const s = readTrimmed(p);
  if (s === null || s === '') return null;
  const n = Number.parseInt(s, 10);
  return Number.isFinite(n) ? n : null;
}

function linkBase(p: string): string | null {
  try {
    return path.basename(fs.readlinkSync(p));
  } catch {
    return null;
  }
}

function listDir(p: string): string[] {
  try {
    return fs.readdirSync(p).sort();
  } catch {
    return [];
  }
}

/** "0x8086\n" -> "8086" */
function readHexId(p: string): string | null {
  const s = readTrimmed(p);
  return s ? s.replace(/^0x/i, '').toLowerCase() : null;
}

function numa(devPath: string): number | null {
  const n = readIntFile(path.join(devPath, 'numa_node'));
  return n === null || n < 0 ? null : n;
}

/** Index of the VF under its PF: the N of the PF's virtfnN link that points at the VF. */
function findVfIndex(pfPath: string, vfAddr: string): number {
  for (const entry of listDir(pfPath)) {
    if (!entry.startsWith('virtfn')) continue;
    if (linkBase(path.join(pfPath, entry)) === vfAddr) return Number.parseInt(entry.slice(6), 10);
  }
  return -1;
}

export function readVf(root: string, pciAddr: string): VfDevice {
  return readVfAt(root, pciAddr, undefined);
}

/** readVf when the caller already knows the VF index (listVfs), saving a scan of the PF's links. */
function readVfAt(root: string, pciAddr: string, knownIndex: number | undefined): VfDevice {
  if (!PCI_ADDR_RE.test(pciAddr)) {
    throw new UnderlayError(CniCode.InvalidNetworkConfig, `deviceID "${pciAddr}" is not a PCI address (expected dddd:bb:dd.f)`);
  }
  const dev = sysfsDevicePath(root, pciAddr);
  if (!fs.existsSync(dev)) {
    throw new UnderlayError(CniCode.DeviceNotFound, `PCI device ${pciAddr} not found under ${path.join(root, 'bus/pci/devices')}`);
  }
  const pfPciAddr = linkBase(path.join(dev, 'physfn'));
  if (!pfPciAddr) {
    throw new UnderlayError(CniCode.DeviceNotFound, `PCI device ${pciAddr} is not an SR-IOV VF (no physfn link)`);
  }
  const pfPath = sysfsDevicePath(root, pfPciAddr);
  const vfIndex = knownIndex ?? findVfIndex(pfPath, pciAddr);
  if (vfIndex < 0) {
    throw new UnderlayError(CniCode.DeviceNotFound, `VF ${pciAddr}: its PF ${pfPciAddr} has no virtfn link pointing back at it`);
  }
  const driver = linkBase(path.join(dev, 'driver'));
  const group = linkBase(path.join(dev, 'iommu_group'));
  return {
    pciAddr,
    vendor: readHexId(path.join(dev, 'vendor')),
    device: readHexId(path.join(dev, 'device')),
    driver,
    numaNode: numa(dev),
    iommuGroup: group === null ? null : Number.parseInt(group, 10),
    pfPciAddr,
    pfNetdev: listDir(path.join(pfPath, 'net'))[0] ?? null,
    vfIndex,
    netdevs: listDir(path.join(dev, 'net')),
    userspace: driver !== null && USERSPACE_DRIVERS.has(driver),
  };
}

/** Every SR-IOV capable PF (has sriov_totalvfs) under the root. */
export function listPfs(root: string): PfDevice[] {
  const base = path.join(root, 'bus/pci/devices');
  const out: PfDevice[] = [];
  for (const addr of listDir(base)) {
    const dev = path.join(base, addr);
    const totalVfs = readIntFile(path.join(dev, 'sriov_totalvfs'));
    if (totalVfs === null) continue;
    out.push({
      pciAddr: addr,
      vendor: readHexId(path.join(dev, 'vendor')),
      device: readHexId(path.join(dev, 'device')),
      driver: linkBase(path.join(dev, 'driver')),
      numaNode: numa(dev),
      netdevs: listDir(path.join(dev, 'net')),
      numVfs: readIntFile(path.join(dev, 'sriov_numvfs')) ?? 0,
      totalVfs,
    });
  }
  return out;
}

/** The VFs of one PF, in VF-index order. */
export function listVfs(root: string, pfPciAddr: string): VfDevice[] {
  const pfPath = sysfsDevicePath(root, pfPciAddr);
  const indexed: Array<[number, string]> = [];
  for (const entry of listDir(pfPath)) {
    if (!entry.startsWith('virtfn')) continue;
    const vf = linkBase(path.join(pfPath, entry));
    if (vf) indexed.push([Number.parseInt(entry.slice(6), 10), vf]);
  }
  indexed.sort((a, b) => a[0] - b[0]);
  return indexed.map(([idx, vf]) => readVfAt(root, vf, idx));
}

/** Link type of a host netdev from class/net/<if>/type (1 = ethernet, 32 = infiniband). */
export function netdevLinkType(root: string, ifname: string): 'ether' | 'infiniband' | 'other' | null {
  const t = readIntFile(path.join(root, 'class/net', ifname, 'type'));
  if (t === null) return null;
  return t === 1 ? 'ether' : t === 32 ? 'infiniband' : 'other';
}

/** Link speed of a host netdev in Mb/s (class/net/<if>/speed); null when down or not reported (-1). */
export function netdevSpeedMbps(root: string, ifname: string): number | null {
  const v = readIntFile(path.join(root, 'class/net', ifname, 'speed'));
  return v !== null && v > 0 ? v : null;
}

/**
 * How many NUMA nodes the host has (devices/system/node/nodeN), 0 when the tree does not say.
 * A device whose numa_node is -1 on a one-node host is on node 0.
 */
export function numaNodeCount(root: string): number {
  return listDir(path.join(root, 'devices/system/node')).filter((e) => /^node\d+$/.test(e)).length;
}

/** Every PCI device address under the root, sorted. */
export function listPciAddrs(root: string): string[] {
  return listDir(path.join(root, 'bus/pci/devices'));
}

/** What can change on a PCI SR-IOV setup without any netlink event. */
export interface ChangeMarkers {
  devices: string[];
  numVfs: Array<number | null>;
  drivers: Array<string | null>;
}

/**
 * Read the change markers of known PFs and VFs asynchronously (a daemon rescans these often and
 * must not block its event loop on ~1 read per VF): the device list, each PF's sriov_numvfs and
 * each VF's driver. Same values listPfs/readVf report, so the two can be compared.
 */
export async function readChangeMarkers(root: string, pfAddrs: readonly string[], vfAddrs: readonly string[]): Promise<ChangeMarkers> {
  const base = path.join(root, 'bus/pci/devices');
  const [devices, numVfs, drivers] = await Promise.all([
    fs.promises.readdir(base).then((e) => e.sort(), () => [] as string[]),
    Promise.all(
      pfAddrs.map((a) =>
        fs.promises.readFile(path.join(base, a, 'sriov_numvfs'), 'utf8').then(
          (s) => (s.trim() === '' ? null : Number.parseInt(s, 10)),
          () => null,
        ),
      ),
    ),
    Promise.all(vfAddrs.map((a) => fs.promises.readlink(path.join(base, a, 'driver')).then((l) => path.basename(l), () => null))),
  ]);
  return { devices, numVfs, drivers };
}

/** Is this PCI driver registered (its module loaded)? bus/pci/drivers/<name> exists. */
export function pciDriverLoaded(root: string, driver: string): boolean {
  return fs.existsSync(path.join(root, 'bus/pci/drivers', driver));
}

/**
 * vfio's no-IOMMU mode (module/vfio/parameters/enable_unsafe_noiommu_mode = Y): vfio-pci then binds
 * devices that have no IOMMU group, without DMA isolation.
 */
export function vfioNoIommuMode(root: string): boolean {
  return readTrimmed(path.join(root, 'module/vfio/parameters/enable_unsafe_noiommu_mode')) === 'Y';
}

/** A PF's sriov_numvfs now, or null when it cannot be read. */
export function readNumVfs(root: string, pfPciAddr: string): number | null {
  return readIntFile(path.join(sysfsDevicePath(root, pfPciAddr), 'sriov_numvfs'));
}
