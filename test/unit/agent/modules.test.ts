// The agent's modules on their own, against the fake API server: the registration watch and the
// releases (reservations: reservations.test.ts; assign: assign.test.ts and ipam-holes.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EventRecorder } from '../../../node/agent/events';
import { RegistrationWatch } from '../../../node/agent/registration-watch';
import { Releases } from '../../../node/agent/releases';
import type { RunningPods } from '../../../node/agent/assign';
import { claimIp, type ClaimRequest } from '../../../src/ipam/claims';
import { judgeClaim } from '../../../src/ipam/reconcile-rules';
import { silentLogger } from '../../../src/log';
import { RegistrationIndex } from '../../../src/registrations/index';
import { agentEnv, createPod, POOL_NET, putCm, type AgentEnv } from './helpers';

let env: AgentEnv;
beforeAll(async () => {
  env = await agentEnv();
  await putCm(env, 'sriov-underlay', 'networks', 'network', { vlan100: POOL_NET });
});
afterAll(async () => env?.close());

const req = (name: string, uid: string, ip: string, node: string, containerID: string): ClaimRequest => ({
  network: 'vlan100', ip, kind: 'fixed', pod: { namespace: 'demo', name, uid }, node, containerID, interface: 'net1',
  source: { namespace: 'demo', configMap: 'regs', key: name, resourceVersion: '1' },
});

describe('RegistrationWatch', () => {
  it('feeds the index from the list and then the watch, and calls onChange after each change', async () => {
    const index = new RegistrationIndex();
    let changes = 0;
    const w = new RegistrationWatch({ clients: env.clients, index, events: new EventRecorder(env.clients.core, 'node-a', silentLogger()), log: silentLogger(), running: new Map(), onChange: () => changes++ });
    await w.start();
    try {
      expect(index.network('vlan100')).toBeDefined();
      expect(changes).toBe(0); // the first list is not a change
      await putCm(env, 'demo', 'w-regs', 'registration', { w1: 'network: vlan100\nip: 10.100.0.41' });
      await expect.poll(() => index.lookup('demo', 'w1').kind).toBe('resolved');
      expect(changes).toBeGreaterThan(0);
      env.kube.server.closeWatches();
      await putCm(env, 'demo', 'w-regs', 'registration', { w2: 'network: vlan100\nip: 10.100.0.42' });
      await expect.poll(() => index.lookup('demo', 'w2').kind).toBe('resolved');
      expect(index.lookup('demo', 'w1').kind).toBe('not-registered');
    } finally {
      await w.stop();
    }
  });
});

describe('Releases', () => {
  it('releases what a note names on its own node only, and forgets the pod', async () => {
    const deps = { claims: env.claims, podUid: async () => null };
    const uid = await createPod(env, 'demo', 'rel');
    await claimIp(deps, req('rel', uid, '10.100.0.51', 'node-a', 'ctr-rel'));
    await claimIp(deps, req('rel-b', 'uid-b', '10.100.0.52', 'node-b', 'ctr-rel')); // same container ID, other node
    const running: RunningPods = new Map([['demo/rel', { network: 'vlan100' } as never]]);
    const dir = path.join(env.dir, 'rel-queue');
    const r = new Releases({ nodeName: 'node-a', claimDeps: deps, running, events: new EventRecorder(env.clients.core, 'node-a', silentLogger()), log: silentLogger(), dir });
    await r.release({ v: 1, containerId: 'ctr-rel', ifName: 'net1', queuedAt: new Date().toISOString() });
    expect(await env.claims.get('vlan100.10.100.0.51')).toBeUndefined();
    expect(await env.claims.get('vlan100.10.100.0.52')).toBeDefined();
    expect(running.size).toBe(1); // the note named no pod
    await r.release({ v: 1, containerId: 'ctr-rel', ifName: 'net1', namespace: 'demo', name: 'rel', uid, queuedAt: new Date().toISOString() });
    expect(running.has('demo/rel')).toBe(true); // nothing left to release: still listed
    expect(fs.existsSync(dir)).toBe(false); // the queue is only made by start()
  });
});

describe('judgeClaim: StatefulSet pods', () => {
  const claim = { metadata: { name: 'c' }, spec: { network: 'n', ip: '10.0.0.1', kind: 'pool', pod: { namespace: 'db', name: 'mysql-0', uid: 'old' }, node: 'node-a', containerID: 'c', interface: 'net1', source: { namespace: 'db', configMap: 'r', key: 'mysql-0', resourceVersion: '1' }, claimedAt: '', updatedAt: '' } } as const;
  it('keeps the claim of an ordinal the StatefulSet covers while no pod of that name exists', () => {
    expect(judgeClaim(claim as never, { podUid: null, statefulSetReplicas: 3, liveNodes: new Set(), nowMs: 0 }).action).toBe('keep');
  });
  it('a pod of that name back under another UID that did not take the claim: it is a release candidate', () => {
    expect(judgeClaim(claim as never, { podUid: 'new', statefulSetReplicas: 3, liveNodes: new Set(), nowMs: 0 }).action).toBe('absent');
  });
});
