// The fake apiserver driven by the real @kubernetes/client-node through a kubeconfig file.
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectStatus } from '../fakes/kube-apiserver/client-errors';
import { type FakeKube, startFakeKube } from '../fakes/kube-apiserver';

let fake: FakeKube;
let kc: k8s.KubeConfig;
let core: k8s.CoreV1Api;
let custom: k8s.CustomObjectsApi;
const NS = 'default';
const G = { group: 'sriov-underlay.io', version: 'v1alpha1' };

beforeAll(async () => {
  fake = await startFakeKube();
  kc = new k8s.KubeConfig();
  kc.loadFromFile(fake.kubeconfigPath);
  core = kc.makeApiClient(k8s.CoreV1Api);
  custom = kc.makeApiClient(k8s.CustomObjectsApi);
});
afterAll(async () => fake.close());

const cm = (name: string, data: Record<string, string> = { k: 'v' }, labels?: Record<string, string>): k8s.V1ConfigMap => ({
  metadata: { name, ...(labels ? { labels } : {}) },
  data,
});

const claim = (network: string, ip: string) => ({
  apiVersion: 'sriov-underlay.io/v1alpha1',
  kind: 'IPClaim',
  metadata: { name: `${network}-${ip.replace(/[.:]/g, '-')}` },
  spec: { network, ip, podNamespace: NS, podName: 'db-0', podUID: 'u1' },
});

