// SriovNodeState publishing: the counts mapping, and the writes against the fake apiserver.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeStatePublisher, nodePoolStates } from '../../../node/agent/node-state';
import { ClusterObjects, loadKubeConfig, makeKubeClients, SRIOV_NODE_STATES } from '../../../src/kube/client';
import { nodeStateStatusSchema, type SriovNodeState } from '../../../src/schemas/node-state';
import { netdevSpeedMbps } from '../../../src/sysfs/pci';
import { startFakeKube, type FakeKube } from '../../fakes/kube-apiserver';

let fake: FakeKube;
let states: ClusterObjects<SriovNodeState>;
let root: string;
beforeAll(async () => {
  fake = await startFakeKube();
  states = new ClusterObjects<SriovNodeState>(makeKubeClients(loadKubeConfig({ kubeconfig: fake.kubeconfigPath, env: {} })).custom, SRIOV_NODE_STATES);
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'ipns-'));
  for (const [pf, speed] of [['ens1f0', '25000'], ['ens1f1', '-1']] as const) {
    fs.mkdirSync(path.join(root, 'class/net', pf), { recursive: true });
    fs.writeFileSync(path.join(root, 'class/net', pf, 'speed'), `${speed}\n`);
  }
});
afterAll(async () => {
  await fake.close();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('node state', () => {
  it('maps the device plugin counts and PF speeds (a down PF has none)', () => {
    const pools = nodePoolStates(
      [{ resource: 'sriov-underlay.io/pool-a', total: 8, healthy: 6, allocated: 3 }],
      () => ['ens1f1', 'ens1f0', 'ens1f0'],
      (pf) => netdevSpeedMbps(root, pf),
    );
    expect(pools).toEqual([
      { resourceName: 'sriov-underlay.io/pool-a', capacity: 8, allocatable: 6, allocated: 3, unhealthy: 2, pfs: [{ name: 'ens1f0', linkSpeedMbps: 25000 }, { name: 'ens1f1', linkSpeedMbps: null }] },
    ]);
  });

  it('creates the node’s object, then replaces it conditionally; concurrent updates coalesce to the latest', async () => {
    const pub = new NodeStatePublisher(states, 'node-x', undefined, () => new Date('2026-01-01T00:00:00Z'));
    const mk = (allocated: number) => [{ resourceName: 'r/a', capacity: 4, allocatable: 4, allocated, unhealthy: 0, pfs: [] }];
    await pub.update(mk(1));
    fake.server.resetCounters();
    await Promise.all([pub.update(mk(2)), pub.update(mk(3)), pub.update(mk(4))]);
    const got = await states.get('node-x');
    const st = nodeStateStatusSchema.parse(got!.status);
    expect(st.pools[0]!.allocated).toBe(4);
    // One write in flight at a time: at most one for the first call and one for the coalesced rest.
    expect(fake.server.counters().writesByResource.sriovnodestates?.update ?? 0).toBeLessThanOrEqual(2);
  });
});

describe('node state: the node policy part', () => {
  it('updatePolicy writes the policy beside the last pools, and a pools update keeps the policy', async () => {
    const pub = new NodeStatePublisher(states, 'node-pol');
    const pools = [{ resourceName: 'sriov-underlay.io/pool-a', capacity: 2, allocatable: 2, allocated: 0, unhealthy: 0, pfs: [] }];
    await pub.update(pools);
    const policy = {
      source: 'ConfigMap sriov-underlay/node-policy key "policy.yaml"', appliedAt: '2026-11-30T00:00:00.000Z', rejected: [],
      pfs: [{
        name: 'ens1f0', pciAddr: '0000:81:00.0', entries: ['a'], externallyManaged: false, desired: { numVfs: 2, vfDrivers: [] },
        actual: { totalVfs: 8, numVfs: 2, mtu: 1500, linkUp: true, speedMbps: null, vfDrivers: ['igbvf', 'igbvf'] },
        conditions: [{ type: 'Applied' as const, status: 'True' as const, reason: 'Applied', message: 'sriov_numvfs 0 -> 2' }],
      }],
    };
    await pub.updatePolicy(policy);
    let st = nodeStateStatusSchema.parse((await states.get('node-pol'))?.status);
    expect(st.pools).toEqual(pools);
    expect(st.policy).toEqual(policy);
    await pub.update([]);
    st = nodeStateStatusSchema.parse((await states.get('node-pol'))?.status);
    expect(st.pools).toEqual([]);
    expect(st.policy).toEqual(policy);
  });
});
