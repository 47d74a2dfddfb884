import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { socketName } from '../../../node/device-plugin/registration';
import { rebindVf, setNumVfs } from '../../fixtures/sysfs-tree';
import { harness, pfSpecs, type Harness } from './harness';

let h: Harness | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

const A = 'sriov-underlay.io/a';
const B = 'sriov-underlay.io/b';
const ids = (hh: Harness, r: string) => (hh.kubelet.devices(r) ?? []).map((d) => d.ID);
const health = (hh: Harness, r: string, id: string) => hh.kubelet.devices(r)?.find((d) => d.ID === id)?.health;

describe('rediscovery', () => {
  it('sriov_numvfs changes add and remove devices', async () => {
    const pfs = pfSpecs(1, 4);
    h = await harness({ mode: 'legacy', pfs, config: { resourceList: [{ resourceName: 'a' }] } });
    await h.startDaemon();
    const hh = h;
    await hh.kubelet.waitFor('4 VFs', () => ids(hh, A).length === 4);
    setNumVfs(hh.sysfs, pfs[0]!, 2);
    await hh.kubelet.waitFor('2 VFs after numvfs 4 -> 2', () => ids(hh, A).length === 2);
    expect(ids(hh, A)).toEqual(['0000:81:10.0', '0000:81:10.1']);
    setNumVfs(hh.sysfs, pfs[0]!, 4);
    await hh.kubelet.waitFor('4 VFs after numvfs 2 -> 4', () => ids(hh, A).length === 4);
  });

  it('a VF whose driver changes moves to the pool that now matches', async () => {
    h = await harness({
      mode: 'legacy',
      pfs: pfSpecs(1, 3),
      config: { resourceList: [{ resourceName: 'a' }, { resourceName: 'b', deviceType: 'vfio' }] },
    });
    await h.startDaemon();
    const hh = h;
    await hh.kubelet.waitFor('netdevice pool', () => ids(hh, A).length === 3 && hh.kubelet.devices(B) !== null);
    expect(ids(hh, B)).toEqual([]); // a pool matching nothing still serves an empty list
    rebindVf(hh.sysfs, '0000:81:10.1', 'vfio-pci', null);
    await hh.kubelet.waitFor('VF moved to the vfio pool', () => ids(hh, B).length === 1);
    expect(ids(hh, A)).toEqual(['0000:81:10.0', '0000:81:10.2']);
    rebindVf(hh.sysfs, '0000:81:10.1', null, null); // unbound: in no pool
    await hh.kubelet.waitFor('unbound VF leaves every pool', () => ids(hh, B).length === 0);
    expect(ids(hh, A)).toHaveLength(2);
  });

  it('a VF moved into a pod netns (no host netdev) stays in its pool', async () => {
    h = await harness({ mode: 'legacy', pfs: pfSpecs(1, 2), config: { resourceList: [{ resourceName: 'a', selectors: { pfNames: ['dpp0#1'], linkTypes: ['ether'] } }] } });
    await h.startDaemon();
    const hh = h;
    await hh.kubelet.waitFor('pool', () => ids(hh, A).length === 1);
    const before = hh.kubelet.plugins.get(A)!.updates;
    rebindVf(hh.sysfs, '0000:81:10.1', 'igbvf', null); // netdev gone from the host, driver unchanged
    await new Promise((r) => setTimeout(r, 400)); // several rescans
    expect(ids(hh, A)).toEqual(['0000:81:10.1']);
    expect(health(hh, A, '0000:81:10.1')).toBe('Healthy');
    expect(hh.kubelet.plugins.get(A)!.updates).toBe(before);
  });
});