describe('ConfigMap CRUD through CoreV1Api', () => {
  it('creates, reads, updates and deletes with increasing resourceVersions', async () => {
    const created = await core.createNamespacedConfigMap({ namespace: NS, body: cm('crud-a') });
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date);
    const rv1 = Number(created.metadata?.resourceVersion);
    expect(rv1).toBeGreaterThan(0);

    const read = await core.readNamespacedConfigMap({ name: 'crud-a', namespace: NS });
    expect(read.data).toEqual({ k: 'v' });
    expect(read.metadata?.resourceVersion).toBe(String(rv1));

    read.data = { k: 'v2' };
    const updated = await core.replaceNamespacedConfigMap({ name: 'crud-a', namespace: NS, body: read });
    expect(Number(updated.metadata?.resourceVersion)).toBeGreaterThan(rv1);
    expect(updated.metadata?.uid).toBe(created.metadata?.uid);

    await core.deleteNamespacedConfigMap({ name: 'crud-a', namespace: NS });
    const gone = await expectStatus(() => core.readNamespacedConfigMap({ name: 'crud-a', namespace: NS }));
    expect(gone).toMatchObject({ code: 404, reason: 'NotFound', message: 'configmaps "crud-a" not found', details: { name: 'crud-a', kind: 'configmaps' } });
  });

  it('answers a second create of the same name with 409 AlreadyExists', async () => {
    await core.createNamespacedConfigMap({ namespace: NS, body: cm('dup') });
    const st = await expectStatus(() => core.createNamespacedConfigMap({ namespace: NS, body: cm('dup') }));
    expect(st).toMatchObject({ code: 409, reason: 'AlreadyExists', details: { name: 'dup', kind: 'configmaps' } });
  });

  it('rejects an update carrying a stale resourceVersion with 409 Conflict', async () => {
    const first = await core.createNamespacedConfigMap({ namespace: NS, body: cm('stale') });
    const copy = structuredClone(first);
    first.data = { k: 'one' };
    await core.replaceNamespacedConfigMap({ name: 'stale', namespace: NS, body: first });
    copy.data = { k: 'two' };
    const st = await expectStatus(() => core.replaceNamespacedConfigMap({ name: 'stale', namespace: NS, body: copy }));
    expect(st.code).toBe(409);
    expect(st.reason).toBe('Conflict');
    expect(st.message).toContain('the object has been modified');
    const now = await core.readNamespacedConfigMap({ name: 'stale', namespace: NS });
    expect(now.data).toEqual({ k: 'one' });
  });

  it('treats an update without resourceVersion as unconditional, and an unchanged one as a no-op', async () => {
    const c = await core.createNamespacedConfigMap({ namespace: NS, body: cm('uncond') });
    const same = await core.replaceNamespacedConfigMap({ name: 'uncond', namespace: NS, body: c });
    expect(same.metadata?.resourceVersion).toBe(c.metadata?.resourceVersion);
    const blind = await core.replaceNamespacedConfigMap({ name: 'uncond', namespace: NS, body: cm('uncond', { k: 'blind' }) });
    expect(Number(blind.metadata?.resourceVersion)).toBeGreaterThan(Number(c.metadata?.resourceVersion));
  });

  it('refuses a delete whose preconditions do not match, and honours matching ones', async () => {
    const c = await core.createNamespacedConfigMap({ namespace: NS, body: cm('precond') });
    const byUid = await expectStatus(() => core.deleteNamespacedConfigMap({
      name: 'precond', namespace: NS, body: { preconditions: { uid: '00000000-0000-0000-0000-000000000000' } },
    }));
    expect(byUid).toMatchObject({ code: 409, reason: 'Conflict' });
    expect(byUid.message).toContain('UID in precondition');
    const byRv = await expectStatus(() => core.deleteNamespacedConfigMap({
      name: 'precond', namespace: NS, body: { preconditions: { resourceVersion: '1' } },
    }));
    expect(byRv).toMatchObject({ code: 409, reason: 'Conflict' });
    expect((await core.readNamespacedConfigMap({ name: 'precond', namespace: NS })).metadata?.uid).toBe(c.metadata?.uid);
    const ok = await core.deleteNamespacedConfigMap({
      name: 'precond', namespace: NS,
      body: { preconditions: { uid: c.metadata?.uid, resourceVersion: c.metadata?.resourceVersion } },
    });
    // ConfigMaps answer a delete with a Success Status, like the real server.
    expect(ok).toMatchObject({ kind: 'Status', status: 'Success', details: { name: 'precond', uid: c.metadata?.uid } });
  });

  it('applies merge, strategic-merge and JSON patches', async () => {
    await core.createNamespacedConfigMap({ namespace: NS, body: cm('patchme', { a: '1', b: '2' }) });
    const merged = await core.patchNamespacedConfigMap(
      { name: 'patchme', namespace: NS, body: { data: { a: null, c: '3' } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    expect(merged.data).toEqual({ b: '2', c: '3' });
    const smp = await core.patchNamespacedConfigMap(
      { name: 'patchme', namespace: NS, body: { metadata: { labels: { x: 'y' } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
    expect(smp.metadata?.labels).toEqual({ x: 'y' });
    const jp = await core.patchNamespacedConfigMap(
      { name: 'patchme', namespace: NS, body: [{ op: 'test', path: '/data/b', value: '2' }, { op: 'replace', path: '/data/b', value: '20' }] },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
    );
    expect(jp.data).toEqual({ b: '20', c: '3' });
    const failedTest = await expectStatus(() => core.patchNamespacedConfigMap(
      { name: 'patchme', namespace: NS, body: [{ op: 'test', path: '/data/b', value: 'nope' }] },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
    ));
    expect(failedTest.code).toBe(422);
    const stale = await expectStatus(() => core.patchNamespacedConfigMap(
      { name: 'patchme', namespace: NS, body: { metadata: { resourceVersion: '2' }, data: { z: 'z' } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    ));
    expect(stale).toMatchObject({ code: 409, reason: 'Conflict' });
  });

  it('names objects from generateName', async () => {
    const c = await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { generateName: 'gen-' }, data: {} } });
    expect(c.metadata?.name).toMatch(/^gen-[a-z0-9]{5}$/);
  });

  it('returns 404 for a namespace that does not exist', async () => {
    const st = await expectStatus(() => core.createNamespacedConfigMap({ namespace: 'no-such-ns', body: cm('x') }));
    expect(st).toMatchObject({ code: 404, reason: 'NotFound', message: 'namespaces "no-such-ns" not found' });
  });

  it('keeps an object with finalizers until they are removed', async () => {
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'fin', finalizers: ['test/keep'] }, data: {} } });
    await core.deleteNamespacedConfigMap({ name: 'fin', namespace: NS });
    const held = await core.readNamespacedConfigMap({ name: 'fin', namespace: NS });
    expect(held.metadata?.deletionTimestamp).toBeInstanceOf(Date);
    await core.patchNamespacedConfigMap(
      { name: 'fin', namespace: NS, body: { metadata: { finalizers: null } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    expect((await expectStatus(() => core.readNamespacedConfigMap({ name: 'fin', namespace: NS }))).code).toBe(404);
  });
});

describe('validation', () => {
  it('rejects names that are not DNS-1123 subdomains with 422 Invalid naming the field', async () => {
    const st = await expectStatus(() => core.createNamespacedConfigMap({ namespace: NS, body: cm('Bad_Name') }));
    expect(st).toMatchObject({ code: 422, reason: 'Invalid', details: { name: 'Bad_Name', kind: 'ConfigMap' } });
    expect(st.details?.causes?.[0]).toMatchObject({ field: 'metadata.name', reason: 'FieldValueInvalid' });
  });

  it('requires a name or generateName', async () => {
    const st = await expectStatus(() => core.createNamespacedConfigMap({ namespace: NS, body: { data: {} } }));
    expect(st.code).toBe(422);
    expect(st.details?.causes?.[0]).toMatchObject({ field: 'metadata.name', reason: 'FieldValueRequired' });
  });

  it('rejects a ConfigMap over 1 MiB and bad data keys', async () => {
    const big = await expectStatus(() => core.createNamespacedConfigMap({ namespace: NS, body: cm('big', { blob: 'x'.repeat(1024 * 1024) }) }));
    expect(big).toMatchObject({ code: 422, reason: 'Invalid' });
    expect(big.message).toContain('must have at most 1048576 bytes');
    const key = await expectStatus(() => core.createNamespacedConfigMap({ namespace: NS, body: cm('badkey', { 'a/b': 'v' }) }));
    expect(key.details?.causes?.[0]?.field).toBe('data[a/b]');
  });

  it('rejects bad label keys and values', async () => {
    const st = await expectStatus(() => core.createNamespacedConfigMap({ namespace: NS, body: cm('lbl', {}, { 'bad key': 'v' }) }));
    expect(st.code).toBe(422);
    expect(st.details?.causes?.[0]?.field).toBe('metadata.labels');
  });

  it('answers non-string ConfigMap data with 400 like the typed decoder (not 422)', async () => {
    const res = await fetch(`${fake.url}/api/v1/namespaces/${NS}/configmaps`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${fake.server.token}` },
      body: JSON.stringify({ metadata: { name: 'numbers' }, data: { n: 1 } }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ reason: 'BadRequest' });
    expect(fake.server.get('configmaps', NS, 'numbers')).toBeUndefined();
  });

  it('requires containers with name and image on pods', async () => {
    const st = await expectStatus(() => core.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'p' }, spec: { containers: [{ name: 'c' } as k8s.V1Container] } } }));
    expect(st.code).toBe(422);
    expect(st.details?.causes?.map((c) => c.field)).toEqual(['spec.containers[0].image']);
  });

  it('requires spec.network and spec.ip on IP claims', async () => {
    const st = await expectStatus(() => custom.createClusterCustomObject({ ...G, plural: 'ipclaims', body: { apiVersion: 'sriov-underlay.io/v1alpha1', kind: 'IPClaim', metadata: { name: 'c1' }, spec: { network: 'n' } } }));
    expect(st).toMatchObject({ code: 422, reason: 'Invalid', details: { kind: 'IPClaim', group: 'sriov-underlay.io' } });
    expect(st.details?.causes?.[0]?.field).toBe('spec.ip');
  });
});

describe('IP claims through CustomObjectsApi', () => {
  it('lets exactly one create of the same claim name succeed', async () => {
    const body = claim('vlan100', '10.0.0.5');
    const first = (await custom.createClusterCustomObject({ ...G, plural: 'ipclaims', body })) as k8s.KubernetesObject;
    expect(first.metadata?.name).toBe('vlan100-10-0-0-5');
    expect(first.metadata?.generation).toBe(1);
    const st = await expectStatus(() => custom.createClusterCustomObject({ ...G, plural: 'ipclaims', body }));
    expect(st).toMatchObject({
      code: 409, reason: 'AlreadyExists', message: 'ipclaims.sriov-underlay.io "vlan100-10-0-0-5" already exists',
      details: { name: 'vlan100-10-0-0-5', group: 'sriov-underlay.io', kind: 'ipclaims' },
    });
  });

  it('settles concurrent creates of one claim with one winner', async () => {
    const body = claim('vlan100', '10.0.0.9');
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => custom.createClusterCustomObject({ ...G, plural: 'ipclaims', body })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.code)).toEqual(Array(7).fill(409));
  });

  it('deletes a claim only when the precondition matches, answering with the object', async () => {
    const c = (await custom.createClusterCustomObject({ ...G, plural: 'ipclaims', body: claim('vlan200', 'fd00::7') })) as k8s.KubernetesObject;
    const st = await expectStatus(() => custom.deleteClusterCustomObject({ ...G, plural: 'ipclaims', name: c.metadata!.name!, body: { preconditions: { resourceVersion: '1' } } }));
    expect(st).toMatchObject({ code: 409, reason: 'Conflict' });
    const deleted = (await custom.deleteClusterCustomObject({
      ...G, plural: 'ipclaims', name: c.metadata!.name!, body: { preconditions: { uid: c.metadata!.uid! } },
    })) as k8s.KubernetesObject;
    expect(deleted.metadata?.uid).toBe(c.metadata?.uid);
    expect(Number(deleted.metadata?.resourceVersion)).toBeGreaterThan(Number(c.metadata?.resourceVersion));
  });

  it('refuses strategic merge patch on custom resources with 415', async () => {
    await custom.createClusterCustomObject({ ...G, plural: 'ipclaims', body: claim('vlan300', '10.3.0.1') });
    const st = await expectStatus(() => custom.patchClusterCustomObject(
      { ...G, plural: 'ipclaims', name: 'vlan300-10-3-0-1', body: { spec: { node: 'n1' } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    ));
    expect(st.code).toBe(415);
    const ok = (await custom.patchClusterCustomObject(
      { ...G, plural: 'ipclaims', name: 'vlan300-10-3-0-1', body: { spec: { node: 'n1' } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    )) as { metadata: { generation: number }; spec: { node: string; ip: string } };
    expect(ok.spec).toMatchObject({ node: 'n1', ip: '10.3.0.1' });
    expect(ok.metadata.generation).toBe(2);
  });

  it('serves SriovNodeState through discovery-driven KubernetesObjectApi', async () => {
    const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
    const body = { apiVersion: 'sriov-underlay.io/v1alpha1', kind: 'SriovNodeState', metadata: { name: 'node-1' }, spec: {}, status: { pools: [{ resourceName: 'x/vf', capacity: 8 }] } };
    const made: k8s.KubernetesObject = await objects.create(body);
    expect(Number(made.metadata?.resourceVersion)).toBeGreaterThan(0);
    const read = await objects.read({ apiVersion: body.apiVersion, kind: body.kind, metadata: { name: 'node-1' } });
    expect((read as unknown as typeof body).status.pools[0]?.capacity).toBe(8);
  });
});

describe('lists', () => {
  beforeAll(async () => {
    const rows: [string, Record<string, string>][] = [
      ['sel-1', { app: 'db', tier: 'a' }],
      ['sel-2', { app: 'db', tier: 'b', env: 'prod' }],
      ['sel-3', { app: 'web', tier: 'c' }],
      ['sel-4', { other: 'x' }],
    ];
    for (const [name, labels] of rows) await core.createNamespacedConfigMap({ namespace: 'kube-public', body: cm(name, {}, labels) });
  });
  const names = async (labelSelector: string) =>
    (await core.listNamespacedConfigMap({ namespace: 'kube-public', labelSelector })).items.map((i) => i.metadata?.name);

  it.each([
    ['app=db', ['sel-1', 'sel-2']],
    ['app==web', ['sel-3']],
    ['app!=db', ['sel-3', 'sel-4']],
    ['tier in (a, c)', ['sel-1', 'sel-3']],
    ['tier notin (a,c)', ['sel-2', 'sel-4']],
    ['app', ['sel-1', 'sel-2', 'sel-3']],
    ['!app', ['sel-4']],
    ['app=db,!env', ['sel-1']],
  ])('filters by label selector %s', async (sel, want) => {
    expect(await names(sel)).toEqual(want);
  });

  it('rejects a malformed label selector with 400', async () => {
    const st = await expectStatus(() => core.listNamespacedConfigMap({ namespace: 'kube-public', labelSelector: 'a in b' }));
    expect(st.code).toBe(400);
  });

  it('pages with limit and continue at one snapshot', async () => {
    const p1 = await core.listNamespacedConfigMap({ namespace: 'kube-public', limit: 3 });
    expect(p1.items.map((i) => i.metadata?.name)).toEqual(['sel-1', 'sel-2', 'sel-3']);
    expect(p1.metadata?.remainingItemCount).toBe(1);
    // A change after page 1 is not visible on page 2: same snapshot.
    await core.createNamespacedConfigMap({ namespace: 'kube-public', body: cm('sel-5') });
    const p2 = await core.listNamespacedConfigMap({ namespace: 'kube-public', limit: 3, _continue: p1.metadata!._continue! });
    expect(p2.items.map((i) => i.metadata?.name)).toEqual(['sel-4']);
    expect(p2.metadata?._continue).toBeUndefined();
    expect(p2.metadata?.resourceVersion).toBe(p1.metadata?.resourceVersion);
    await core.deleteNamespacedConfigMap({ name: 'sel-5', namespace: 'kube-public' });
  });

  it('answers a continue token older than the retained history with 410 Expired', async () => {
    const p1 = await core.listNamespacedConfigMap({ namespace: 'kube-public', limit: 1 });
    await core.createNamespacedConfigMap({ namespace: 'kube-public', body: cm('sel-6') });
    fake.server.compact();
    const st = await expectStatus(() => core.listNamespacedConfigMap({ namespace: 'kube-public', limit: 1, _continue: p1.metadata!._continue! }));
    expect(st).toMatchObject({ code: 410, reason: 'Expired' });
  });

  it('filters pods by spec.nodeName and events by involvedObject fields', async () => {
    const pod = (name: string, nodeName?: string): k8s.V1Pod => ({ metadata: { name }, spec: { ...(nodeName ? { nodeName } : {}), containers: [{ name: 'c', image: 'i' }] } });
    await core.createNamespacedPod({ namespace: NS, body: pod('fs-1', 'node-a') });
    await core.createNamespacedPod({ namespace: NS, body: pod('fs-2', 'node-b') });
    await core.createNamespacedPod({ namespace: NS, body: pod('fs-3') });
    const onA = await core.listPodForAllNamespaces({ fieldSelector: 'spec.nodeName=node-a' });
    expect(onA.items.map((p) => p.metadata?.name)).toEqual(['fs-1']);
    const unscheduled = await core.listNamespacedPod({ namespace: NS, fieldSelector: 'spec.nodeName=,metadata.name!=zzz' });
    expect(unscheduled.items.map((p) => p.metadata?.name)).toEqual(['fs-3']);
    await core.createNamespacedEvent({ namespace: NS, body: { metadata: { generateName: 'fs-1.' }, involvedObject: { kind: 'Pod', namespace: NS, name: 'fs-1' }, reason: 'Assigned', type: 'Normal' } });
    await core.createNamespacedEvent({ namespace: NS, body: { metadata: { generateName: 'fs-2.' }, involvedObject: { kind: 'Pod', namespace: NS, name: 'fs-2' }, reason: 'Assigned', type: 'Normal' } });
    const evs = await core.listNamespacedEvent({ namespace: NS, fieldSelector: 'involvedObject.kind=Pod,involvedObject.name=fs-2' });
    expect(evs.items.map((e) => e.involvedObject.name)).toEqual(['fs-2']);
    const bad = await expectStatus(() => core.listNamespacedPod({ namespace: NS, fieldSelector: 'spec.bogus=1' }));
    expect(bad).toMatchObject({ code: 400, message: 'field label not supported: spec.bogus' });
  });
});

describe('pods', () => {
  it('deletes a scheduled pod gracefully, then finalizes it', async () => {
    await core.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'grace' }, spec: { nodeName: 'node-a', containers: [{ name: 'c', image: 'i' }] } } });
    const marked = await core.deleteNamespacedPod({ name: 'grace', namespace: NS, gracePeriodSeconds: 20 });
    expect(marked.metadata?.deletionTimestamp).toBeInstanceOf(Date);
    expect(marked.metadata?.deletionGracePeriodSeconds).toBe(20);
    expect((await core.readNamespacedPod({ name: 'grace', namespace: NS })).metadata?.deletionTimestamp).toBeInstanceOf(Date);
    expect(fake.server.finalizePod(NS, 'grace')).toBe(true);
    expect((await expectStatus(() => core.readNamespacedPod({ name: 'grace', namespace: NS }))).code).toBe(404);
  });

  it('deletes at once with gracePeriodSeconds=0 or when unscheduled', async () => {
    await core.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'now' }, spec: { nodeName: 'node-a', containers: [{ name: 'c', image: 'i' }] } } });
    await core.deleteNamespacedPod({ name: 'now', namespace: NS, gracePeriodSeconds: 0 });
    expect(fake.server.get('pods', NS, 'now')).toBeUndefined();
    await core.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'pending' }, spec: { containers: [{ name: 'c', image: 'i' }] } } });
    await core.deleteNamespacedPod({ name: 'pending', namespace: NS });
    expect(fake.server.get('pods', NS, 'pending')).toBeUndefined();
  });

  it('changes status only through the status subresource', async () => {
    const p = await core.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'st' }, spec: { nodeName: 'node-a', containers: [{ name: 'c', image: 'i' }] }, status: { phase: 'Running' } } });
    expect(p.status?.phase).toBe('Pending');
    const viaStatus = await core.patchNamespacedPodStatus(
      { name: 'st', namespace: NS, body: { status: { phase: 'Running', podIP: '10.1.1.1' } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    expect(viaStatus.status?.phase).toBe('Running');
    const viaMain = await core.patchNamespacedPod(
      { name: 'st', namespace: NS, body: { metadata: { labels: { a: 'b' } }, status: { phase: 'Failed' } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    expect(viaMain.status?.phase).toBe('Running');
    expect(viaMain.metadata?.labels).toEqual({ a: 'b' });
    const running = await core.listNamespacedPod({ namespace: NS, fieldSelector: 'status.phase=Running' });
    expect(running.items.map((i) => i.metadata?.name)).toEqual(['st']);
  });
});

describe('authentication and discovery', () => {
  it('refuses requests without the kubeconfig token', async () => {
    const res = await fetch(`${fake.url}/api/v1/namespaces`);
    expect(res.status).toBe(401);
  });

  it('lists the claim group and its resources', async () => {
    const groups = await kc.makeApiClient(k8s.ApisApi).getAPIVersions();
    expect(groups.groups.map((g) => g.name)).toContain('sriov-underlay.io');
    const core = await kc.makeApiClient(k8s.CoreApi).getAPIVersions();
    expect(core.versions).toEqual(['v1']);
    const res = await fetch(`${fake.url}/apis/sriov-underlay.io/v1alpha1`, { headers: { authorization: `Bearer ${fake.server.token}` } });
    const list = (await res.json()) as { resources: { name: string; namespaced: boolean; kind: string }[] };
    expect(list.resources.map((r) => [r.name, r.kind, r.namespaced])).toEqual([['ipclaims', 'IPClaim', false], ['sriovnodestates', 'SriovNodeState', false]]);
  });
});
