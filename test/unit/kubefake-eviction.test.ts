// The fake apiserver's pods/eviction, policy/v1 PodDisruptionBudgets and coordination.k8s.io/v1
// Leases, through client-node, against what the Kubernetes docs say: "API-initiated eviction"
// (429 Too Many Requests while the PDB allows no disruption, the pod deleted otherwise, no PDB =
// evicted), "Specifying a Disruption Budget" (minAvailable / maxUnavailable as an integer or a
// percentage, rounded up, over the pods the selector matches; disruptionsAllowed in the status),
// and Leases ("Leases": resourceVersion-checked updates, so two racing holders get one 409).
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { kubeFailure, loadKubeConfig } from '../../src/kube/client';
import { startFakeKube, type FakeKube } from '../fakes/kube-apiserver';

let fake: FakeKube;
let core: k8s.CoreV1Api;
let policy: k8s.PolicyV1Api;
let coord: k8s.CoordinationV1Api;
let apps: k8s.AppsV1Api;
let n = 0;
let ns: string;
beforeAll(async () => {
  fake = await startFakeKube();
  const kc = loadKubeConfig({ kubeconfig: fake.kubeconfigPath, env: {} });
  core = kc.makeApiClient(k8s.CoreV1Api);
  policy = kc.makeApiClient(k8s.PolicyV1Api);
  coord = kc.makeApiClient(k8s.CoordinationV1Api);
  apps = kc.makeApiClient(k8s.AppsV1Api);
});
afterAll(() => fake.close());
beforeEach(() => {
  ns = `t${++n}`;
  fake.server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
});

const until = async (what: () => boolean | Promise<boolean>, ms = 3000) => {
  const end = Date.now() + ms;
  while (!(await what())) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
};

/** A running pod on node-a as kubelet reports it (Ready unless told otherwise). */
function pod(name: string, labels: Record<string, string>, o: { ready?: boolean; grace?: number; sts?: string; phase?: string } = {}) {
  return fake.server.put({
    apiVersion: 'v1', kind: 'Pod',
    metadata: {
      name, namespace: ns, labels,
      ...(o.sts ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: o.sts, uid: 'u', controller: true }] } : {}),
    },
    spec: { nodeName: 'node-a', terminationGracePeriodSeconds: o.grace ?? 0, containers: [{ name: 'c', image: 'i' }] },
    status: { phase: o.phase ?? 'Running', conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }] },
  });
}

async function pdb(name: string, spec: Record<string, unknown>) {
  await policy.createNamespacedPodDisruptionBudget({ namespace: ns, body: { metadata: { name }, spec: { selector: { matchLabels: { app: 'db' } }, ...spec } } });
  // The disruption controller is asynchronous, as in kube: wait for it to have seen this generation.
  await until(async () => (await policy.readNamespacedPodDisruptionBudget({ namespace: ns, name })).status?.observedGeneration === 1);
  return (await policy.readNamespacedPodDisruptionBudget({ namespace: ns, name })).status!;
}

const evict = (name: string, deleteOptions?: k8s.V1DeleteOptions) =>
  core.createNamespacedPodEviction({ name, namespace: ns, body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace: ns }, ...(deleteOptions ? { deleteOptions } : {}) } });
const failureOf = (p: Promise<unknown>) => p.then(() => { throw new Error('expected a failure'); }, (e: unknown) => kubeFailure(e));
const exists = (name: string) => fake.server.get('pods', ns, name) !== undefined;

