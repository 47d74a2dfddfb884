import { describe, expect, it } from 'vitest';
import { PoolSchema, type PoolInput } from '../../../src/schemas/device-pools';
import { firstMatchingPool, poolMatches } from '../../../node/device-plugin/selectors';
import { vf } from './vf';

const pool = (p: Partial<PoolInput>) => PoolSchema.parse({ resourceName: 'p', ...p });

describe('pool selectors', () => {
  it('match each field, OR within a selector, AND across selectors', () => {
    const v = vf('0000:81:10.3', { vfIndex: 3 });
    expect(poolMatches(pool({ selectors: { vendors: ['8086', '15b3'] } }), v)).toBe(true);
    expect(poolMatches(pool({ selectors: { vendors: ['15b3'] } }), v)).toBe(false);
    expect(poolMatches(pool({ selectors: { devices: ['0x10CA'] } }), v)).toBe(true);
    expect(poolMatches(pool({ selectors: { drivers: ['iavf'] } }), v)).toBe(false);
    expect(poolMatches(pool({ selectors: { pfNames: ['ens1f0#0-2,3'] } }), v)).toBe(true);
    expect(poolMatches(pool({ selectors: { pfNames: ['ens1f0#0-2'] } }), v)).toBe(false);
    expect(poolMatches(pool({ selectors: { pfNames: ['ens1f1'] } }), v)).toBe(false);
    expect(poolMatches(pool({ selectors: { rootDevices: ['0000:81:00.0#3'] } }), v)).toBe(true);
    expect(poolMatches(pool({ selectors: { rootDevices: ['0000:82:00.0'] } }), v)).toBe(false);
    expect(poolMatches(pool({ selectors: { linkTypes: ['infiniband'] } }), v)).toBe(false);
    expect(poolMatches(pool({ selectors: { numaNodes: [1] } }), v)).toBe(false);
    expect(poolMatches(pool({ selectors: { vendors: ['8086'], numaNodes: [0], pfNames: ['ens1f0'] } }), v)).toBe(true);
    expect(poolMatches(pool({ selectors: { vendors: ['8086'], numaNodes: [1] } }), v)).toBe(false);
  });

  it('a VF in a pod netns (no host netdev) still matches by PF and index', () => {
    const moved = vf('0000:81:10.1', { vfIndex: 1, netdevs: [] });
    expect(poolMatches(pool({ selectors: { pfNames: ['ens1f0#1'] } }), moved)).toBe(true);
  });

  it('deviceType follows the driver: vfio pools take vfio-pci VFs, netdevice pools kernel drivers', () => {
    const kernel = vf('0000:81:10.0');
    const vfio = vf('0000:81:10.1', { driver: 'vfio-pci', userspace: true, netdevs: [] });
    const unbound = vf('0000:81:10.2', { driver: null });
    const net = pool({ deviceType: 'netdevice' });
    const dpdk = pool({ deviceType: 'vfio' });
    expect([net, dpdk].map((p) => poolMatches(p, kernel))).toEqual([true, false]);
    expect([net, dpdk].map((p) => poolMatches(p, vfio))).toEqual([false, true]);
    expect([net, dpdk].map((p) => poolMatches(p, unbound))).toEqual([false, false]);
  });

  it('first matching pool wins', () => {
    const pools = [pool({ resourceName: 'a', selectors: { pfNames: ['ens1f1'] } }), pool({ resourceName: 'b' }), pool({ resourceName: 'c' })];
    expect(firstMatchingPool(pools, vf('0000:81:10.0'))).toBe(1);
  });
});
