// Reservations on their own (node/agent/reservations.ts) and through the agent: a reservation is
// released only once a fresh read shows its registration gone, with a precondition.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../../node/agent/agent';
import { Reservations } from '../../../node/agent/reservations';
import type { IPClaim } from '../../../src/ipam/claims';
import { PoolAllocator, listingView } from '../../../src/ipam/pool-allocator';
import { podUidGetter } from '../../../src/kube/pods';
import { RegistrationIndex } from '../../../src/registrations/index';
import { silentLogger } from '../../../src/log';
import { agentEnv, launch, POOL_NET, putCm, type AgentEnv } from './helpers';

let env: AgentEnv;
let agent: Agent;

beforeAll(async () => {
  env = await agentEnv();
  await putCm(env, 'sriov-underlay', 'networks', 'network', { vlan100: POOL_NET });
  await putCm(env, 'demo', 'regs', 'registration', { batch: 'pool: vlan100\nreserve: true', keep: 'pool: vlan100\nreserve: true' });
  agent = await launch(env, 'node-a');
  await agent.syncReservations();
});
afterAll(async () => {
  await agent?.stop();
  await env?.close();
});

const reservationsOf = async (key: string) => (await env.claims.list()).items.filter((c) => c.spec.kind === 'reserved' && c.spec.source.key === key);

/** A Reservations pass of an agent whose index is `index` and whose claims cache is `cached`. */
function reservations(index: RegistrationIndex, cached: () => IPClaim[] | null) {
  const claimDeps = { claims: env.claims, podUid: podUidGetter(env.clients.core) };
  const alloc = new PoolAllocator({ claims: env.claims, claimDeps, view: listingView(env.claims) });
  return new Reservations({ index, allocate: (n, r) => alloc.allocate(n, r), cached, claims: env.claims, core: env.clients.core, log: silentLogger() });
}

async function indexFromApi(): Promise<RegistrationIndex> {
  const index = new RegistrationIndex();
  for (const ns of ['sriov-underlay', 'demo']) for (const cm of (await env.clients.core.listNamespacedConfigMap({ namespace: ns })).items) index.applyConfigMap(cm);
  return index;
}

describe('reservations', () => {
  it('an agent whose view is stale (registrations not listed yet) releases nothing', async () => {
    expect(await reservationsOf('batch')).toHaveLength(1);
    const all = (await env.claims.list()).items;
    const r = reservations(new RegistrationIndex(), () => all);
    await r.sync();
    expect(r.released).toBe(0);
    expect(await reservationsOf('batch')).toHaveLength(1);
    expect(await reservationsOf('keep')).toHaveLength(1);
  });

  it('a registration briefly invalid (its network broken by an edit) keeps its reservation', async () => {
    // Compared by object UID: a re-made reservation would get the same (seeded) address.
    const before = (await reservationsOf('keep')).map((c) => c.metadata?.uid);
    expect(before).toHaveLength(1);
    await putCm(env, 'sriov-underlay', 'networks', 'network', { vlan100: `${POOL_NET}\nmtu: lots` });
    await expect.poll(() => agent.index.lookup('demo', 'keep').kind).toBe('rejected');
    await agent.syncReservations();
    expect((await reservationsOf('keep')).map((c) => c.metadata?.uid)).toEqual(before);
    await putCm(env, 'sriov-underlay', 'networks', 'network', { vlan100: POOL_NET });
    await expect.poll(() => agent.index.lookup('demo', 'keep').kind).toBe('resolved');
  });

  it('a removed registration is released once a fresh read confirms it, with the claim as read as precondition', async () => {
    const stale = (await env.claims.list()).items;
    await putCm(env, 'demo', 'regs', 'registration', { keep: 'pool: vlan100\nreserve: true' });
    // The reservation changed since `stale` was read (a pod took it): the precondition keeps it.
    const [held] = await reservationsOf('batch');
    await env.claims.replace(held!.metadata!.name!, { ...held!, spec: { ...held!.spec, updatedAt: new Date().toISOString() } });
    const r1 = reservations(await indexFromApi(), () => stale);
    await r1.sync();
    expect(r1.released).toBe(0);
    expect(await reservationsOf('batch')).toHaveLength(1);
    // Read fresh: released.
    const r2 = reservations(await indexFromApi(), () => null);
    await r2.sync();
    expect(r2.released).toBe(1);
    expect(await reservationsOf('batch')).toEqual([]);
    expect(await reservationsOf('keep')).toHaveLength(1);
  });
});
