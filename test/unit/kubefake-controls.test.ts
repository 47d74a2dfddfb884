// The fake's test controls: write counters, injected failures and latency, outages, request log,
// the /_fake HTTP surface and the standalone process.
import * as k8s from '@kubernetes/client-node';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectStatus } from '../fakes/kube-apiserver/client-errors';
import { isUnreachable } from '../../src/kube/client';
import { type FakeKube, startFakeKube } from '../fakes/kube-apiserver';
import { waitFor } from '../fakes/kube-apiserver/wait';

let fake: FakeKube;
let core: k8s.CoreV1Api;
let custom: k8s.CustomObjectsApi;
const G = { group: 'sriov-underlay.io', version: 'v1alpha1', plural: 'ipclaims' };
const claim = (ip: string) => ({
  apiVersion: 'sriov-underlay.io/v1alpha1', kind: 'IPClaim',
  metadata: { name: `net-${ip.replace(/\./g, '-')}` }, spec: { network: 'net', ip },
});

beforeAll(async () => {
  fake = await startFakeKube();
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(fake.kubeconfigPath);
  core = kc.makeApiClient(k8s.CoreV1Api);
  custom = kc.makeApiClient(k8s.CustomObjectsApi);
});
afterAll(async () => fake.close());

describe('counters', () => {
  it('counts write requests per resource and verb, and separately what was stored', async () => {
    fake.server.resetCounters();
    await custom.createClusterCustomObject({ ...G, body: claim('10.9.0.1') });
    await custom.createClusterCustomObject({ ...G, body: claim('10.9.0.2') });
    await expectStatus(() => custom.createClusterCustomObject({ ...G, body: claim('10.9.0.1') }));
    await custom.deleteClusterCustomObject({ ...G, name: 'net-10-9-0-2' });
    await custom.getClusterCustomObject({ ...G, name: 'net-10-9-0-1' });
    const c = fake.server.counters();
    expect(c.writeRequests).toBe(4);
    expect(c.writesByResource.ipclaims).toEqual({ create: 3, delete: 1 });
    expect(c.commits).toBe(3); // the 409 stored nothing
    expect(c.requests.get).toBe(1);
  });
});

describe('injected failures and latency', () => {
  it('fails the next matching request with the given code, once', async () => {
    fake.server.failNext({ code: 503, verb: 'create', resource: 'ipclaims' });
    const st = await expectStatus(() => custom.createClusterCustomObject({ ...G, body: claim('10.9.1.1') }));
    expect(st).toMatchObject({ code: 503, reason: 'ServiceUnavailable' });
    expect(fake.server.get('ipclaims', undefined, 'net-10-9-1-1')).toBeUndefined();
    await custom.createClusterCustomObject({ ...G, body: claim('10.9.1.1') });
    expect(fake.server.get('ipclaims', undefined, 'net-10-9-1-1')).toBeDefined();
  });

  it('delays requests by the injected latency', async () => {
    fake.server.setLatency(60);
    try {
      const t0 = performance.now();
      await core.listNamespace();
      expect(performance.now() - t0).toBeGreaterThanOrEqual(55);
    } finally {
      fake.server.setLatency(0);
    }
  });
});

describe('outages', () => {
  it('refuses connections while stopped and comes back on the same port with its data', async () => {
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'survives' }, data: {} } });
    const url = fake.server.url;
    await fake.server.stop();
    await expect(core.readNamespacedConfigMap({ name: 'survives', namespace: 'default' })).rejects.toThrow(/ECONNREFUSED/);
    await fake.server.start();
    expect(fake.server.url).toBe(url);
    const back = await core.readNamespacedConfigMap({ name: 'survives', namespace: 'default' });
    expect(back.metadata?.name).toBe('survives');
  });
});

describe('request log and HTTP controls', () => {
  it('logs API requests with verb, resource, namespace, name and status', async () => {
    fake.server.clearRequests();
    await expectStatus(() => core.readNamespacedConfigMap({ name: 'absent', namespace: 'default' }));
    const [entry] = fake.server.requests();
    expect(entry).toMatchObject({ method: 'GET', verb: 'get', resource: 'configmaps', namespace: 'default', name: 'absent', status: 404 });
  });

  it('serves the controls under /_fake without authentication', async () => {
    const post = (p: string) => fetch(`${fake.url}/_fake${p}`, { method: 'POST' }).then((r) => r.json() as Promise<Record<string, unknown>>);
    const state = (await (await fetch(`${fake.url}/_fake/state`)).json()) as { resourceVersion: number };
    const compacted = await post('/compact');
    expect(compacted.compactedRv).toBe(state.resourceVersion);
    await post('/counters/reset');
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'counted' }, data: {} } });
    const counters = (await (await fetch(`${fake.url}/_fake/counters`)).json()) as { writeRequests: number };
    expect(counters.writeRequests).toBe(1);
    expect(await post('/fail?code=500&verb=list&resource=pods')).toMatchObject({ code: 500 });
    expect((await expectStatus(() => core.listNamespacedPod({ namespace: 'default' }))).code).toBe(500);
    const unknown = await fetch(`${fake.url}/_fake/nope`, { method: 'POST' });
    expect(unknown.status).toBe(404);
  });
});

describe('HTTP controls for the standalone process', () => {
  it('takes the API down for a while with /_fake/outage', async () => {
    const res = await fetch(`${fake.url}/_fake/outage?ms=300`, { method: 'POST' });
    expect(await res.json()).toEqual({ downForMs: 300 });
    await waitFor('API down', async () => isUnreachable(await core.listNamespace().catch((e: unknown) => e)));
    await waitFor('API back', async () => (await core.listNamespace().catch(() => undefined)) !== undefined);
  });

  it('stores objects with status via /_fake/put and finalizes terminating pods via /_fake/finalize-pod', async () => {
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'running', namespace: 'default' }, spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'i' }] }, status: { phase: 'Running' } };
    const put = await fetch(`${fake.url}/_fake/put`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(pod) });
    expect(put.status).toBe(200);
    expect((await core.readNamespacedPod({ name: 'running', namespace: 'default' })).status?.phase).toBe('Running');
    await core.deleteNamespacedPod({ name: 'running', namespace: 'default' });
    expect(fake.server.get('pods', 'default', 'running')?.metadata.deletionTimestamp).toBeDefined();
    const fin = await fetch(`${fake.url}/_fake/finalize-pod?namespace=default&name=running`, { method: 'POST' });
    expect(await fin.json()).toEqual({ removed: true });
    expect(fake.server.get('pods', 'default', 'running')).toBeUndefined();
  });
});

describe('standalone process', () => {
  it('starts from the command line, writes a kubeconfig and serves client-node', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fakekube-cli-'));
    const kubeconfig = join(dir, 'kubeconfig');
    const child = spawn(process.execPath, [join(__dirname, '../fakes/kube-apiserver/run.mjs'), '--port', '0', '--kubeconfig', kubeconfig], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`fake apiserver exited with ${code}`)));
      });
      const ready = JSON.parse(line) as { url: string; kubeconfig: string; pid: number };
      expect(ready.kubeconfig).toBe(kubeconfig);
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(kubeconfig);
      const api = kc.makeApiClient(k8s.CoreV1Api);
      const made = await api.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'cli' }, data: { a: 'b' } } });
      expect(made.metadata?.uid).toBeDefined();
      expect((await api.readNamespacedConfigMap({ name: 'cli', namespace: 'default' })).data).toEqual({ a: 'b' });
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
