// Time bounds (issue 10, item 6, agent side): the CNI socket never cuts a request it is answering
// and always answers before the CNI gives up; API calls time out; one hung pool allocation does not
// block its network on the node. The socket's directory is 0700.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { agentLookup } from '../../../cni/agent-client';
import { startCniSocket } from '../../../node/agent/cni-socket';
import { UnderlayError } from '../../../src/errors';
import { ClusterObjects, IPCLAIMS, isUnreachable, loadKubeConfig, makeKubeClients } from '../../../src/kube/client';
import type { IPClaim } from '../../../src/ipam/claims';
import { listingView, PoolAllocator } from '../../../src/ipam/pool-allocator';
import { silentLogger } from '../../../src/log';
import { PROTOCOL_VERSION } from '../../../src/schemas/agent-protocol';
import { startFakeKube, type FakeKube } from '../../fakes/kube-apiserver';
import { crdValidators } from '../../fixtures/crd-schema';
import { network, poolRequest } from '../ipam/helpers';

let dir: string;
let fake: FakeKube;
const req = { namespace: 'demo', name: 'p', uid: 'u', containerId: 'c', ifName: 'net1' };

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-time-'));
  fake = await startFakeKube({ validators: crdValidators() });
});
afterAll(async () => {
  await fake?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('CNI socket', () => {
  it('answers a request that takes longer than the idle timeout (an in-flight request is never cut)', async () => {
    const sock = path.join(dir, 'slow', 'agent.sock');
    const server = await startCniSocket(sock, () => new Promise((r) => setTimeout(() => r({ v: PROTOCOL_VERSION, ok: true, registered: false }), 600)), silentLogger(), undefined, { idleMs: 100 });
    try {
      expect(await agentLookup(sock, req)).toMatchObject({ ok: true, registered: false });
    } finally {
      await server.close();
    }
  });

  it('a handler still busy at the answer deadline is answered "try again later" before the CNI gives up', async () => {
    const sock = path.join(dir, 'hung', 'agent.sock');
    const server = await startCniSocket(sock, () => new Promise(() => undefined), silentLogger(), undefined, { answerDeadlineMs: 200 });
    try {
      const a = await agentLookup(sock, req);
      expect(a).toMatchObject({ ok: false, code: 11 });
      expect((a as { message: string }).message).toContain('could not finish within 200 ms');
    } finally {
      await server.close();
    }
  });

  it('keeps its socket in a 0700 directory, also one an older release made 0755', async () => {
    const d = path.join(dir, 'old');
    fs.mkdirSync(d, { mode: 0o755 });
    fs.chmodSync(d, 0o755);
    const server = await startCniSocket(path.join(d, 'agent.sock'), () => Promise.resolve({ v: PROTOCOL_VERSION, ok: true, registered: false }), silentLogger());
    try {
      expect(fs.statSync(d).mode & 0o777).toBe(0o700);
      expect(fs.statSync(path.join(d, 'agent.sock')).mode & 0o777).toBe(0o600);
    } finally {
      await server.close();
    }
    const fresh = path.join(dir, 'new', 'deeper');
    const s2 = await startCniSocket(path.join(fresh, 'agent.sock'), () => Promise.resolve({ v: PROTOCOL_VERSION, ok: true, registered: false }), silentLogger());
    await s2.close();
    expect(fs.statSync(fresh).mode & 0o777).toBe(0o700);
  });
});

describe('Kubernetes API calls', () => {
  it('give up on a server that does not answer, as "unreachable"', async () => {
    const clients = makeKubeClients(loadKubeConfig({ kubeconfig: fake.kubeconfigPath, env: {} }), { timeoutMs: 150 });
    fake.server.setLatency(2_000);
    try {
      const err = await clients.core.listNamespace().catch((e: unknown) => e);
      expect(isUnreachable(err)).toBe(true);
      expect(String((err as Error).message)).toContain('no answer from the Kubernetes API within 150 ms');
    } finally {
      fake.server.setLatency(0);
    }
  });

  it('a hung pool allocation fails "try again later" and the next one on that network does not wait for it', async () => {
    const clients = makeKubeClients(loadKubeConfig({ kubeconfig: fake.kubeconfigPath, env: {} }), { timeoutMs: 60_000 });
    const claims = new ClusterObjects<IPClaim>(clients.custom, IPCLAIMS);
    const alloc = new PoolAllocator({ claims, claimDeps: { claims, podUid: () => Promise.resolve(null) }, view: listingView(claims), allocationTimeoutMs: 200 });
    const net = network('hang', { subnet: '10.7.0.0/24', ranges: ['10.7.0.10-10.7.0.20'] });
    fake.server.clearRequests();
    fake.server.setLatency(3_000); // the first allocation's list hangs at the server
    const first = alloc.allocate(net, poolRequest('a', 'ua')).catch((e: unknown) => e);
    await expect.poll(() => fake.server.requests().length).toBe(1);
    fake.server.setLatency(0);
    const second = await alloc.allocate(net, poolRequest('b', 'ub'));
    const err = (await first) as UnderlayError;
    expect(err.code).toBe(11);
    expect(err.message).toContain('took longer than 200 ms');
    expect(second).toHaveLength(1);
    // The first allocation's request was still hanging at the server when the second got its address.
    expect(fake.server.requests()[0]?.status).toBe(0);
  });
});
