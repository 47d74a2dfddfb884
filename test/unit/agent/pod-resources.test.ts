import { afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FakePodResourcesServer, type GetMode } from '../../fakes/podresources/server';
import { PodResourcesClient } from '../../../node/agent/pod-resources';
import { silentLogger } from '../../../src/log';

let server: FakePodResourcesServer | null = null;
let client: PodResourcesClient | null = null;
let dir = '';
afterEach(async () => {
  client?.close();
  await server?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function setup(mode: GetMode) {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reg-pr-'));
  server = new FakePodResourcesServer({ socketPath: path.join(dir, 'kubelet.sock'), getMode: mode });
  await server.start();
  server.setPod({
    namespace: 'db',
    name: 'pg-0',
    containers: [
      { name: 'init', devices: [] },
      { name: 'pg', devices: [{ resourceName: 'example.com/gpu', deviceIds: ['GPU-1'] }, { resourceName: 'sriov-underlay.io/vf-pool-a', deviceIds: ['0000:81:10.3'] }] },
    ],
  });
  client = new PodResourcesClient(silentLogger(), server.socketPath);
}

describe('PodResources client (pod → VF)', () => {
  it.each(['enabled', 'gate-disabled', 'absent'] as const)('finds the VF of the resource with Get %s', async (mode) => {
    await setup(mode);
    expect(await client!.deviceFor('db', 'pg-0', 'sriov-underlay.io/vf-pool-a')).toBe('0000:81:10.3');
    expect(await client!.deviceFor('db', 'pg-0')).toBe('0000:81:10.3'); // a non-PCI device id is skipped
    expect(await client!.deviceFor('db', 'nobody', 'sriov-underlay.io/vf-pool-a')).toBeUndefined();
    if (mode === 'enabled') expect(server!.calls.List).toBe(0);
    else expect(server!.calls.Get).toBe(1); // tried once, then List from then on
  });
});
