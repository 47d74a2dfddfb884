// The reconcile loop against the fake apiserver, with an injected clock instead of sleeping.
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CniCode, UnderlayError } from '../../../src/errors';
import { claimIp, claimName, type ClaimRequest, type IPClaim } from '../../../src/ipam/claims';
import { listingView, PoolAllocator } from '../../../src/ipam/pool-allocator';
import { isTombstone, releaseClaim } from '../../../src/ipam/pool-release';
import { ClusterReader, Reconciler, type ReconcilerOptions } from '../../../src/ipam/reconcile';
import { loadKubeConfig } from '../../../src/kube/client';
import { startFakeKube, type FakeKube } from '../../fakes/kube-apiserver';
import { crdValidators } from '../../fixtures/crd-schema';
import { claimEnv, createPod, ensureNamespace, network, poolRequest, source, type ClaimEnv } from './helpers';

let fake: FakeKube;
let env: ClaimEnv;
let apps: k8s.AppsV1Api;
let t = Date.parse('2026-03-01T00:00:00Z');
const now = () => t;
const NS = 'rec';

beforeAll(async () => {
  fake = await startFakeKube({ validators: crdValidators() });
  env = claimEnv(fake, () => new Date(t));
  apps = loadKubeConfig({ kubeconfig: fake.kubeconfigPath, env: {} }).makeApiClient(k8s.AppsV1Api);
  await ensureNamespace(env.clients.core, NS);
});
afterAll(() => fake.close());
beforeEach(async () => {
  t = Date.parse('2026-03-01T00:00:00Z');
  for (const c of (await env.claims.list()).items) fake.server.remove('ipclaims', undefined, c.metadata!.name!);
  for (const p of (await env.clients.core.listNamespacedPod({ namespace: NS })).items) fake.server.remove('pods', NS, p.metadata!.name!);
  for (const n of ['node-a', 'node-b']) if (!fake.server.get('nodes', undefined, n)) await env.clients.core.createNode({ body: { metadata: { name: n } } });
});

const reconciler = (extra: Partial<ReconcilerOptions> = {}) =>
  new Reconciler({ claims: env.claims, reader: new ClusterReader(env.clients.core, apps), nodeName: 'node-a', now, scanAllEvery: 1, ...extra });

function fixed(name: string, uid: string, ip: string, node = 'node-a', key = name): ClaimRequest {
  return { network: 'net', ip, kind: 'fixed', pod: { namespace: NS, name, uid }, node, containerID: `c-${uid}`, interface: 'net1', source: source(key, NS) };
}

const claimOf = (ip: string) => env.claims.get(claimName('net', ip));

