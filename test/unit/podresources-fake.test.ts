// The fake kubelet PodResources server, called by a plain grpc-js client built from the shared .proto.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type AllocatableResourcesResponse, type GetPodResourcesResponse, type ListPodResourcesResponse, loadPodResourcesLister,
} from '../../src/proto/podresources';
import { FakePodResourcesServer } from '../fakes/podresources/server';

const RES = 'sriov-underlay.io/vlan-pool';
let dir: string;
let fake: FakePodResourcesServer;
type Unary = (req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
let client: grpc.Client & Record<string, Unary>;

function call<T>(method: 'List' | 'Get' | 'GetAllocatableResources', req: unknown, opts: grpc.CallOptions = {}): Promise<T> {
  return new Promise((resolve, reject) => client[method]!(req, opts, (err, res) => (err ? reject(err) : resolve(res as T))));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'podres-'));
  fake = new FakePodResourcesServer({
    socketPath: join(dir, 'kubelet.sock'),
    allocatable: [{ resourceName: RES, deviceIds: ['0000:3b:02.0', '0000:3b:02.1', '0000:3b:02.2'], numaNode: 0 }],
  });
  await fake.start();
  const Lister = loadPodResourcesLister();
  client = new Lister(`unix:${fake.socketPath}`, grpc.credentials.createInsecure()) as typeof client;
  fake.setPod({ namespace: 'db', name: 'mysql-0', containers: [{ name: 'mysql', devices: [{ resourceName: RES, deviceIds: ['0000:3b:02.1'], numaNode: 0 }] }, { name: 'sidecar', devices: [] }] });
  fake.setPod({ namespace: 'db', name: 'mysql-1', containers: [{ name: 'mysql', devices: [{ resourceName: RES, deviceIds: ['0000:3b:02.2'] }] }] });
});
afterEach(() => fake.setGetMode('enabled'));
afterAll(async () => {
  client.close();
  await fake.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('fake kubelet PodResources v1', () => {
  it('serves on a unix socket', () => {
    expect(statSync(fake.socketPath).isSocket()).toBe(true);
  });

  it('lists every pod with its containers and devices', async () => {
    const res = await call<ListPodResourcesResponse>('List', {});
    expect(res.podResources.map((p) => `${p.namespace}/${p.name}`)).toEqual(['db/mysql-0', 'db/mysql-1']);
    const mysql0 = res.podResources[0]!;
    expect(mysql0.containers.map((c) => c.name)).toEqual(['mysql', 'sidecar']);
    expect(mysql0.containers[0]!.devices).toEqual([{ resourceName: RES, deviceIds: ['0000:3b:02.1'], topology: { nodes: [{ ID: 0 }] } }]);
    expect(mysql0.containers[1]!.devices).toEqual([]);
  });

  it('gets one pod when Get is enabled, and errors like kubelet for an unknown pod', async () => {
    const res = await call<GetPodResourcesResponse>('Get', { podName: 'mysql-1', podNamespace: 'db' });
    expect(res.podResources?.containers[0]?.devices[0]?.deviceIds).toEqual(['0000:3b:02.2']);
    await expect(call('Get', { podName: 'nope', podNamespace: 'db' })).rejects.toMatchObject({ code: grpc.status.UNKNOWN, details: 'pod nope in namespace db not found' });
  });

  it('answers Get with Unknown "method disabled" when the feature gate is off', async () => {
    fake.setGetMode('gate-disabled');
    await expect(call('Get', { podName: 'mysql-1', podNamespace: 'db' })).rejects.toMatchObject({ code: grpc.status.UNKNOWN, details: 'PodResources API Get method disabled' });
  });

  it('answers Get with Unimplemented on a kubelet that predates it', async () => {
    fake.setGetMode('absent');
    await expect(call('Get', { podName: 'mysql-1', podNamespace: 'db' })).rejects.toMatchObject({ code: grpc.status.UNIMPLEMENTED });
  });

  it('reports allocatable devices', async () => {
    const res = await call<AllocatableResourcesResponse>('GetAllocatableResources', {});
    expect(res.devices[0]).toMatchObject({ resourceName: RES, deviceIds: ['0000:3b:02.0', '0000:3b:02.1', '0000:3b:02.2'] });
  });

  it('forgets removed pods and survives a restart on the same socket path', async () => {
    fake.removePod('db', 'mysql-1');
    await fake.stop();
    await expect(call('List', {})).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    await fake.start();
    // The channel is in reconnect backoff after the outage; a client must wait for it (or retry).
    await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())));
    const res = await call<ListPodResourcesResponse>('List', {});
    expect(res.podResources.map((p) => p.name)).toEqual(['mysql-0']);
    expect(fake.calls.List).toBeGreaterThanOrEqual(2);
  });
});
