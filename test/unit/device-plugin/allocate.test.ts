import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { containerAllocation, deviceInfoPath, resourceEnvName } from '../../../node/device-plugin/allocate';
import { PoolSchema } from '../../../src/schemas/device-pools';
import { vf } from './vf';

describe('Allocate answer', () => {
  it('names the env var from prefix and resource, upper-case, non-alphanumerics as _', () => {
    expect(resourceEnvName(PoolSchema.parse({ resourceName: 'intel_sriov.net-a', resourcePrefix: 'example.com' }))).toBe('PCIDEVICE_EXAMPLE_COM_INTEL_SRIOV_NET_A');
  });

  it('netdevice: PCI list, _INFO JSON and one device-info file per VF', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpa-'));
    try {
      const pool = PoolSchema.parse({ resourceName: 'net', resourcePrefix: 'example.com' });
      const vfs = [vf('0000:81:10.0'), vf('0000:81:10.1', { vfIndex: 1, netdevs: [] })];
      const res = containerAllocation(pool, vfs, dir);
      expect(res.envs.PCIDEVICE_EXAMPLE_COM_NET).toBe('0000:81:10.0,0000:81:10.1');
      const info = JSON.parse(res.envs.PCIDEVICE_EXAMPLE_COM_NET_INFO!);
      expect(info['0000:81:10.1']).toEqual({ generic: { deviceID: '0000:81:10.1', pfPciAddress: '0000:81:00.0', vfIndex: 1 }, netdevice: { pfName: 'ens1f0', netdev: null } });
      expect(res.devices).toEqual([]);
      const file = deviceInfoPath(dir, 'example.com/net', '0000:81:10.1');
      expect(path.basename(file)).toBe('example.com-net-0000:81:10.1-device.json');
      expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual({ type: 'pci', version: '1.1.0', pci: { 'pci-address': '0000:81:10.1', 'pf-pci-address': '0000:81:00.0' } });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('vfio: /dev/vfio/vfio plus each IOMMU group once', () => {
    const pool = PoolSchema.parse({ resourceName: 'dpdk', deviceType: 'vfio' });
    const vfs = [vf('0000:81:10.0', { iommuGroup: 41 }), vf('0000:81:10.1', { iommuGroup: 40 }), vf('0000:81:10.2', { iommuGroup: 41 })];
    const res = containerAllocation(pool, vfs, null);
    expect(res.devices.map((d) => d.host_path)).toEqual(['/dev/vfio/vfio', '/dev/vfio/40', '/dev/vfio/41']);
    expect(res.devices.every((d) => d.permissions === 'rw' && d.container_path === d.host_path)).toBe(true);
    expect(JSON.parse(res.envs.PCIDEVICE_SRIOV_UNDERLAY_IO_DPDK_INFO!)['0000:81:10.1'].vfio).toEqual({ mount: '/dev/vfio/vfio', 'dev-mount': '/dev/vfio/40' });
    expect(() => containerAllocation(pool, [vf('0000:81:10.3', { iommuGroup: null })], null)).toThrow(/0000:81:10.3 has no IOMMU group/);
  });
});