describe('fake apiserver: PodDisruptionBudget status (the disruption controller)', () => {
  it('minAvailable int / percent and maxUnavailable percent, rounded up, over the selected pods', async () => {
    for (let i = 0; i < 4; i++) pod(`db-${i}`, { app: 'db' }, { sts: 'db' });
    pod('web', { app: 'web' });
    await apps.createNamespacedStatefulSet({ namespace: ns, body: { metadata: { name: 'db' }, spec: { replicas: 4, serviceName: 'db', selector: { matchLabels: { app: 'db' } }, template: { metadata: { labels: { app: 'db' } }, spec: { containers: [{ name: 'c', image: 'i' }] } } } } });
    expect(await pdb('min3', { minAvailable: 3 })).toMatchObject({ expectedPods: 4, currentHealthy: 4, desiredHealthy: 3, disruptionsAllowed: 1 });
    await policy.deleteNamespacedPodDisruptionBudget({ namespace: ns, name: 'min3' });
    // 50% of 4 = 2 must stay: 2 may go. maxUnavailable 30% of 4 = 1.2, rounded up to 2.
    expect(await pdb('half', { minAvailable: '50%' })).toMatchObject({ desiredHealthy: 2, disruptionsAllowed: 2 });
    await policy.deleteNamespacedPodDisruptionBudget({ namespace: ns, name: 'half' });
    expect(await pdb('maxu', { maxUnavailable: '30%' })).toMatchObject({ desiredHealthy: 2, disruptionsAllowed: 2 });
  });

  it('an unready pod is not healthy; bare pods with maxUnavailable have no controller and allow nothing', async () => {
    pod('db-0', { app: 'db' });
    pod('db-1', { app: 'db' }, { ready: false });
    expect(await pdb('min1', { minAvailable: 1 })).toMatchObject({ expectedPods: 2, currentHealthy: 1, desiredHealthy: 1, disruptionsAllowed: 0 });
    await policy.deleteNamespacedPodDisruptionBudget({ namespace: ns, name: 'min1' });
    const st = await pdb('maxu', { maxUnavailable: 1 });
    expect(st.disruptionsAllowed).toBe(0);
    expect(st.conditions?.[0]).toMatchObject({ reason: 'SyncFailed', message: 'found no controllers for pod "db-0"' });
  });

  it('rejects both fields, a bad percentage and a bad selector', async () => {
    const bad = async (spec: Record<string, unknown>) =>
      failureOf(policy.createNamespacedPodDisruptionBudget({ namespace: ns, body: { metadata: { name: 'x' }, spec: spec as k8s.V1PodDisruptionBudgetSpec } }));
    expect(await bad({ minAvailable: 1, maxUnavailable: 1 })).toMatchObject({ code: 422, message: expect.stringContaining('cannot be both set') });
    expect(await bad({ minAvailable: '150%' })).toMatchObject({ code: 422, message: expect.stringContaining('must not be greater than 100%') });
    expect(await bad({ minAvailable: 'lots' })).toMatchObject({ code: 422 });
    expect(await bad({ minAvailable: 1.5 })).toMatchObject({ code: 400 });
    expect(await bad({ minAvailable: 1, selector: { matchExpressions: [{ key: 'a', operator: 'Near' }] } })).toMatchObject({ code: 400 });
  });
});

