import { describe, expect, it } from 'vitest';
import type { PoolDevice } from '../../../node/device-plugin/pool-state';
import { preferredAllocation } from '../../../node/device-plugin/preferred';
import { vf } from './vf';

/** 2 NUMA nodes; node 0 has PFs a (3 VFs) and b (2 VFs); node 1 has PF c (4 VFs). */
function devices(unhealthy: string[] = []): Map<string, PoolDevice> {
  const m = new Map<string, PoolDevice>();
  const add = (pf: string, bus: string, n: number, node: number) => {
    for (let i = 0; i < n; i++) {
      const id = `0000:${bus}:10.${i}`;
      const healthy = !unhealthy.includes(id);
      m.set(id, { vf: vf(id, { pfPciAddr: pf, topologyNode: node, numaNode: node, vfIndex: i }), healthy, reason: healthy ? null : 'down', draining: false });
    }
  };
  add('0000:0a:00.0', '0a', 3, 0);
  add('0000:0b:00.0', '0b', 2, 0);
  add('0000:0c:00.0', '0c', 4, 1);
  return m;
}
const all = [...devices().keys()];
const pfOf = (id: string) => id.slice(5, 7);

describe('GetPreferredAllocation', () => {
  it('always includes mustInclude and stays on its NUMA node', () => {
    const got = preferredAllocation(all, ['0000:0c:10.3'], 3, devices(), 'spread');
    expect(got).toHaveLength(3);
    expect(got[0]).toBe('0000:0c:10.3');
    expect(got.every((id) => pfOf(id) === '0c')).toBe(true);
  });

  it('spread: one NUMA node that fits, round-robin over its PFs', () => {
    const got = preferredAllocation(all, [], 4, devices(), 'spread');
    // node 1 has 4 on one PF, node 0 has 5 over two PFs: spread takes the roomiest node and alternates PFs.
    expect(got.map(pfOf).sort()).toEqual(['0a', '0a', '0b', '0b']);
  });

  it('pack: tightest NUMA node and PF that fit, PFs in use first, leaving the others whole', () => {
    expect(preferredAllocation(all, [], 2, devices(), 'pack').map(pfOf)).toEqual(['0c', '0c']);
    expect(preferredAllocation(all, [], 5, devices(), 'pack').map(pfOf)).toEqual(['0a', '0a', '0a', '0b', '0b']);
    expect(preferredAllocation(all, ['0000:0a:10.1'], 3, devices(), 'pack').map(pfOf)).toEqual(['0a', '0a', '0a']);
    expect(preferredAllocation(all, ['0000:0b:10.0'], 2, devices(), 'pack')).toEqual(['0000:0b:10.0', '0000:0b:10.1']);
  });

  it('crosses NUMA nodes only when one node cannot supply the request', () => {
    const got = preferredAllocation(all, [], 7, devices(), 'spread');
    expect(got).toHaveLength(7);
    expect(got.filter((id) => pfOf(id) !== '0c')).toHaveLength(5);
  });

  it('prefers healthy devices and only offers available ones', () => {
    const devs = devices(['0000:0b:10.0', '0000:0b:10.1']);
    const available = ['0000:0b:10.0', '0000:0b:10.1', '0000:0a:10.0'];
    expect(preferredAllocation(available, [], 2, devs, 'spread')).toEqual(['0000:0a:10.0', '0000:0b:10.0']);
  });
});

describe('GetPreferredAllocation properties', () => {
  it('answers allocation_size IDs from the available ones, mustInclude first, no duplicates', async () => {
    const fc = await import('fast-check');
    const devs = devices(['0000:0c:10.1']);
    fc.assert(
      fc.property(fc.subarray(all, { minLength: 1 }), fc.nat(), fc.nat(), (available, a, b) => {
        const size = 1 + (a % available.length);
        const must = available.slice(0, b % (size + 1));
        const got = preferredAllocation(available, must, size, devs, 'spread');
        const got2 = preferredAllocation(available, must, size, devs, 'pack');
        for (const g of [got, got2]) {
          expect(g).toHaveLength(size);
          expect(new Set(g).size).toBe(size);
          expect(g.slice(0, must.length)).toEqual(must);
          expect(g.every((id) => available.includes(id))).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
