// src/kube/informer.ts against the fake apiserver: paging, live events, 410 relists, outages,
// selectors, resync, backoff.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type * as k8s from '@kubernetes/client-node';
import { ClusterObjects, type CustomObject, IPCLAIMS, type KubeClients, loadKubeConfig, makeKubeClients } from '../../src/kube/client';
import { type Informer, backoffDelay, clusterObjectInformer, configMapInformer } from '../../src/kube/informer';
import { type FakeKube, startFakeKube } from '../fakes/kube-apiserver';
import { waitFor } from '../fakes/kube-apiserver/wait';

let fake: FakeKube;
let clients: KubeClients;
const running: Informer<never>[] = [];
const FAST = { backoff: { initialMs: 20, maxMs: 200, jitter: 0.5 } };

beforeAll(async () => {
  fake = await startFakeKube();
  clients = makeKubeClients(loadKubeConfig({ kubeconfig: fake.kubeconfigPath, env: {} }));
});
afterEach(async () => {
  for (const i of running.splice(0)) await i.stop();
  if (!fake.server.listening) await fake.server.start();
});
afterAll(async () => fake.close());

function track<T extends Informer<k8s.V1ConfigMap> | Informer<CustomObject>>(inf: T): T & { log: string[] } {
  const log: string[] = [];
  const i = inf as unknown as Informer<k8s.V1ConfigMap>;
  i.on('add', (o) => log.push(`add ${o.metadata?.name}`));
  i.on('update', (o) => log.push(`update ${o.metadata?.name}`));
  i.on('delete', (o) => log.push(`delete ${o.metadata?.name}`));
  i.on('error', () => undefined);
  running.push(inf as unknown as Informer<never>);
  return Object.assign(inf, { log });
}

async function namespace(name: string): Promise<string> {
  await clients.core.createNamespace({ body: { metadata: { name } } });
  return name;
}

const cm = (name: string, labels?: Record<string, string>, data: Record<string, string> = { v: name }): k8s.V1ConfigMap =>
  ({ metadata: { name, ...(labels ? { labels } : {}) }, data });