describe('fake apiserver: pods/eviction', () => {
  it('a pod without a PDB is evicted (201, deleted); a missing pod is 404', async () => {
    pod('lonely', { app: 'x' });
    await evict('lonely');
    expect(exists('lonely')).toBe(false);
    expect(await failureOf(evict('lonely'))).toMatchObject({ code: 404 });
  });

  it('429 TooManyRequests with a DisruptionBudget cause while none is allowed; allowed once the PDB is relaxed', async () => {
    pod('db-0', { app: 'db' });
    pod('db-1', { app: 'db' });
    await pdb('db-pdb', { minAvailable: 2 });
    const e = await evict('db-0').catch((x: { code: number; body: string }) => x);
    expect((e as { code: number }).code).toBe(429);
    const status = JSON.parse((e as { body: string }).body) as k8s.V1Status;
    expect(status).toMatchObject({ reason: 'TooManyRequests', message: "Cannot evict pod as it would violate the pod's disruption budget." });
    expect(status.details?.causes).toEqual([{ reason: 'DisruptionBudget', message: 'The disruption budget db-pdb needs 2 healthy pods and has 2 currently' }]);
    expect(exists('db-0')).toBe(true);

    await policy.patchNamespacedPodDisruptionBudget({ namespace: ns, name: 'db-pdb', body: { spec: { minAvailable: 1 } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    await until(async () => (await policy.readNamespacedPodDisruptionBudget({ namespace: ns, name: 'db-pdb' })).status?.observedGeneration === 2);
    await evict('db-0');
    expect(exists('db-0')).toBe(false);
    // One disruption was allowed and it is used: the second pod stays.
    expect(await failureOf(evict('db-1'))).toMatchObject({ code: 429 });
    expect(exists('db-1')).toBe(true);
  });

  it('the eviction takes one disruption off the status at once, before the controller catches up', async () => {
    for (let i = 0; i < 3; i++) pod(`db-${i}`, { app: 'db' }, { grace: 30 });
    await pdb('p', { minAvailable: 1 });
    // A controller that lags (as kube-controller-manager can): only the eviction's own update of
    // the status stands between two evictions and a third.
    fake.server.setDisruptionControllerDelay(60_000);
    try {
      await evict('db-0');
      // Graceful: the pod is terminating (kubelet has not finished).
      expect(fake.server.get('pods', ns, 'db-0')?.metadata.deletionTimestamp).toBeDefined();
      expect(fake.server.get('poddisruptionbudgets', ns, 'p')?.status).toMatchObject({ disruptionsAllowed: 1, disruptedPods: { 'db-0': expect.any(String) } });
      await evict('db-1');
      expect(await failureOf(evict('db-2'))).toMatchObject({ code: 429 });
    } finally {
      fake.server.setDisruptionControllerDelay(0);
    }
  });

  it('the eviction deleteOptions are honoured (gracePeriodSeconds 0 deletes at once); an unready pod may go when the budget is met', async () => {
    pod('db-0', { app: 'db' }, { grace: 30 });
    pod('db-1', { app: 'db' });
    pod('db-2', { app: 'db' }, { ready: false });
    await pdb('p', { minAvailable: 1 });
    await evict('db-0', { gracePeriodSeconds: 0 });
    expect(exists('db-0')).toBe(false);
    await until(async () => (await policy.readNamespacedPodDisruptionBudget({ namespace: ns, name: 'p' })).status?.currentHealthy === 1);
    // db-1 is the one healthy pod the budget needs; db-2 is not ready and may go (IfHealthyBudget).
    expect(await failureOf(evict('db-1'))).toMatchObject({ code: 429 });
    await evict('db-2');
    expect(exists('db-2')).toBe(false);
  });

  it('a pending or finished pod ignores the PDB; two PDBs for one pod are a 500; a wrong name is a 400; GET is not served', async () => {
    pod('db-0', { app: 'db' }, { phase: 'Pending' });
    pod('db-1', { app: 'db' });
    await pdb('p', { minAvailable: 5 });
    await evict('db-0');
    expect(exists('db-0')).toBe(false);
    await pdb('q', { minAvailable: 0 });
    expect(await failureOf(evict('db-1'))).toMatchObject({ code: 500, message: expect.stringContaining('more than one PodDisruptionBudget') });
    const wrong = core.createNamespacedPodEviction({ name: 'db-1', namespace: ns, body: { metadata: { name: 'other' } } });
    expect(await failureOf(wrong)).toMatchObject({ code: 400, message: 'name in URL does not match name in Eviction object' });
    const res = await fetch(`${fake.url}/api/v1/namespaces/${ns}/pods/db-1/eviction`, { headers: { Authorization: `Bearer ${fake.server.token}` } });
    expect(res.status).toBe(405);
  });
});

describe('fake apiserver: coordination.k8s.io/v1 Leases', () => {
  const spec = (holder: string): k8s.V1LeaseSpec => ({ holderIdentity: holder, leaseDurationSeconds: 15, renewTime: new k8s.V1MicroTime() });

  it('one create wins (409 AlreadyExists for the other); of two updates from one resourceVersion one gets 409 Conflict', async () => {
    const results = await Promise.allSettled(['a', 'b'].map((h) => coord.createNamespacedLease({ namespace: ns, body: { metadata: { name: 'lock' }, spec: spec(h) } })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(kubeFailure(lost.reason)).toMatchObject({ code: 409, reason: 'AlreadyExists' });

    const cur = await coord.readNamespacedLease({ namespace: ns, name: 'lock' });
    const tries = await Promise.allSettled(['a', 'b'].map((h) => coord.replaceNamespacedLease({ namespace: ns, name: 'lock', body: { ...cur, spec: spec(h) } })));
    expect(tries.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(kubeFailure((tries.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason)).toMatchObject({ code: 409, reason: 'Conflict' });
  });

  it('validates the spec: a non-positive duration is 422, a bad renewTime 400', async () => {
    expect(await failureOf(coord.createNamespacedLease({ namespace: ns, body: { metadata: { name: 'x' }, spec: { leaseDurationSeconds: 0 } } })))
      .toMatchObject({ code: 422, message: expect.stringContaining('spec.leaseDurationSeconds') });
    const res = await fetch(`${fake.url}/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`, {
      method: 'POST', headers: { Authorization: `Bearer ${fake.server.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ metadata: { name: 'y' }, spec: { renewTime: 'yesterday' } }),
    });
    expect(res.status).toBe(400);
  });
});
