// Watch streams and informers of the real client-node against the fake apiserver.
import * as k8s from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FakeKube, startFakeKube } from '../fakes/kube-apiserver';
import { waitFor } from '../fakes/kube-apiserver/wait';

interface Seen { type: string; name: string; rv: number; code?: number; reason?: string }

let fake: FakeKube;
let kc: k8s.KubeConfig;
let core: k8s.CoreV1Api;
const NS = 'default';
const PATH = `/api/v1/namespaces/${NS}/configmaps`;
const aborts: AbortController[] = [];

beforeAll(async () => {
  fake = await startFakeKube({ bookmarkIntervalMs: 50 });
  kc = new k8s.KubeConfig();
  kc.loadFromFile(fake.kubeconfigPath);
  core = kc.makeApiClient(k8s.CoreV1Api);
});
afterEach(() => aborts.splice(0).forEach((a) => a.abort()));
afterAll(async () => fake.close());

async function watch(path: string, params: Record<string, string | boolean | number>) {
  const seen: Seen[] = [];
  let ended: { err: unknown } | undefined;
  const ctl = await new k8s.Watch(kc).watch(path, params, (type, obj: k8s.KubernetesObject & { code?: number; reason?: string }) => {
    seen.push({ type, name: obj.metadata?.name ?? '', rv: Number(obj.metadata?.resourceVersion ?? 0), code: obj.code, reason: obj.reason });
  }, (err) => { ended = { err }; });
  aborts.push(ctl);
  return { seen, ended: () => ended };
}

const cm = (name: string, labels?: Record<string, string>): k8s.V1ConfigMap => ({ metadata: { name, ...(labels ? { labels } : {}) }, data: { k: name } });

describe('watch', () => {
  it('streams ADDED, MODIFIED and DELETED from a list resourceVersion, in order', async () => {
    const list = await core.listNamespacedConfigMap({ namespace: NS });
    const w = await watch(PATH, { resourceVersion: list.metadata!.resourceVersion! });
    const c = await core.createNamespacedConfigMap({ namespace: NS, body: cm('w1') });
    c.data = { k: 'changed' };
    await core.replaceNamespacedConfigMap({ name: 'w1', namespace: NS, body: c });
    await core.deleteNamespacedConfigMap({ name: 'w1', namespace: NS });
    await waitFor('three events', () => w.seen.length >= 3);
    expect(w.seen.map((e) => [e.type, e.name])).toEqual([['ADDED', 'w1'], ['MODIFIED', 'w1'], ['DELETED', 'w1']]);
    const rvs = w.seen.map((e) => e.rv);
    expect(rvs[0]).toBeGreaterThan(Number(list.metadata!.resourceVersion));
    expect(rvs[1]).toBeGreaterThan(rvs[0]!);
    expect(rvs[2]).toBeGreaterThan(rvs[1]!);
  });

  it('replays changes made between a list and the watch start', async () => {
    const list = await core.listNamespacedConfigMap({ namespace: NS });
    await core.createNamespacedConfigMap({ namespace: NS, body: cm('w-gap') });
    const w = await watch(PATH, { resourceVersion: list.metadata!.resourceVersion! });
    await waitFor('replayed event', () => w.seen.length >= 1);
    expect(w.seen[0]).toMatchObject({ type: 'ADDED', name: 'w-gap' });
  });

  it('starts a watch without resourceVersion with ADDED for every existing object', async () => {
    await core.createNamespacedConfigMap({ namespace: 'kube-node-lease', body: cm('w-existing-1') });
    await core.createNamespacedConfigMap({ namespace: 'kube-node-lease', body: cm('w-existing-2') });
    const w = await watch('/api/v1/namespaces/kube-node-lease/configmaps', {});
    await waitFor('initial events', () => w.seen.length >= 2);
    expect(w.seen.map((e) => [e.type, e.name])).toEqual([['ADDED', 'w-existing-1'], ['ADDED', 'w-existing-2']]);
  });

  it('answers a watch from a compacted resourceVersion with an ERROR event carrying 410 Expired, then closes', async () => {
    const old = await core.createNamespacedConfigMap({ namespace: NS, body: cm('w-old') });
    await core.deleteNamespacedConfigMap({ name: 'w-old', namespace: NS });
    fake.server.compact();
    const w = await watch(PATH, { resourceVersion: old.metadata!.resourceVersion! });
    await waitFor('stream end', () => w.ended());
    expect(w.seen).toHaveLength(1);
    expect(w.seen[0]).toMatchObject({ type: 'ERROR', code: 410, reason: 'Expired' });
  });

  it('forgets history beyond the configured window', async () => {
    const small = await startFakeKube({ historyLimit: 3 });
    try {
      const kc2 = new k8s.KubeConfig();
      kc2.loadFromFile(small.kubeconfigPath);
      const api = kc2.makeApiClient(k8s.CoreV1Api);
      const first = await api.createNamespacedConfigMap({ namespace: NS, body: cm('h0') });
      for (let i = 1; i <= 3; i++) await api.createNamespacedConfigMap({ namespace: NS, body: cm(`h${i}`) });
      // The last 3 changes are kept: watching from h0's revision misses nothing, from before it does.
      const ok = await fetch(`${small.url}${PATH}?watch=1&resourceVersion=${first.metadata!.resourceVersion}&timeoutSeconds=1`, { headers: { authorization: `Bearer ${small.server.token}` } });
      const okLines = (await ok.text()).trim().split('\n').map((l) => JSON.parse(l) as { type: string; object: { metadata: { name: string } } });
      expect(okLines.map((l) => `${l.type} ${l.object.metadata.name}`)).toEqual(['ADDED h1', 'ADDED h2', 'ADDED h3']);
      const before = Number(first.metadata!.resourceVersion) - 1;
      const gone = await fetch(`${small.url}${PATH}?watch=1&resourceVersion=${before}`, { headers: { authorization: `Bearer ${small.server.token}` } });
      expect(gone.status).toBe(200);
      const line = JSON.parse((await gone.text()).trim()) as { type: string; object: { code: number } };
      expect(line).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
    } finally {
      await small.close();
    }
  });

  it('shows objects leaving and entering a label-selected watch as DELETED and ADDED', async () => {
    const list = await core.listNamespacedConfigMap({ namespace: NS });
    const w = await watch(PATH, { resourceVersion: list.metadata!.resourceVersion!, labelSelector: 'role=reg' });
    await core.createNamespacedConfigMap({ namespace: NS, body: cm('w-sel', { role: 'reg' }) });
    await core.createNamespacedConfigMap({ namespace: NS, body: cm('w-nosel', { role: 'other' }) });
    const mp = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
    await core.patchNamespacedConfigMap({ name: 'w-sel', namespace: NS, body: { metadata: { labels: { role: 'gone' } } } }, mp);
    await core.patchNamespacedConfigMap({ name: 'w-sel', namespace: NS, body: { metadata: { labels: { role: 'reg' } } } }, mp);
    await waitFor('three events', () => w.seen.length >= 3);
    expect(w.seen.map((e) => [e.type, e.name])).toEqual([['ADDED', 'w-sel'], ['DELETED', 'w-sel'], ['ADDED', 'w-sel']]);
  });

  it('sends BOOKMARK events when allowed', async () => {
    const list = await core.listNamespacedConfigMap({ namespace: NS });
    const w = await watch(PATH, { resourceVersion: list.metadata!.resourceVersion!, allowWatchBookmarks: true });
    const b = await waitFor('bookmark', () => w.seen.find((e) => e.type === 'BOOKMARK'));
    expect(b.rv).toBeGreaterThanOrEqual(Number(list.metadata!.resourceVersion));
  });

  it('ends the stream cleanly after timeoutSeconds', async () => {
    const w = await watch(PATH, { timeoutSeconds: 1 });
    const end = await waitFor('stream end', () => w.ended(), 5000);
    expect(end.err).toBeNull();
  });

  it('cuts open watches when the server stops', async () => {
    const w = await watch(PATH, { resourceVersion: String(fake.server.store.rv) });
    await fake.server.stop();
    try {
      const end = await waitFor('stream end', () => w.ended());
      expect(end).toBeDefined();
    } finally {
      await fake.server.start();
    }
  });
});

