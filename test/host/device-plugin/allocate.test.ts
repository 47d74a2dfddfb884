import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { rebindVf } from '../../fixtures/sysfs-tree';
import { harness, pfSpecs, type Harness } from './harness';

let h: Harness | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

const NET = 'example.com/net';

async function setup(): Promise<Harness> {
  const pfs = pfSpecs(2, 4, { numa: [0, 1] });
  h = await harness({
    mode: 'legacy',
    pfs,
    config: {
      resourceList: [
        { resourceName: 'net', resourcePrefix: 'example.com', selectors: { drivers: ['igbvf'] } },
        { resourceName: 'dpdk', resourcePrefix: 'example.com', deviceType: 'vfio', placement: 'pack' },
      ],
    },
  });
  // Two VFs of dpp1 on vfio-pci, before the daemon starts.
  rebindVf(h.sysfs, '0000:82:10.2', 'vfio-pci', null);
  rebindVf(h.sysfs, '0000:82:10.3', 'vfio-pci', null);
  await h.startDaemon();
  await h.kubelet.waitFor('pools streaming', () => h!.kubelet.devices(NET)?.length === 6 && h!.kubelet.devices('example.com/dpdk')?.length === 2);
  return h;
}

describe('Allocate and GetPreferredAllocation through kubelet', () => {
  it('ListAndWatch carries NUMA topology per device', async () => {
    const { kubelet } = await setup();
    const byId = new Map(kubelet.devices(NET)!.map((d) => [d.ID, d.topology?.nodes.map((n) => n.ID)]));
    expect(byId.get('0000:81:10.0')).toEqual([0]);
    expect(byId.get('0000:82:10.1')).toEqual([1]);
  });

  it('netdevice: env, _INFO and device-info files', async () => {
    const { kubelet, devinfo } = await setup();
    const { response } = await kubelet.allocate(NET, ['0000:81:10.1', '0000:82:10.0']);
    const c = response.container_responses[0]!;
    expect(c.envs.PCIDEVICE_EXAMPLE_COM_NET).toBe('0000:81:10.1,0000:82:10.0');
    expect(Object.keys(JSON.parse(c.envs.PCIDEVICE_EXAMPLE_COM_NET_INFO!))).toEqual(['0000:81:10.1', '0000:82:10.0']);
    expect(c.devices).toEqual([]);
    const file = path.join(devinfo, 'example.com-net-0000:82:10.0-device.json');
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).pci).toEqual({ 'pci-address': '0000:82:10.0', 'pf-pci-address': '0000:82:00.0' });
  });

  it('vfio: device nodes for the container', async () => {
    const { kubelet } = await setup();
    const { response } = await kubelet.allocate('example.com/dpdk', ['0000:82:10.3']);
    const c = response.container_responses[0]!;
    // The fixture puts VF j of a PF in IOMMU group 100 + j.
    expect(c.devices.map((d) => d.host_path)).toEqual(['/dev/vfio/vfio', '/dev/vfio/103']);
    expect(c.envs.PCIDEVICE_EXAMPLE_COM_DPDK).toBe('0000:82:10.3');
  });

  it('unknown device IDs and malformed requests get INVALID_ARGUMENT naming the problem', async () => {
    const { kubelet } = await setup();
    await expect(kubelet.allocate(NET, ['0000:82:10.3'])).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'Allocate request: field "container_requests.0.devices_ids.0": device "0000:82:10.3" is not in pool example.com/net',
    });
    await expect(kubelet.rawAllocate(NET, { container_requests: [{ devices_ids: [] }] })).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'Allocate request: field "container_requests.0.devices_ids": no device IDs requested',
    });
    await expect(kubelet.rawPreferred(NET, { container_requests: [{ available_deviceIDs: ['0000:81:10.0'], must_include_deviceIDs: [], allocation_size: 0 }] })).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'GetPreferredAllocation request: field "container_requests.0.allocation_size": allocation_size must be at least 1',
    });
    // Nothing was written for the failed calls.
    expect(fs.existsSync(path.join(h!.devinfo, 'example.com-net-0000:82:10.3-device.json'))).toBe(false);
  });

  it('GetPreferredAllocation keeps to one NUMA node and honours mustInclude', async () => {
    const { kubelet } = await setup();
    const available = kubelet.healthyIds(NET);
    const got = await kubelet.preferred(NET, available, ['0000:82:10.1'], 2);
    expect(got).toEqual(['0000:82:10.1', '0000:82:10.0']);
    const three = await kubelet.preferred(NET, available, [], 3);
    expect(new Set(three.map((id) => id.slice(5, 7))).size).toBe(1);
  });
});