describe('hot reload of the pools config', () => {
  it('reconciles on a ConfigMap symlink swap, without restarting', async () => {
    h = await harness({ mode: 'plugin-watcher', pfs: pfSpecs(1, 4), config: { resourceList: [{ resourceName: 'a' }] } });
    await h.startDaemon();
    const hh = h;
    await hh.kubelet.waitFor('a with 4', () => ids(hh, A).length === 4);
    const streamA = hh.kubelet.plugins.get(A)!;
    hh.config.write({ resourceList: [{ resourceName: 'a', selectors: { pfNames: ['dpp0#0-1'] } }, { resourceName: 'b', selectors: { pfNames: ['dpp0#2-3'] } }] });
    await hh.kubelet.waitFor('split into a and b', () => ids(hh, A).length === 2 && ids(hh, B).length === 2);
    expect(hh.kubelet.plugins.get(A)).toBe(streamA); // same stream, updated in place
    expect(streamA.streamOpen).toBe(true);
    hh.config.write({ resourceList: [{ resourceName: 'b' }] });
    await hh.kubelet.waitFor('a gone, b has all', () => ids(hh, B).length === 4 && !streamA.streamOpen);
    expect(hh.daemon.poolStates().map((p) => p.resource)).toEqual([B]);
  });

  it('keeps serving valid pools when others are malformed, and the old config when the file is broken', async () => {
    h = await harness({
      mode: 'legacy',
      pfs: pfSpecs(2, 2),
      config: { resourceList: [{ resourceName: 'a', selectors: { pfNames: ['dpp0'] } }, { resourceName: 'b', selectors: { pfNames: ['dpp1#1-0'] } }] },
    });
    await h.startDaemon();
    const hh = h;
    await hh.kubelet.waitFor('a', () => ids(hh, A).length === 2);
    expect(hh.kubelet.devices(B)).toBeNull();
    expect(hh.daemon.configProblems()).toEqual(['pool "b" (resourceList[1]): field "selectors.pfNames.0": "dpp1#1-0": range "1-0" ends before it starts']);
    hh.config.write('resourceList:\n  - resourceName: a\n    selectors: {pfNames: [dpp0\n');
    await hh.kubelet.waitFor('file error reported', () => hh.daemon.configProblems().some((p) => p.includes('not valid JSON or YAML')));
    expect(ids(hh, A)).toHaveLength(2);
    expect(hh.kubelet.plugins.get(A)?.streamOpen).toBe(true);
    hh.config.write({ resourceList: [{ resourceName: 'a', selectors: { pfNames: ['dpp0'] } }, { resourceName: 'b', selectors: { pfNames: ['dpp1#0-1'] } }] });
    await hh.kubelet.waitFor('fixed b serves', () => ids(hh, B).length === 2);
    expect(hh.daemon.configProblems()).toEqual([]);
  });

  it('never yanks an allocated VF: kept Unhealthy in its pool until kubelet frees it', async () => {
    h = await harness({ mode: 'legacy', pfs: pfSpecs(1, 2), config: { resourceList: [{ resourceName: 'a' }] } });
    await h.startDaemon();
    const hh = h;
    await hh.kubelet.waitFor('a', () => ids(hh, A).length === 2);
    const { podUid } = await hh.kubelet.allocate(A, ['0000:81:10.0']);
    hh.config.write({ resourceList: [{ resourceName: 'b' }] });
    await hh.kubelet.waitFor('free VF moved to b', () => ids(hh, B).length === 1);
    expect(ids(hh, B)).toEqual(['0000:81:10.1']);
    expect(hh.kubelet.devices(A)).toEqual([{ ID: '0000:81:10.0', health: 'Unhealthy', topology: { nodes: [{ ID: 0 }] } }]);
    await expect(hh.kubelet.allocate(A, ['0000:81:10.0'])).rejects.toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: 'Allocate: device "0000:81:10.0" of pool sriov-underlay.io/a is Unhealthy: pool removed from the config while the device is allocated',
    });
    hh.kubelet.release(podUid);
    await hh.kubelet.waitFor('freed VF joins b, a goes away', () => ids(hh, B).length === 2 && hh.daemon.poolStates().length === 1);
  });
});

describe('metrics', () => {
  it('exports per-pool counts and registration state', async () => {
    h = await harness({ mode: 'legacy', pfs: pfSpecs(1, 3), config: { resourceList: [{ resourceName: 'a' }] } });
    const d = await h.startDaemon();
    const hh = h;
    await hh.kubelet.waitFor('a', () => ids(hh, A).length === 3);
    await hh.kubelet.allocate(A, ['0000:81:10.2']);
    await expect(hh.kubelet.allocate(A, ['0000:99:10.0'])).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await hh.kubelet.waitFor('registered', () => d.pools()[0]?.registered === true);
    const { server, port } = await d.metrics.listen('127.0.0.1:0', (await import('../../../src/log')).silentLogger());
    try {
      const body = await new Promise<string>((resolve, reject) =>
        http.get(`http://127.0.0.1:${port}/metrics`, (res) => {
          let s = '';
          res.on('data', (c: Buffer) => (s += c.toString()));
          res.on('end', () => resolve(s));
        }).on('error', reject),
      );
      expect(body).toContain('sriov_underlay_dp_pool_devices{resource="sriov-underlay.io/a",state="total"} 3');
      expect(body).toContain('sriov_underlay_dp_pool_devices{resource="sriov-underlay.io/a",state="healthy"} 3');
      expect(body).toContain('sriov_underlay_dp_pool_devices{resource="sriov-underlay.io/a",state="allocated"} 1');
      expect(body).toContain('sriov_underlay_dp_pool_registered{resource="sriov-underlay.io/a"} 1');
      expect(body).toContain('sriov_underlay_dp_config_errors 0');
      expect(body).toContain('sriov_underlay_dp_allocate_total{resource="sriov-underlay.io/a",result="ok"} 1');
      expect(body).toContain('sriov_underlay_dp_allocate_total{resource="sriov-underlay.io/a",result="INVALID_ARGUMENT"} 1');
    } finally {
      server.close();
    }
  });
});

describe('a pool whose socket cannot be created', () => {
  it('does not stop the other pools, and is retried', async () => {
    h = await harness({
      mode: 'legacy',
      pfs: pfSpecs(2, 1),
      config: { resourceList: [{ resourceName: 'a', selectors: { pfNames: ['dpp0'] } }, { resourceName: 'b', selectors: { pfNames: ['dpp1'] } }] },
    });
    // A directory where b's socket must go: binding there fails until it is removed.
    const blocker = path.join(h.kubelet.devicePluginsDir, socketName(B));
    fs.mkdirSync(path.join(blocker, 'x'), { recursive: true });
    await h.startDaemon();
    const hh = h;
    await hh.kubelet.waitFor('a serving', () => ids(hh, A).length === 1);
    expect(hh.kubelet.devices(B)).toBeNull();
    fs.rmSync(blocker, { recursive: true });
    await hh.kubelet.waitFor('b serving after the retry', () => ids(hh, B).length === 1);
  });
});
