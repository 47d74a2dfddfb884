// Fault matrix, "the API server slow, returning 500s, and closing watches": the agent answers the
// CNI in time, recovers, never hands one address to two pods, and its reconcile loop never
// releases a live pod's claim.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../../node/agent/agent';
import { agentLookup, answerToPodSettings } from '../../../cni/agent-client';
import { ClusterReader, Reconciler } from '../../../src/ipam/reconcile';
import { agentEnv, createNode, createPod, launch, POOL_NET, putCm, type AgentEnv } from './helpers';

const PODS = 40;
let env: AgentEnv;
let agent: Agent;
/** Every address handed to a pod by a successful ADD: ip → pod names. */
const handed = new Map<string, Set<string>>();
const uids = new Map<string, string>();

async function tryAdd(name: string): Promise<{ ok: boolean; code?: number }> {
  const a = await agentLookup(agent.socketPath, { namespace: 'demo', name, uid: uids.get(name)!, containerId: `ctr-${name}`, ifName: 'net1' }, 10_000);
  if (!a.ok) return { ok: false, code: a.code };
  for (const cidr of answerToPodSettings(a)?.ips ?? []) {
    const ip = cidr.split('/')[0]!;
    handed.set(ip, (handed.get(ip) ?? new Set()).add(name));
  }
  return { ok: true };
}

/** ADD until it works, as kubelet retries a sandbox; every failure must be "try again later". */
async function addUntilOk(name: string): Promise<void> {
  for (let i = 0; i < 40; i++) {
    const r = await tryAdd(name);
    if (r.ok) return;
    expect(r.code).toBe(11);
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`ADD of ${name} never succeeded`);
}

beforeAll(async () => {
  env = await agentEnv();
  await createNode(env, 'node-a');
  await putCm(env, 'sriov-underlay', 'networks', 'network', { vlan100: POOL_NET });
  const regs: Record<string, string> = {};
  for (let i = 0; i < PODS; i++) regs[`p-${i}`] = 'pool: vlan100';
  await putCm(env, 'demo', 'regs', 'registration', regs);
  for (let i = 0; i < PODS; i++) uids.set(`p-${i}`, await createPod(env, 'demo', `p-${i}`));
  agent = await launch(env, 'node-a', { apiTimeoutMs: 250, allocationTimeoutMs: 900, answerDeadlineMs: 1_500 });
});
afterAll(async () => {
  env?.kube.server.setLatency(0);
  await agent?.stop();
  await env?.close();
}, 60_000); // stopping waits for requests the slow-API cases left in flight; 10 s is short on a loaded machine

describe('the API server misbehaving', () => {
  it('slow beyond the timeouts: ADD is answered "try again later" in time, then works with the same address', async () => {
    env.kube.server.setLatency(1_000);
    const slow = await tryAdd('p-0');
    expect(slow).toEqual({ ok: false, code: 11 });
    env.kube.server.setLatency(0);
    await addUntilOk('p-0');
    await addUntilOk('p-0'); // repeated: still one address
    expect([...handed.values()].filter((s) => s.has('p-0'))).toHaveLength(1);
  });

  it('returning 500s: ADDs fail "try again later", then work', async () => {
    env.kube.server.failNext({ code: 500, resource: 'ipclaims', count: 6 });
    await Promise.all(['p-1', 'p-2', 'p-3'].map((n) => addUntilOk(n)));
  });

  it('closing watches while pods are added and a registration is edited: the agent follows, no address twice', async () => {
    let closing = true;
    const closer = (async () => {
      while (closing) {
        env.kube.server.closeWatches();
        await new Promise((r) => setTimeout(r, 15));
      }
    })();
    try {
      const adds = Array.from({ length: PODS - 4 }, (_, i) => addUntilOk(`p-${i + 4}`));
      await putCm(env, 'demo', 'late', 'registration', { late: 'pool: vlan100' });
      await Promise.all(adds);
      await expect.poll(() => agent.index.lookup('demo', 'late').kind, { timeout: 10_000 }).toBe('resolved');
    } finally {
      closing = false;
      await closer;
    }
    const claims = (await env.claims.list()).items.filter((c) => !c.spec.releasedAt);
    await expect.poll(() => agent.ipam.claims()?.filter((c) => !c.spec.releasedAt).length, { timeout: 10_000 }).toBe(claims.length);
  });

  it('no address was handed to two pods, and every pod has one', () => {
    const twice = [...handed].filter(([, pods]) => pods.size > 1);
    expect(twice).toEqual([]);
    const perPod = new Map<string, number>();
    for (const pods of handed.values()) for (const p of pods) perPod.set(p, (perPod.get(p) ?? 0) + 1);
    expect([...perPod.values()].every((n) => n === 1)).toBe(true);
    expect(perPod.size).toBe(PODS);
  });

  it('reconcile under the same faults never releases a live pod’s claim; a gone pod’s claim is released', async () => {
    let t = Date.now();
    const rec = new Reconciler({
      claims: env.claims, reader: new ClusterReader(agent.clients.core, agent.clients.apps), nodeName: 'node-a',
      now: () => t, claimsCache: () => agent.ipam.claims(),
    });
    const pass = async () => {
      t += 120_000;
      return rec.runOnce();
    };
    env.kube.server.failNext({ code: 500, verb: 'list', resource: 'pods' });
    await expect(pass()).rejects.toThrow(/reconcile/);
    env.kube.server.setLatency(600); // beyond the agent's 250 ms: reads time out
    await expect(pass()).rejects.toThrow(/reconcile/);
    env.kube.server.setLatency(0);
    for (let i = 0; i < 3; i++) expect((await pass()).released).toEqual([]);
    // The check can fail: a pod that is really gone loses its claim.
    env.kube.server.remove('pods', 'demo', 'p-7');
    await pass();
    const r = await pass();
    expect(r.released.map((f) => f.pod.name)).toEqual(['p-7']);
  });
});
