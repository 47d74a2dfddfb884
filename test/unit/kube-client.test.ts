// src/kube/client.ts against the fake apiserver: kubeconfig loading, failure reading, typed claims.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnderlayError } from '../../src/errors';
import {
  ClusterObjects, type CustomObject, IPCLAIMS, SRIOV_NODE_STATES, isAlreadyExists, isConflict, isNotFound, isUnreachable,
  kubeFailure, loadKubeConfig, makeKubeClients,
} from '../../src/kube/client';
import { type FakeKube, startFakeKube } from '../fakes/kube-apiserver';

interface Claim extends CustomObject { spec: { network: string; ip: string; node?: string } }

let fake: FakeKube;
let emptyHome: string;
beforeAll(async () => {
  fake = await startFakeKube();
  emptyHome = mkdtempSync(join(tmpdir(), 'kube-home-'));
});
afterAll(async () => {
  await fake.close();
  rmSync(emptyHome, { recursive: true, force: true });
});

describe('loadKubeConfig', () => {
  it('loads an explicit kubeconfig and talks to its cluster', async () => {
    const { core } = makeKubeClients(loadKubeConfig({ kubeconfig: fake.kubeconfigPath, env: {} }));
    const ns = await core.listNamespace();
    expect(ns.items.map((n) => n.metadata?.name)).toContain('kube-system');
  });

  it('falls back to $KUBECONFIG', () => {
    const kc = loadKubeConfig({ env: { KUBECONFIG: fake.kubeconfigPath, HOME: emptyHome } });
    expect(kc.getCurrentCluster()?.server).toBe(fake.url);
  });

  it('names a missing kubeconfig file', () => {
    expect(() => loadKubeConfig({ kubeconfig: '/nonexistent/kc', env: {} })).toThrow(/kubeconfig \/nonexistent\/kc \(from the --kubeconfig option\) does not exist/);
  });

  it('refuses to guess when there are no credentials at all', () => {
    let err: unknown;
    try {
      loadKubeConfig({ env: { HOME: emptyHome } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnderlayError);
    expect((err as Error).message).toContain('no Kubernetes credentials');
  });
});

describe('ClusterObjects and kubeFailure', () => {
  const clients = () => makeKubeClients(loadKubeConfig({ kubeconfig: fake.kubeconfigPath, env: {} }));

  it('creates, reads, patches, replaces, lists and deletes claims', async () => {
    const claims = new ClusterObjects<Claim>(clients().custom, IPCLAIMS);
    const made = await claims.create({ metadata: { name: 'net1-10-0-0-1', labels: { node: 'n1' } }, spec: { network: 'net1', ip: '10.0.0.1' } });
    expect(made.kind).toBe('IPClaim');
    expect((await claims.get('net1-10-0-0-1'))?.spec.ip).toBe('10.0.0.1');
    expect(await claims.get('absent')).toBeUndefined();
    const patched = await claims.mergePatch('net1-10-0-0-1', { spec: { node: 'n2' } });
    expect(patched.spec).toEqual({ network: 'net1', ip: '10.0.0.1', node: 'n2' });
    const replaced = await claims.replace('net1-10-0-0-1', { ...patched, spec: { ...patched.spec, node: 'n3' } });
    expect(replaced.spec.node).toBe('n3');
    const listed = await claims.list({ labelSelector: 'node=n1' });
    expect(listed.items.map((c) => c.metadata?.name)).toEqual(['net1-10-0-0-1']);
    const gone = await claims.delete('net1-10-0-0-1', { uid: made.metadata!.uid! });
    expect(gone.metadata?.uid).toBe(made.metadata?.uid);
  });

  it('reads AlreadyExists, Conflict and NotFound out of client-node errors', async () => {
    const claims = new ClusterObjects<Claim>(clients().custom, IPCLAIMS);
    const body: Claim = { metadata: { name: 'net1-10-0-0-2' }, spec: { network: 'net1', ip: '10.0.0.2' } };
    const first = await claims.create(body);
    const dup = await claims.create(body).catch((e: unknown) => e);
    expect(isAlreadyExists(dup)).toBe(true);
    expect(kubeFailure(dup)).toMatchObject({ code: 409, reason: 'AlreadyExists', unreachable: false });
    const stale = await claims.delete('net1-10-0-0-2', { resourceVersion: '1' }).catch((e: unknown) => e);
    expect(isConflict(stale)).toBe(true);
    expect(isAlreadyExists(stale)).toBe(false);
    await claims.delete('net1-10-0-0-2', { resourceVersion: first.metadata!.resourceVersion! });
    const missing = await claims.delete('net1-10-0-0-2').catch((e: unknown) => e);
    expect(isNotFound(missing)).toBe(true);
    expect(kubeFailure(missing).message).toBe('ipclaims.sriov-underlay.io "net1-10-0-0-2" not found');
  });

  it('serves SriovNodeState objects', async () => {
    const states = new ClusterObjects<CustomObject & { status: { vfs: number } }>(clients().custom, SRIOV_NODE_STATES);
    await states.create({ metadata: { name: 'node-1' }, status: { vfs: 4 } });
    expect((await states.get('node-1'))?.status.vfs).toBe(4);
  });

  it('tells an unreachable apiserver from an answer', async () => {
    const { core } = clients();
    await fake.server.stop();
    try {
      const err = await core.listNamespace().catch((e: unknown) => e);
      expect(isUnreachable(err)).toBe(true);
      expect(kubeFailure(err).code).toBeUndefined();
      expect(kubeFailure(err).message).toMatch(/ECONNREFUSED/);
    } finally {
      await fake.server.start();
    }
    expect(isUnreachable(await core.readNamespace({ name: 'nope' }).catch((e: unknown) => e))).toBe(false);
  });
});
