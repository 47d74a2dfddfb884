/**
 * The node policy's Lease (node/policy/lease.ts) against the fake apiserver, with a clock of the
 * test's own: expiry on this node's clock only, a restarted holder resuming its own Lease, and
 * Leases others wrote — a huge duration, no spec, a holder name far too long.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_FOREIGN_LEASE_SECONDS, NodeLease } from '../../../node/policy/lease';
import { loadKubeConfig, makeKubeClients } from '../../../src/kube/client';
import { startFakeKube, type FakeKube } from '../../fakes/kube-apiserver';

let fake: FakeKube;
let n = 0;
beforeAll(async () => {
  fake = await startFakeKube();
});
afterAll(() => fake.close());

function leaseFor(holder: string, name: string, clock: { t: number }, durationS = 10): NodeLease {
  const k = makeKubeClients(loadKubeConfig({ kubeconfig: fake.kubeconfigPath, env: {} }));
  return new NodeLease(k.coordination, { namespace: 'default', name, holder, durationS, now: () => clock.t });
}
const put = (name: string, spec: Record<string, unknown> | undefined) =>
  fake.server.put({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: 'default' }, ...(spec ? { spec } : {}) });
const holderOf = (name: string) => (fake.server.get('leases', 'default', name)?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;

describe('node policy Lease', () => {
  it("expires on the waiting node's own clock: only a resourceVersion that stops moving for the duration", async () => {
    const name = `l${++n}`;
    const clock = { t: 1_000_000 };
    const a = leaseFor('node-a', name, clock);
    const b = leaseFor('node-b', name, clock);
    expect(await a.hold()).toEqual({ held: true });
    expect(await b.hold()).toEqual({ held: false, holder: 'node-a' });
    // node-a renews every few seconds: node-b never sees it expire, however long it waits.
    for (let i = 0; i < 10; i++) {
      clock.t += 6_000;
      expect(await a.hold()).toEqual({ held: true });
      expect(await b.hold()).toEqual({ held: false, holder: 'node-a' });
    }
    // node-a stops renewing: 10 s later (not sooner) node-b takes it over.
    clock.t += 9_000;
    expect(await b.hold()).toEqual({ held: false, holder: 'node-a' });
    clock.t += 2_000;
    expect(await b.hold()).toEqual({ held: true });
    expect(fake.server.get('leases', 'default', name)?.spec).toMatchObject({ holderIdentity: 'node-b', leaseTransitions: 1 });
    // node-a, back, finds it taken.
    expect(await a.hold()).toEqual({ held: false, holder: 'node-b' });
  });

  it('a restarted holder (same node name, a new process) resumes its own Lease at once', async () => {
    const name = `l${++n}`;
    const clock = { t: 5_000 };
    expect(await leaseFor('node-a', name, clock).hold()).toEqual({ held: true });
    expect(await leaseFor('node-a', name, clock).hold()).toEqual({ held: true });
    expect(fake.server.get('leases', 'default', name)?.spec).toMatchObject({ holderIdentity: 'node-a', leaseTransitions: 0 });
  });

  it('release clears the holder; the next node takes it without waiting', async () => {
    const name = `l${++n}`;
    const clock = { t: 5_000 };
    const a = leaseFor('node-a', name, clock);
    await a.hold();
    await a.release();
    expect(holderOf(name)).toBeUndefined();
    expect(await leaseFor('node-b', name, clock).hold()).toEqual({ held: true });
  });

  it('Leases others wrote: a huge duration is capped, no spec is free, a giant holder name is cut', async () => {
    const clock = { t: 0 };
    const huge = `l${++n}`;
    put(huge, { holderIdentity: 'node-x', leaseDurationSeconds: 2_147_483_647 });
    const b = leaseFor('node-b', huge, clock);
    expect(await b.hold()).toEqual({ held: false, holder: 'node-x' });
    clock.t += MAX_FOREIGN_LEASE_SECONDS * 1000 - 1;
    expect((await b.hold()).held).toBe(false);
    clock.t += 2;
    expect(await b.hold()).toEqual({ held: true });

    const bare = `l${++n}`;
    put(bare, undefined);
    expect(await leaseFor('node-b', bare, clock).hold()).toEqual({ held: true });

    const long = `l${++n}`;
    put(long, { holderIdentity: 'n'.repeat(100_000), leaseDurationSeconds: 10 });
    const r = await leaseFor('node-b', long, clock).hold();
    expect(r.held).toBe(false);
    expect(r.held === false && r.holder.length).toBe(253);
  });
});