describe('Informer', () => {
  it('lists in pages, indexes by namespace/name, and follows live changes', async () => {
    const ns = await namespace('inf-paging');
    for (let i = 0; i < 5; i++) await clients.core.createNamespacedConfigMap({ namespace: ns, body: cm(`c${i}`) });
    fake.server.clearRequests();
    const inf = track(configMapInformer(clients, ns, { pageSize: 2, ...FAST }));
    await inf.start();
    expect(inf.size).toBe(5);
    expect(fake.server.requests().filter((r) => r.verb === 'list')).toHaveLength(3);
    expect(inf.get(ns, 'c3')?.data).toEqual({ v: 'c3' });
    expect(inf.get(ns, 'c3')?.metadata?.creationTimestamp).toBeInstanceOf(Date);

    const made = await clients.core.createNamespacedConfigMap({ namespace: ns, body: cm('c5') });
    await waitFor('add', () => inf.get(ns, 'c5'));
    // Watch objects come out shaped like list items.
    expect(inf.get(ns, 'c5')?.metadata?.creationTimestamp).toBeInstanceOf(Date);
    made.data = { v: 'changed' };
    await clients.core.replaceNamespacedConfigMap({ name: 'c5', namespace: ns, body: made });
    await waitFor('update', () => inf.get(ns, 'c5')?.data?.v === 'changed');
    await clients.core.deleteNamespacedConfigMap({ name: 'c0', namespace: ns });
    await waitFor('delete', () => !inf.get(ns, 'c0'));
    expect(inf.log.slice(5)).toEqual(['add c5', 'update c5', 'delete c0']);
    expect(Number(inf.resourceVersion)).toBe(fake.server.store.rv);
  });

  it('resumes its watch after an outage without relisting when history still covers the gap', async () => {
    const ns = await namespace('inf-resume');
    const inf = track(configMapInformer(clients, ns, FAST));
    await inf.start();
    await fake.server.stop();
    fake.server.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'while-down', namespace: ns }, data: {} });
    await waitFor('a failed reconnect', () => inf.stats.errors >= 1);
    await fake.server.start();
    await waitFor('missed event', () => inf.get(ns, 'while-down'));
    expect(inf.stats.lists).toBe(1);
    expect(inf.stats.expired).toBe(0);
  });

  it('relists after 410 Gone and reports the difference as add/update/delete', async () => {
    const ns = await namespace('inf-gone');
    await clients.core.createNamespacedConfigMap({ namespace: ns, body: cm('stays') });
    await clients.core.createNamespacedConfigMap({ namespace: ns, body: cm('goes') });
    await clients.core.createNamespacedConfigMap({ namespace: ns, body: cm('changes') });
    const inf = track(configMapInformer(clients, ns, FAST));
    await inf.start();
    await fake.server.stop();
    fake.server.remove('configmaps', ns, 'goes');
    fake.server.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'changes', namespace: ns }, data: { v: 'new' } });
    fake.server.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'arrives', namespace: ns }, data: {} });
    fake.server.compact();
    await fake.server.start();
    await waitFor('relist', () => inf.stats.expired >= 1 && inf.get(ns, 'arrives'));
    expect(inf.list(ns).map((o) => o.metadata?.name).sort()).toEqual(['arrives', 'changes', 'stays']);
    expect(inf.get(ns, 'changes')?.data).toEqual({ v: 'new' });
    expect(inf.log.slice(3).sort()).toEqual(['add arrives', 'delete goes', 'update changes']);
    expect(inf.stats.lists).toBe(2);
  });

  it('relists when a watch that the server closed can no longer resume (history window)', async () => {
    const ns = await namespace('inf-window');
    const inf = track(configMapInformer(clients, ns, FAST));
    await inf.start();
    const rvBefore = inf.resourceVersion;
    // Other resources' changes push this namespace's last revision out of a tiny window.
    fake.server.setHistoryLimit(2);
    try {
      await fake.server.stop();
      for (let i = 0; i < 4; i++) fake.server.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `other-${i}`, namespace: 'default' }, data: {} });
      await fake.server.start();
      await waitFor('expired relist', () => inf.stats.expired >= 1 && Number(inf.resourceVersion) > Number(rvBefore));
      expect(inf.stats.lists).toBe(2);
      expect(inf.size).toBe(0);
    } finally {
      fake.server.setHistoryLimit(1000);
    }
  });

  it('restarts a paged list whose continue token expired', async () => {
    const ns = await namespace('inf-continue');
    for (let i = 0; i < 4; i++) await clients.core.createNamespacedConfigMap({ namespace: ns, body: cm(`p${i}`) });
    let compacted = false;
    const inf = track(configMapInformer({
      ...clients,
      core: new Proxy(clients.core, {
        get(target, prop, recv) {
          const v = Reflect.get(target, prop, recv) as unknown;
          if (prop !== 'listNamespacedConfigMap' || typeof v !== 'function') return v;
          // Between the first and second page the cluster compacts: the token goes stale.
          return async (...args: unknown[]) => {
            const page = await (v as (...a: unknown[]) => Promise<k8s.V1ConfigMapList>).apply(target, args);
            if (!compacted) {
              compacted = true;
              await clients.core.createNamespacedConfigMap({ namespace: ns, body: cm('p4') });
              fake.server.compact();
            }
            return page;
          };
        },
      }),
    }, ns, { pageSize: 2, ...FAST }));
    await inf.start();
    expect(inf.stats.expired).toBe(1);
    expect(inf.list(ns).map((o) => o.metadata?.name).sort()).toEqual(['p0', 'p1', 'p2', 'p3', 'p4']);
  });

  it('passes label selectors to list and watch', async () => {
    const ns = await namespace('inf-labels');
    await clients.core.createNamespacedConfigMap({ namespace: ns, body: cm('reg', { kind: 'registration' }) });
    await clients.core.createNamespacedConfigMap({ namespace: ns, body: cm('noise') });
    const inf = track(configMapInformer(clients, ns, { labelSelector: 'kind=registration', ...FAST }));
    await inf.start();
    expect(inf.list().map((o) => o.metadata?.name)).toEqual(['reg']);
    await clients.core.patchNamespacedConfigMap(
      { name: 'reg', namespace: ns, body: [{ op: 'remove', path: '/metadata/labels' }] },
    );
    await waitFor('leaves selection', () => !inf.get(ns, 'reg'));
    expect(inf.log).toEqual(['add reg', 'delete reg']);
  });

  it('resyncs from its cache without calling the API', async () => {
    const ns = await namespace('inf-resync');
    await clients.core.createNamespacedConfigMap({ namespace: ns, body: cm('r1') });
    const inf = track(configMapInformer(clients, ns, { resyncMs: 30, ...FAST }));
    const resynced: string[] = [];
    inf.on('resync', (o) => resynced.push(o.metadata!.name!));
    await inf.start();
    const lists = fake.server.counters().requests.list ?? 0;
    await waitFor('two resyncs', () => resynced.length >= 2);
    expect(new Set(resynced)).toEqual(new Set(['r1']));
    expect(fake.server.counters().requests.list ?? 0).toBe(lists);
  });

  it('caches only what retain keeps, while events carry whole objects', async () => {
    const ns = await namespace('inf-retain');
    await clients.core.createNamespacedConfigMap({ namespace: ns, body: cm('k1') });
    const inf = track(configMapInformer(clients, ns, { ...FAST, retain: (o) => ({ metadata: { namespace: o.metadata?.namespace, name: o.metadata?.name, resourceVersion: o.metadata?.resourceVersion } }) }));
    const seen: Array<{ type: string; data: unknown; oldData?: unknown }> = [];
    inf.on('add', (o) => seen.push({ type: 'add', data: o.data }));
    inf.on('update', (o, old) => seen.push({ type: 'update', data: o.data, oldData: old.data }));
    await inf.start();
    expect(inf.get(ns, 'k1')).toEqual({ metadata: { namespace: ns, name: 'k1', resourceVersion: expect.any(String) } });
    const replaced = await clients.core.replaceNamespacedConfigMap({ namespace: ns, name: 'k1', body: cm('k1', undefined, { v: 'two' }) });
    await waitFor('update', () => seen.length === 2);
    expect(seen).toEqual([{ type: 'add', data: { v: 'k1' } }, { type: 'update', data: { v: 'two' }, oldData: undefined }]);
    expect(inf.get(ns, 'k1')?.metadata?.resourceVersion).toBe(replaced.metadata?.resourceVersion);
  });

  it('retries a failing list with backoff until it succeeds', async () => {
    const ns = await namespace('inf-retry');
    fake.server.failNext({ code: 500, verb: 'list', resource: 'configmaps', count: 3 });
    const inf = track(configMapInformer(clients, ns, FAST));
    const errors: unknown[] = [];
    inf.on('error', (e) => errors.push(e));
    await inf.start();
    expect(inf.hasSynced).toBe(true);
    expect(errors).toHaveLength(3);
    expect(inf.stats.errors).toBe(3);
  });

  it('lets stop() end a start() that cannot list', async () => {
    await fake.server.stop();
    const inf = track(configMapInformer(clients, 'default', FAST));
    const started = inf.start();
    await waitFor('a failed list', () => inf.stats.errors >= 1);
    await inf.stop();
    await started;
    expect(inf.hasSynced).toBe(false);
  });

  it('stops watching on stop()', async () => {
    const ns = await namespace('inf-stop');
    const inf = track(configMapInformer(clients, ns, FAST));
    await inf.start();
    await inf.stop();
    await clients.core.createNamespacedConfigMap({ namespace: ns, body: cm('after-stop') });
    fake.server.clearRequests();
    await new Promise((r) => setTimeout(r, 100));
    expect(inf.get(ns, 'after-stop')).toBeUndefined();
    expect(fake.server.requests()).toHaveLength(0);
  });

  it('informs on cluster-scoped IP claims', async () => {
    const claims = new ClusterObjects<CustomObject & { spec: { network: string; ip: string } }>(clients.custom, IPCLAIMS);
    await claims.create({ metadata: { name: 'inf-10-1-1-1' }, spec: { network: 'inf', ip: '10.1.1.1' } });
    const inf = track(clusterObjectInformer(claims, clients.watch, FAST));
    await inf.start();
    expect(inf.get(undefined, 'inf-10-1-1-1')?.spec.ip).toBe('10.1.1.1');
    await claims.delete('inf-10-1-1-1');
    await waitFor('claim deleted', () => !inf.get(undefined, 'inf-10-1-1-1'));
  });
});

describe('backoffDelay', () => {
  const b = { initialMs: 100, maxMs: 1000, jitter: 0.5 };
  it('doubles per attempt and caps at maxMs', () => {
    expect([0, 1, 2, 3, 4, 10].map((a) => backoffDelay(a, b, () => 1))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });
  it('randomizes the jitter fraction of each delay', () => {
    expect(backoffDelay(2, b, () => 0)).toBe(200);
    expect(backoffDelay(2, b, () => 0.5)).toBe(300);
    expect(backoffDelay(2, { ...b, jitter: 0 }, () => 0.9)).toBe(400);
  });
});
