// IPAM holes (issue 10, item 7 and the claim part of item 9), each through the agent as the CNI
// drives it, against the fake API server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { queueClaimRelease } from '../../../cni/claim-release';
import type { Invocation } from '../../../cni/skel';
import { UnderlayError } from '../../../src/errors';
import { claimIp } from '../../../src/ipam/claims';
import { ClusterReader } from '../../../src/ipam/reconcile';
import { judgeClaim } from '../../../src/ipam/reconcile-rules';
import { podUidGetter } from '../../../src/kube/pods';
import type { Agent } from '../../../node/agent/agent';
import { add, agentEnv, createNode, createPod, del, launch, POOL_NET, putCm, type AgentEnv } from './helpers';

let env: AgentEnv;
let a: Agent;
let b: Agent;

beforeAll(async () => {
  env = await agentEnv();
  await createNode(env, 'node-a');
  await createNode(env, 'node-b');
  await putCm(env, 'sriov-underlay', 'networks', 'network', { vlan100: POOL_NET });
  await putCm(env, 'demo', 'regs', 'registration', {
    batch: 'pool: vlan100\nreserve: true',
    'db-0': 'pool: vlan100',
    fixed: 'network: vlan100\nip: 10.100.0.11',
    again: 'network: vlan100\nip: 10.100.0.12',
    etcd: 'network: vlan100\nip: 10.100.0.13',
    thief: 'network: vlan100\nip: 10.100.0.14',
    moved: 'network: vlan100\nip: 10.100.0.15',
  });
  a = await launch(env, 'node-a');
  b = await launch(env, 'node-b');
});
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await env?.close();
});

const holders = async (pod: string) => (await env.claims.list()).items.filter((c) => c.spec.pod.name === pod && !c.spec.releasedAt);

describe('IPAM holes', () => {
  it('a pod re-created under a new UID without a DEL (its node died) gets its reservation back', async () => {
    await a.syncReservations();
    const reserved = (await holders('batch')).map((c) => c.spec.ip);
    expect(reserved).toHaveLength(1);
    const u1 = await createPod(env, 'demo', 'batch');
    expect(await add(a, 'demo', 'batch', u1)).toEqual(reserved);
    env.kube.server.remove('pods', 'demo', 'batch'); // no DEL ever runs
    const u2 = await createPod(env, 'demo', 'batch');
    expect(await add(a, 'demo', 'batch', u2)).toEqual(reserved);
    expect((await holders('batch')).map((c) => [c.spec.ip, c.spec.pod.uid, c.spec.kind])).toEqual([[reserved[0], u2, 'reserved']]);
  });

  it('a StatefulSet pod re-created under a new UID gets its pool address back; the dead claim does not linger', async () => {
    const u1 = await createPod(env, 'demo', 'db-0');
    const first = await add(a, 'demo', 'db-0', u1);
    env.kube.server.remove('pods', 'demo', 'db-0');
    const u2 = await createPod(env, 'demo', 'db-0');
    expect(await add(a, 'demo', 'db-0', u2)).toEqual(first);
    expect((await holders('db-0')).map((c) => c.spec.pod.uid)).toEqual([u2]);
  });

  it('ADD, DEL, ADD of one container ID: the queued release does not free the address now in use', async () => {
    const uid = await createPod(env, 'demo', 'again');
    await add(a, 'demo', 'again', uid, 'ctr-again');
    // DEL queues its note while the API is down, so the agent cannot run it before the runtime ADDs
    // the same container again.
    await env.kube.server.stop();
    try {
      queueClaimRelease(path.join(env.dir, 'state-node-a'), { containerId: 'ctr-again', ifName: 'net1', pod: { namespace: 'demo', name: 'again', uid } } as unknown as Invocation);
      await a.drainReleases();
    } finally {
      await env.kube.server.start();
    }
    expect(await add(a, 'demo', 'again', uid, 'ctr-again')).toEqual(['10.100.0.12']);
    await a.drainReleases();
    expect(fs.readdirSync(path.join(env.dir, 'queue-node-a'))).toEqual([]);
    expect((await holders('again')).map((c) => c.spec.pod.uid)).toEqual([uid]);
  });

  it('a static pod (mirror UID ≠ the UID the CNI sees) is alive to the claim rules: not taken over, not released', async () => {
    const hash = 'b1946ac92492d2347c6235b4d2611184';
    await createPod(env, 'demo', 'etcd', 'node-a', hash);
    expect(await add(a, 'demo', 'etcd', hash)).toEqual(['10.100.0.13']);
    const [held] = await holders('etcd');
    // Another pod asking for the address (claimIp confirms the holder with a fresh read of its pod).
    const ou = await createPod(env, 'demo', 'other');
    const deps = { claims: env.claims, podUid: podUidGetter(env.clients.core) };
    const req = { network: 'vlan100', ip: '10.100.0.13', kind: 'fixed' as const, pod: { namespace: 'demo', name: 'other', uid: ou }, node: 'node-a', containerID: 'c', interface: 'net1', source: { namespace: 'demo', configMap: 'x', key: 'other', resourceVersion: '1' } };
    const err = (await claimIp(deps, req).catch((e: unknown) => e)) as UnderlayError;
    expect(err.code).toBe(105);
    // The reconcile loop's reading of the same claim.
    const facts = await new ClusterReader(env.clients.core, env.clients.apps).facts(held!, new Set(['node-a']), Date.now());
    expect(judgeClaim(held!, facts).action).toBe('keep');
    expect((await holders('etcd')).map((c) => c.spec.pod.uid)).toEqual([hash]);
  });

  it('a DEL note on one node never releases a claim held on another node, even with the same pod UID', async () => {
    const uid = await createPod(env, 'demo', 'thief');
    await add(a, 'demo', 'thief', uid, 'ctr-thief');
    await del(env, b, 'node-b', 'demo', 'thief', uid, 'ctr-thief');
    expect((await holders('thief')).map((c) => c.spec.node)).toEqual(['node-a']);
    await del(env, a, 'node-a', 'demo', 'thief', uid, 'ctr-thief');
    expect(await holders('thief')).toEqual([]);
  });

  it('an agent never takes over a claim held on another node while that node exists; once it is deleted, it does', async () => {
    const u1 = await createPod(env, 'demo', 'moved', 'node-a');
    await add(a, 'demo', 'moved', u1);
    env.kube.server.remove('pods', 'demo', 'moved');
    const u2 = await createPod(env, 'demo', 'moved', 'node-b');
    const err = (await add(b, 'demo', 'moved', u2).catch((e: unknown) => e)) as UnderlayError;
    expect(err.code).toBe(11);
    expect(err.message).toContain('node node-a still exists');
    expect((await holders('moved')).map((c) => [c.spec.node, c.spec.pod.uid])).toEqual([['node-a', u1]]);
    await env.clients.core.deleteNode({ name: 'node-a' });
    expect(await add(b, 'demo', 'moved', u2)).toEqual(['10.100.0.15']);
    await createNode(env, 'node-a');
  });

  it('every claim an agent writes for a pod carries its node label', async () => {
    const live = (await env.claims.list()).items.filter((c) => c.spec.pod.uid && !c.spec.releasedAt);
    expect(live.length).toBeGreaterThan(3);
    for (const c of live) expect(c.metadata?.labels?.['sriov-underlay.io/node']).toBe(c.spec.node);
  });
});
