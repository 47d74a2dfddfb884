// apps/v1 StatefulSets in the fake apiserver, through client-node's AppsV1Api.
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadKubeConfig } from '../../src/kube/client';
import { startFakeKube, type FakeKube } from '../fakes/kube-apiserver';

let fake: FakeKube;
let apps: k8s.AppsV1Api;
beforeAll(async () => {
  fake = await startFakeKube();
  apps = loadKubeConfig({ kubeconfig: fake.kubeconfigPath, env: {} }).makeApiClient(k8s.AppsV1Api);
});
afterAll(() => fake.close());

const body = (name: string, replicas?: number): k8s.V1StatefulSet => ({
  metadata: { name },
  spec: {
    ...(replicas === undefined ? {} : { replicas }),
    serviceName: name,
    selector: { matchLabels: { app: name } },
    template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'c', image: 'mysql' }] } },
  },
});

describe('fake apiserver: statefulsets', () => {
  it('creates with replicas defaulted to 1, scales with a merge patch, reads back', async () => {
    const created = await apps.createNamespacedStatefulSet({ namespace: 'default', body: body('mysql') });
    expect(created.spec?.replicas).toBe(1);
    await apps.patchNamespacedStatefulSet(
      { namespace: 'default', name: 'mysql', body: { spec: { replicas: 3 } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    const got = await apps.readNamespacedStatefulSet({ namespace: 'default', name: 'mysql' });
    expect(got.spec?.replicas).toBe(3);
    expect(Number(got.metadata?.resourceVersion)).toBeGreaterThan(Number(created.metadata?.resourceVersion));
  });

  it('refuses negative replicas with 422 naming spec.replicas, and 404s a missing one', async () => {
    await expect(apps.createNamespacedStatefulSet({ namespace: 'default', body: body('bad', -1) })).rejects.toMatchObject({ code: 422 });
    const err: unknown = await apps.createNamespacedStatefulSet({ namespace: 'default', body: body('bad', -1) }).catch((e: { body: string }) => JSON.parse(e.body));
    expect((err as { details: { causes: { field: string }[] } }).details.causes[0]!.field).toBe('spec.replicas');
    await expect(apps.readNamespacedStatefulSet({ namespace: 'default', name: 'nope' })).rejects.toMatchObject({ code: 404 });
  });
});