describe('reconcile', () => {
  it('releases claims of pods on a deleted node after two observations spanning the grace period', async () => {
    const gone = await createPod(env.clients.core, NS, 'lost', 'node-b');
    const stays = await createPod(env.clients.core, NS, 'stuck', 'node-b');
    const pool = network('net', { subnet: '10.20.0.0/24', ranges: ['10.20.0.10-10.20.0.250'] });
    const alloc = new PoolAllocator({ claims: env.claims, claimDeps: env.deps, view: listingView(env.claims) });
    const [lost] = await alloc.allocate(pool, poolRequest('lost', gone, 'node-b', NS));
    const [stuck] = await alloc.allocate(pool, poolRequest('stuck', stays, 'node-b', NS));
    // The node goes; the pod GC removes one pod, the other's object lingers (e.g. Terminating forever).
    fake.server.remove('nodes', undefined, 'node-b');
    fake.server.remove('pods', NS, 'lost');

    const r = reconciler();
    let res = await r.runOnce();
    expect(res.waiting.map((f) => f.pod.name)).toEqual(['lost']);
    expect(res.waiting[0]!.reason).toMatch(/pod rec\/lost uid .* is gone; node node-b no longer exists/);
    t += 59_000;
    res = await r.runOnce();
    expect(res.released).toEqual([]);
    t += 1_000;
    res = await r.runOnce();
    expect(res.released.map((f) => [f.pod.name, f.outcome])).toEqual([['lost', 'tombstoned']]);
    expect(isTombstone((await env.claims.get(lost!.metadata!.name!))!)).toBe(true);
    expect((await env.claims.get(stuck!.metadata!.name!))!.spec.pod.uid).toBe(stays);
  });

  it('keeps a StatefulSet pod’s claim across a restart and releases it after a scale-down below its ordinal', async () => {
    await apps.createNamespacedStatefulSet({
      namespace: NS,
      body: {
        metadata: { name: 'mysql' },
        spec: { replicas: 3, serviceName: 'mysql', selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i' }] } } },
      },
    });
    const uids: string[] = [];
    for (let i = 0; i < 3; i++) {
      uids.push(await createPod(env.clients.core, NS, `mysql-${i}`, 'node-a', 45));
      await claimIp(env.deps, fixed(`mysql-${i}`, uids[i]!, `10.20.1.${10 + i}`, 'node-a', 'mysql'));
    }
    const r = reconciler();
    await r.runOnce(); // sees mysql-2 alive: its grace is 45 s → 90 s
    fake.server.remove('pods', NS, 'mysql-2'); // restarting
    for (let i = 0; i < 3; i++) {
      const res = await r.runOnce();
      expect(res.waiting).toEqual([]);
      expect(res.released).toEqual([]);
      t += 100_000;
    }
    await apps.patchNamespacedStatefulSet({ namespace: NS, name: 'mysql', body: { spec: { replicas: 2 } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    let res = await r.runOnce();
    expect(res.waiting.map((f) => f.reason)).toEqual([expect.stringMatching(/StatefulSet rec\/mysql was scaled down to 2 \(ordinal 2\)/)]);
    t += 89_000;
    expect((await r.runOnce()).released).toEqual([]);
    t += 1_000;
    res = await r.runOnce();
    expect(res.released.map((f) => [f.pod.name, f.outcome])).toEqual([['mysql-2', 'deleted']]);
    expect(await claimOf('10.20.1.12')).toBeUndefined();
    expect((await claimOf('10.20.1.11'))!.spec.pod.uid).toBe(uids[1]);
  });

  it('leaves a claim alone when its pod comes back during the grace period', async () => {
    const uid1 = await createPod(env.clients.core, NS, 'web');
    await claimIp(env.deps, fixed('web', uid1, '10.20.2.10'));
    const r = reconciler();
    fake.server.remove('pods', NS, 'web');
    expect((await r.runOnce()).waiting).toHaveLength(1);
    t += 30_000;
    const uid2 = await createPod(env.clients.core, NS, 'web');
    await claimIp(env.deps, fixed('web', uid2, '10.20.2.10')); // hand-over: uid1 is gone
    t += 60_000;
    const res = await r.runOnce();
    expect(res.released).toEqual([]);
    expect(res.waiting).toEqual([]);
    expect((await claimOf('10.20.2.10'))!.spec.pod.uid).toBe(uid2);
  });

  it('a release whose claim changed since it was read fails its precondition and is skipped', async () => {
    const uid1 = await createPod(env.clients.core, NS, 'api');
    await claimIp(env.deps, fixed('api', uid1, '10.20.3.10'));
    fake.server.remove('pods', NS, 'api');
    const r = reconciler();
    await r.runOnce();
    t += 61_000;
    // The claim changes between the pass's list and its release: the fake fails the delete's
    // precondition exactly as a concurrent hand-over would.
    fake.server.failNext({ code: 409, verb: 'delete', resource: 'ipclaims' });
    const res = await r.runOnce();
    expect(res.released).toEqual([]);
    expect(res.skipped.map((s) => s.why)).toEqual([expect.stringMatching(/precondition failed/)]);
    expect(await claimOf('10.20.3.10')).toBeDefined();
  });

  it('report-only lists what it would release, with reasons, and writes nothing', async () => {
    const uid = await createPod(env.clients.core, NS, 'batch');
    await claimIp(env.deps, fixed('batch', uid, '10.20.4.10'));
    fake.server.remove('pods', NS, 'batch');
    const r = reconciler({ reportOnly: true });
    await r.runOnce();
    t += 61_000;
    fake.server.resetCounters();
    const res = await r.runOnce();
    expect(res.wouldRelease.map((f) => [f.ip, f.reason])).toEqual([['10.20.4.10', expect.stringMatching(/pod rec\/batch uid .* is gone; absent since 2026-03-01T00:00:00.000Z \(grace 60 s\)/)]]);
    expect(res.released).toEqual([]);
    expect(fake.server.counters().writeRequests).toBe(0);
    expect(await claimOf('10.20.4.10')).toBeDefined();
  });

  it('deletes tombstones once cooldown and retention have passed', async () => {
    const uid = await createPod(env.clients.core, NS, 'old');
    const pool = network('net', { subnet: '10.20.5.0/24', ranges: ['10.20.5.10-10.20.5.20'], cooldownSeconds: 100 });
    const [c] = await new PoolAllocator({ claims: env.claims, claimDeps: env.deps, view: listingView(env.claims) }).allocate(pool, poolRequest('old', uid, 'node-a', NS));
    await releaseClaim(env.claims, c!, new Date(t));
    const r = reconciler({ tombstoneRetentionSeconds: 50, cooldownFor: () => 100 });
    t += 149_000;
    expect((await r.runOnce()).released).toEqual([]);
    t += 1_000;
    expect((await r.runOnce()).released.map((f) => f.outcome)).toEqual(['expired']);
    expect(await env.claims.get(c!.metadata!.name!)).toBeUndefined();
  });

  it('GC race torture: pods deleted and re-created under the same names while reconcile runs', async () => {
    const N = 8;
    const ips = Array.from({ length: N }, (_, i) => `10.20.6.${10 + i}`);
    const live = new Map<string, string>(); // pod name → uid that has completed its claim
    for (let i = 0; i < N; i++) {
      const uid = await createPod(env.clients.core, NS, `db-${i}x`);
      await claimIp(env.deps, fixed(`db-${i}x`, uid, ips[i]!));
      live.set(`db-${i}x`, uid);
    }
    const r = reconciler({ graceFloorSeconds: 60 });
    let stop = false;
    let passes = 0;
    const loop = (async () => {
      while (!stop) {
        t += 35_000; // every second pass is past the grace period
        await r.runOnce();
        passes++;
      }
    })();
    const check = async () => {
      for (const [name, uid] of live) {
        const i = Number(/db-(\d+)x/.exec(name)![1]);
        const c: IPClaim | undefined = await claimOf(ips[i]!);
        const pod = fake.server.get('pods', NS, name) as { metadata: { uid: string } } | undefined;
        if (pod?.metadata.uid === uid) {
          expect(c, `${name} (${uid}) lost its claim`).toBeDefined();
          expect(c!.spec.pod.uid).toBe(uid);
        }
      }
    };
    for (let round = 0; round < 40; round++) {
      const i = round % N;
      const name = `db-${i}x`;
      fake.server.remove('pods', NS, name);
      live.delete(name);
      await check();
      if (round % 3 === 0) await new Promise((res) => setTimeout(res, 5)); // let reconcile see the gap
      const uid = await createPod(env.clients.core, NS, name);
      for (let attempt = 0; ; attempt++) {
        try {
          await claimIp(env.deps, fixed(name, uid, ips[i]!));
          break;
        } catch (e) {
          if (!(e instanceof UnderlayError && e.code === CniCode.TryAgainLater) || attempt > 20) throw e;
        }
      }
      live.set(name, uid);
      await check();
    }
    stop = true;
    await loop;
    // Let reconcile run well past every grace period: no live pod may lose its address.
    for (let k = 0; k < 4; k++) {
      t += 120_000;
      await r.runOnce();
    }
    await check();
    const all = (await env.claims.list()).items.filter((c) => c.spec.network === 'net' && ips.includes(c.spec.ip));
    expect(all).toHaveLength(N);
    expect(new Set(all.map((c) => c.spec.pod.uid))).toEqual(new Set(live.values()));
    expect(passes).toBeGreaterThan(5);
  });

  it('keeps the oldest of two reservations made for one registration and deletes the other', async () => {
    const mk = (ip: string) =>
      env.claims.create({
        metadata: { name: claimName('net', ip), labels: { 'sriov-underlay.io/network': 'net', 'sriov-underlay.io/claim-kind': 'reserved' } },
        spec: { network: 'net', ip, kind: 'reserved', pod: { namespace: NS, name: 'cache', uid: '' }, node: '', containerID: '', interface: '', source: source('cache', NS), claimedAt: 'x', updatedAt: 'x' },
      });
    await mk('10.20.7.10');
    await new Promise((r) => setTimeout(r, 1100)); // creationTimestamp has one-second resolution
    await mk('10.20.7.11');
    const res = await reconciler().runOnce();
    expect(res.released.map((f) => [f.ip, f.outcome])).toEqual([['10.20.7.11', 'expired']]);
    expect(await claimOf('10.20.7.10')).toBeDefined();
    expect(await claimOf('10.20.7.11')).toBeUndefined();
  });
});
