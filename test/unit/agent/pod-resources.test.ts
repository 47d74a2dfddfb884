import { afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as net from 'node:net';
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

describe('PodResources client connection', () => {
  it('connects to kubelet when created, before the first pod asks (the first lookup pays no set-up)', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reg-pr-'));
    const sock = path.join(dir, 'kubelet.sock');
    // A bare listener: it only counts connections, so nothing but the client's own connect counts.
    let connections = 0;
    const socks: net.Socket[] = [];
    const listener = net.createServer((c) => {
      connections++;
      socks.push(c);
      c.on('error', () => undefined);
    });
    await new Promise<void>((r) => listener.listen(sock, r));
    try {
      client = new PodResourcesClient(silentLogger(), sock);
      for (let i = 0; i < 100 && connections === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(connections).toBeGreaterThan(0);
    } finally {
      client?.close();
      client = null;
      socks.forEach((c) => c.destroy());
      await new Promise((r) => listener.close(r));
    }
  });
});