describe('client-node informer (ListWatch)', () => {
  it('follows live changes and relists after a 410 across an API outage', async () => {
    const ns = 'kube-system';
    await core.createNamespacedConfigMap({ namespace: ns, body: cm('inf-a') });
    const informer = k8s.makeInformer(kc, `/api/v1/namespaces/${ns}/configmaps`, () => core.listNamespacedConfigMap({ namespace: ns }));
    const log: string[] = [];
    let errors = 0;
    let stopped = false;
    informer.on('add', (o) => log.push(`add ${o.metadata?.name}`));
    informer.on('update', (o) => log.push(`update ${o.metadata?.name}`));
    informer.on('delete', (o) => log.push(`delete ${o.metadata?.name}`));
    // client-node leaves restarting after an error to its user.
    informer.on('error', () => { errors++; if (!stopped) setTimeout(() => void informer.start(), 30); });
    await informer.start();
    try {
      await waitFor('initial list', () => informer.get('inf-a', ns));
      const c = await core.createNamespacedConfigMap({ namespace: ns, body: cm('inf-b') });
      await waitFor('live add', () => informer.get('inf-b', ns));
      c.data = { k: 'v2' };
      await core.replaceNamespacedConfigMap({ name: 'inf-b', namespace: ns, body: c });
      await waitFor('live update', () => informer.get('inf-b', ns)?.data?.k === 'v2');

      await fake.server.stop();
      // While the API is down, the cluster moves on and history is compacted.
      fake.server.remove('configmaps', ns, 'inf-a');
      fake.server.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'inf-c', namespace: ns }, data: { k: 'c' } });
      fake.server.compact();
      await waitFor('connection errors', () => errors >= 1);
      await fake.server.start();

      await waitFor('relist result', () => informer.get('inf-c', ns) && !informer.get('inf-a', ns));
      expect(informer.list(ns).map((o) => o.metadata?.name).sort()).toEqual(['inf-b', 'inf-c']);
      expect(log).toEqual(expect.arrayContaining(['add inf-a', 'add inf-b', 'update inf-b', 'delete inf-a', 'add inf-c']));
      // The reconnect did hit the 410 and relisted (a second list call).
      const lists = fake.server.requests().filter((r) => r.verb === 'list' && r.namespace === ns && r.resource === 'configmaps');
      expect(lists.length).toBeGreaterThanOrEqual(2);
      const watches = fake.server.requests().filter((r) => r.verb === 'watch' && r.namespace === ns);
      expect(watches.length).toBeGreaterThanOrEqual(2);
    } finally {
      stopped = true;
      await informer.stop();
    }
  });
});
