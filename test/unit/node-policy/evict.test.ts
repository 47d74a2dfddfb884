/**
 * The evictor (node/policy/evict.ts) fed hostile answers by the fake apiserver: a 429 or a 500 whose
 * text is huge ends up in the condition cut to a bounded quote, and backoff holds the retry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Evictor, type EvictNeed } from '../../../node/policy/evict';
import { NodeLease } from '../../../node/policy/lease';
import { loadKubeConfig, makeKubeClients } from '../../../src/kube/client';
import { silentLogger } from '../../../src/log';
import { startFakeKube, type FakeKube } from '../../fakes/kube-apiserver';

let fake: FakeKube;
beforeAll(async () => {
  fake = await startFakeKube();
});
afterAll(() => fake.close());

describe('evictor: hostile API answers', () => {
  it('a huge 429 / 500 message is quoted at most 512 characters; the retry waits for its backoff', async () => {
    const pod = fake.server.put({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' },
      spec: { nodeName: 'node-a', containers: [{ name: 'c', image: 'i' }] }, status: { phase: 'Running' },
    });
    const k = makeKubeClients(loadKubeConfig({ kubeconfig: fake.kubeconfigPath, env: {} }));
    const clock = { t: 0 };
    const lease = new NodeLease(k.coordination, { namespace: 'default', name: 'evict-lease', holder: 'node-a', durationS: 30, now: () => clock.t });
    const ev = new Evictor({ core: k.core, lease, nodeName: 'node-a', log: silentLogger(), now: () => clock.t, backoffMs: 1000 });
    const need: EvictNeed = { pf: 'ens1f0', held: { change: 'sriov_numvfs 4 -> 2', vfs: [{ pciAddr: '0000:01:10.1', holder: 'pod uid u', pod: { uid: pod.metadata.uid! } }] } };

    fake.server.failNext({ code: 429, reason: 'TooManyRequests', message: `The disruption budget ${'x'.repeat(300)}${'y'.repeat(100_000)}`, verb: 'create', resource: 'pods' });
    let out = (await ev.step([need])).outcomes.get('ens1f0')!;
    expect(out.reason).toBe('BlockedByPDB');
    expect(out.message.length).toBeLessThan(1000);
    expect(out.message).toContain('blocked by PDB (unnamed)');
    expect(fake.server.get('pods', 'default', 'p')).toBeDefined();

    // Within the backoff: no new request, the same outcome.
    const before = fake.server.requests().filter((r) => r.resource === 'pods/eviction').length;
    expect((await ev.step([need])).outcomes.get('ens1f0')).toEqual(out);
    expect(fake.server.requests().filter((r) => r.resource === 'pods/eviction')).toHaveLength(before);

    clock.t += 1000;
    fake.server.failNext({ code: 500, message: 'z'.repeat(100_000), verb: 'create', resource: 'pods' });
    out = (await ev.step([need])).outcomes.get('ens1f0')!;
    expect(out).toMatchObject({ reason: 'EvictionFailed' });
    expect(out.message.length).toBeLessThan(1000);

    clock.t += 2000; // the backoff doubled
    out = (await ev.step([need])).outcomes.get('ens1f0')!;
    expect(out).toEqual({ reason: 'Evicting', message: 'pod default/p evicted, waiting for it to go and free its VFs' });
    expect(fake.server.get('pods', 'default', 'p')?.metadata.deletionTimestamp).toBeDefined();
    await ev.stop();
  });
});
