/**
 * The Allocate answer for one container: env with the PCI addresses, an _INFO JSON, a Network
 * Plumbing WG device-info file per VF, and vfio device nodes for vfio pools.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Pool } from '../../src/schemas/device-pools';
import type { ContainerAllocateResponseMsg, DeviceSpecMsg } from '../../src/proto';
import type { VfRecord } from './discovery';
import { fullResourceName } from './selectors';

export const DEFAULT_DEVINFO_DIR = '/var/run/k8s.cni.cncf.io/devinfo/dp';
const DEVINFO_VERSION = '1.1.0';

const envPart = (s: string) => s.toUpperCase().replace(/[^A-Z0-9]/g, '_');

/** PCIDEVICE_<PREFIX>_<RESOURCE>, upper-case, every non-alphanumeric as "_". */
export function resourceEnvName(pool: Pool): string {
  return `PCIDEVICE_${envPart(pool.resourcePrefix)}_${envPart(pool.resourceName)}`;
}

/** Where the device-info file for one VF goes (the NPWG device-info spec's naming). */
export function deviceInfoPath(dir: string, resource: string, pciAddr: string): string {
  return path.join(dir, `${resource.replaceAll('/', '-')}-${pciAddr.replaceAll('/', '-')}-device.json`);
}

export function deviceInfo(vf: VfRecord): object {
  return { type: 'pci', version: DEVINFO_VERSION, pci: { 'pci-address': vf.pciAddr, 'pf-pci-address': vf.pfPciAddr } };
}

/** Write the file atomically (temp + rename) so the CNI never reads half of it. */
export function writeDeviceInfo(dir: string, resource: string, vf: VfRecord): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = deviceInfoPath(dir, resource, vf.pciAddr);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(deviceInfo(vf)), { mode: 0o444 });
  fs.renameSync(tmp, file);
  return file;
}

function vfioSpecs(vfs: readonly VfRecord[]): DeviceSpecMsg[] {
  const specs: DeviceSpecMsg[] = [{ container_path: '/dev/vfio/vfio', host_path: '/dev/vfio/vfio', permissions: 'rw' }];
  const groups = new Set<number>();
  for (const vf of vfs) if (vf.iommuGroup !== null) groups.add(vf.iommuGroup);
  for (const g of [...groups].sort((a, b) => a - b)) specs.push({ container_path: `/dev/vfio/${g}`, host_path: `/dev/vfio/${g}`, permissions: 'rw' });
  return specs;
}

function infoEntry(pool: Pool, vf: VfRecord): object {
  const generic = { deviceID: vf.pciAddr, pfPciAddress: vf.pfPciAddr, vfIndex: vf.vfIndex };
  if (pool.deviceType === 'vfio') {
    return { generic, vfio: { mount: '/dev/vfio/vfio', 'dev-mount': vf.iommuGroup === null ? null : `/dev/vfio/${vf.iommuGroup}` } };
  }
  return { generic, netdevice: { pfName: vf.pfNetdev, netdev: vf.netdevs[0] ?? null } };
}

/**
 * Build one container's answer. Throws if a vfio VF has no IOMMU group (it could not be used).
 * devinfoDir null skips the device-info files.
 */
export function containerAllocation(pool: Pool, vfs: readonly VfRecord[], devinfoDir: string | null): ContainerAllocateResponseMsg {
  const resource = fullResourceName(pool);
  const envName = resourceEnvName(pool);
  if (pool.deviceType === 'vfio') {
    const noGroup = vfs.find((v) => v.iommuGroup === null);
    if (noGroup) throw new Error(`VF ${noGroup.pciAddr} has no IOMMU group; vfio cannot hand it out`);
  }
  const info: Record<string, object> = {};
  for (const vf of vfs) info[vf.pciAddr] = infoEntry(pool, vf);
  if (devinfoDir !== null) for (const vf of vfs) writeDeviceInfo(devinfoDir, resource, vf);
  return {
    envs: { [envName]: vfs.map((v) => v.pciAddr).join(','), [`${envName}_INFO`]: JSON.stringify(info) },
    mounts: [],
    devices: pool.deviceType === 'vfio' ? vfioSpecs(vfs) : [],
    annotations: {},
    cdi_devices: [],
  };
}
