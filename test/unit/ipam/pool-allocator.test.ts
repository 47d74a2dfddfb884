// The pool allocator against the fake apiserver: ranges, exclusions, cooldown, dual stack, races.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CniCode, UnderlayError } from '../../../src/errors';
import { canonicalIp } from '../../../src/ipam/cidr';
import { claimIp, type IPClaim } from '../../../src/ipam/claims';
import { cachedView, fixedAddressesByNetwork, listingView, PoolAllocator } from '../../../src/ipam/pool-allocator';
import { isTombstone, releaseClaim, RELEASED_AT_LABEL } from '../../../src/ipam/pool-release';
import { RegistrationIndex } from '../../../src/registrations/index';
import { startFakeKube, type FakeKube } from '../../fakes/kube-apiserver';
import { crdValidators } from '../../fixtures/crd-schema';
import { claimEnv, network, poolRequest, source, type ClaimEnv } from './helpers';

let fake: FakeKube;
let env: ClaimEnv;
let clock = new Date('2026-01-01T00:00:00Z');
const now = () => clock;

beforeAll(async () => {
  fake = await startFakeKube({ validators: crdValidators() });
  env = claimEnv(fake, now);
});
afterAll(() => fake.close());
beforeEach(async () => {
  clock = new Date('2026-01-01T00:00:00Z');
  for (const c of (await env.claims.list()).items) fake.server.remove('ipclaims', undefined, c.metadata!.name!);
  fake.server.setLatency(0);
});

const allocator = (extra: Partial<ConstructorParameters<typeof PoolAllocator>[0]> = {}) =>
  new PoolAllocator({ claims: env.claims, claimDeps: env.deps, view: listingView(env.claims), now, ...extra });

async function liveIps(net: string): Promise<string[]> {
  return (await env.claims.list()).items.filter((c) => c.spec.network === net && !isTombstone(c)).map((c) => c.spec.ip).sort();
}

describe('pool allocation', () => {
  it('hands out every usable address of the ranges and nothing else, then reports exhaustion', async () => {
    // 10.1.0.0/29: .0 network, .7 broadcast, .1 gateway, .4 excluded → .2 .3 .5 .6 usable.
    const net = network('small', { subnet: '10.1.0.0/29', gateway: '10.1.0.1', ranges: ['10.1.0.0/29'], exclude: ['10.1.0.4'] });
    const a = allocator();
    const got: string[] = [];
    for (let i = 0; i < 4; i++) got.push(...(await a.allocate(net, poolRequest(`p${i}`, `u${i}`))).map((c) => c.spec.ip));
    expect(got.sort()).toEqual(['10.1.0.2', '10.1.0.3', '10.1.0.5', '10.1.0.6']);
    const err = await a.allocate(net, poolRequest('p9', 'u9')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnderlayError);
    expect((err as UnderlayError).code).toBe(CniCode.IpConflict);
    expect((err as UnderlayError).message).toMatch(/pool of network "small" \(IPv4\) is exhausted: 4 addresses, 4 claimed, 0 cooling down/);
  });

  it('never hands out an address a registration names as fixed', async () => {
    const net = network('fx', { subnet: '10.2.0.0/29', ranges: ['10.2.0.1-10.2.0.3'] });
    const fixed = fixedAddressesByNetwork([{ spec: { network: 'fx', ip: '10.2.0.2' } }, { spec: { network: 'other', ip: '10.2.0.3' } }]);
    const a = allocator({ fixedAddresses: (n) => fixed.get(n) ?? new Set() });
    const got = [...(await a.allocate(net, poolRequest('a', 'ua'))), ...(await a.allocate(net, poolRequest('b', 'ub')))].map((c) => c.spec.ip).sort();
    expect(got).toEqual(['10.2.0.1', '10.2.0.3']);
    await expect(a.allocate(net, poolRequest('c', 'uc'))).rejects.toThrow(/exhausted: 3 addresses, 2 claimed, 0 cooling down, 1 registered as fixed/);
  });

  it('gives a pod UID its own address again (repeated ADD): no create, one refresh', async () => {
    const net = network('rep', { subnet: '10.3.0.0/24', ranges: ['10.3.0.10-10.3.0.200'] });
    const a = allocator();
    const first = await a.allocate(net, poolRequest('web', 'u1'));
    fake.server.resetCounters();
    const again = await a.allocate(net, poolRequest('web', 'u1'));
    expect(again.map((c) => c.spec.ip)).toEqual(first.map((c) => c.spec.ip));
    expect(fake.server.counters().writesByResource.ipclaims).toEqual({ update: 1 });
    expect(a.stats.reused).toBe(1);
  });

  it('dual stack: one address per family, all or nothing', async () => {
    const net = network('ds', {
      subnet: '10.4.0.0/24', subnet6: 'fd00:4::/64', ranges: ['10.4.0.10-10.4.0.20', 'fd00:4::10-fd00:4::11'],
    });
    const a = allocator();
    const p1 = await a.allocate(net, poolRequest('a', 'ua'));
    expect(p1.map((c) => c.spec.ip.includes(':'))).toEqual([false, true]);
    await a.allocate(net, poolRequest('b', 'ub'));
    // IPv6 is now exhausted: the IPv4 claim of the third pod must be rolled back.
    const before = await liveIps('ds');
    await expect(a.allocate(net, poolRequest('c', 'uc'))).rejects.toThrow(/\(IPv6\) is exhausted/);
    expect(await liveIps('ds')).toEqual(before);
    expect(a.stats.rollbacks).toBe(1);
  });

  it('keeps a released address cooling down, then reuses the least recently released first', async () => {
    const net = network('cool', { subnet: '10.5.0.0/24', ranges: ['10.5.0.10-10.5.0.12'], cooldownSeconds: 600 });
    const a = allocator();
    const claims: IPClaim[] = [];
    for (const p of ['a', 'b', 'c']) claims.push(...(await a.allocate(net, poolRequest(p, `u${p}`))));
    // Release c first, then a (60 s later).
    await releaseClaim(env.claims, claims[2]!, clock);
    clock = new Date(clock.getTime() + 60_000);
    await releaseClaim(env.claims, claims[0]!, clock);
    const stone = await env.claims.get(claims[0]!.metadata!.name!);
    expect(isTombstone(stone!)).toBe(true);
    expect(stone!.metadata!.labels![RELEASED_AT_LABEL]).toBe(String(clock.getTime() / 1000));
    // A tombstone keeps the address unclaimable: a plain create is 409.
    await expect(env.claims.create({ metadata: { name: stone!.metadata!.name! }, spec: stone!.spec })).rejects.toMatchObject({ code: 409 });

    await expect(a.allocate(net, poolRequest('d', 'ud'))).rejects.toThrow(/2 cooling down; the next one is reusable at 2026-01-01T00:10:00.000Z/);
    clock = new Date(Date.parse('2026-01-01T00:10:00Z') + 1);
    // Only c has cooled down.
    expect((await a.allocate(net, poolRequest('d', 'ud')))[0]!.spec.ip).toBe(claims[2]!.spec.ip);
    clock = new Date(Date.parse('2026-01-01T00:20:00Z'));
    expect((await a.allocate(net, poolRequest('e', 'ue')))[0]!.spec.ip).toBe(claims[0]!.spec.ip);
    expect(a.stats.tombstonesReused).toBe(2);
  });

  it('a pod UID whose address was released takes it back at once (sandbox re-created)', async () => {
    const net = network('back', { subnet: '10.6.0.0/24', ranges: ['10.6.0.10-10.6.0.250'] });
    const a = allocator();
    const [c] = await a.allocate(net, poolRequest('web', 'u1'));
    await releaseClaim(env.claims, c!, clock);
    const [again] = await a.allocate(net, { ...poolRequest('web', 'u1'), containerID: 'c-new' });
    expect(again!.spec.ip).toBe(c!.spec.ip);
    expect(isTombstone(again!)).toBe(false);
    
    expect(again!.spec.containerID).toBe("c-new");
  });

  it('a fixed-IP registration may take over a tombstone', async () => {
    const net = network('tk', { subnet: '10.7.0.0/24', ranges: ['10.7.0.10'] });
    const [c] = await allocator().allocate(net, poolRequest('old', 'u-old'));
    await releaseClaim(env.claims, c!, clock);
    const taken = await claimIp(env.deps, {
      network: 'tk', ip: '10.7.0.10', kind: 'fixed', pod: { namespace: 'demo', name: 'db', uid: 'u-db' }, node: 'n', containerID: 'x', interface: 'net1', source: source('db'),
    });
    expect(taken.spec.pod.uid).toBe('u-db');
    expect(isTombstone(taken)).toBe(false);
  });

  it('reserves for a registration with no pod, and the pod then gets that address', async () => {
    const net = network('rs', { subnet: '10.8.0.0/24', ranges: ['10.8.0.10-10.8.0.250'] });
    const a = allocator();
    const [r] = await a.allocate(net, { ...poolRequest('cache', ''), node: '', containerID: '', interface: '', kind: 'reserved' });
    expect(r!.spec.kind).toBe('reserved');
    const [again] = await a.allocate(net, { ...poolRequest('cache', ''), node: '', containerID: '', interface: '', kind: 'reserved' });
    expect(again!.spec.ip).toBe(r!.spec.ip);
    const [got] = await a.allocate(net, poolRequest('cache', 'u-cache'));
    expect(got!.spec.ip).toBe(r!.spec.ip);
    expect(got!.spec.pod.uid).toBe('u-cache');
  });

  it('runs at most one allocation per pool at a time in one agent', async () => {
    const net = network('sf', { subnet: '10.9.0.0/24', ranges: ['10.9.0.10-10.9.0.250'] });
    const a = allocator();
    fake.server.setLatency(15);
    fake.server.clearRequests();
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => a.allocate(net, poolRequest(`p${i}`, `u${i}`))));
    fake.server.setLatency(0);
    expect(new Set(results.flat().map((c) => c.spec.ip)).size).toBe(6);
    const creates = fake.server.requests().filter((r) => r.resource === 'ipclaims' && r.verb === 'create');
    expect(creates).toHaveLength(6);
    const spans = creates.map((r) => [Date.parse(String(r.at)), Date.parse(String(r.at)) + r.durationMs] as const).sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1] - 1);
  });

  it('agents racing on a small pool: no address twice, losers retry elsewhere', async () => {
    const net = network('race', { subnet: '10.10.0.0/24', ranges: ['10.10.0.1-10.10.0.40'] });
    // Views that never see anyone else's claims force real 409 races.
    const agents = Array.from({ length: 5 }, () => allocator({ view: cachedView(() => []) }));
    const out = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) => agents[i % 5]!.allocate(net, poolRequest(`p${i}`, `u${i}`, `node-${i % 5}`))),
    );
    const ok = out.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
    const ips = ok.map((c) => canonicalIp(c.spec.ip));
    expect(new Set(ips).size).toBe(ips.length);
    expect(await liveIps('race')).toEqual([...ips].sort());
    expect(agents.reduce((s, a) => s + a.stats.retries, 0)).toBeGreaterThan(0);
    for (const r of out) if (r.status === 'rejected') expect((r.reason as UnderlayError).code).toBe(CniCode.TryAgainLater);
  });

  it('malformed pools are rejected naming the field; the valid network in the same ConfigMap keeps allocating', async () => {
    const idx = new RegistrationIndex();
    const base = 'vlan: 100\nresourceName: a/b\nsubnet: 10.30.0.0/24\n';
    idx.applyConfigMap({
      metadata: { namespace: 'sriov-underlay', name: 'nets', resourceVersion: '1', labels: { 'sriov-underlay.io/kind': 'network' } },
      data: {
        overlap: `${base}ranges: [10.30.0.10-10.30.0.20, 10.30.0.15-10.30.0.30]`,
        outside: `${base}ranges: [10.31.0.10-10.31.0.20]`,
        covered: `${base}ranges: [10.30.0.10-10.30.0.20]\nexclude: [10.30.0.0/27]`,
        good: `${base}ranges: [10.30.0.40-10.30.0.50]`,
      },
    });
    const why = Object.fromEntries(idx.networkRejectionsOf('sriov-underlay', 'nets').map((r) => [r.key, `${r.field}: ${r.message}`]));
    expect(why.overlap).toMatch(/^ranges\.1: .*field "ranges\.1": overlaps ranges\.0 \(10\.30\.0\.10-10\.30\.0\.20\)/);
    expect(why.outside).toMatch(/^ranges\.0: .*is not inside the subnet 10\.30\.0\.0\/24/);
    expect(why.covered).toMatch(/^exclude: .*leaves no usable IPv4 address in "ranges"/);
    expect(idx.networks().map((n) => n.name)).toEqual(['good']);
    const [c] = await allocator().allocate(idx.network('good')!, poolRequest('p', 'u-good'));
    expect(c!.spec.ip).toMatch(/^10\.30\.0\.(4\d|50)$/);
  });

  it('agents racing to reserve the same registration make one reservation, and all report it', async () => {
    const net = network('rr', { subnet: '10.31.0.0/24', ranges: ['10.31.0.10-10.31.0.250'] });
    const agents = Array.from({ length: 5 }, () => allocator({ view: cachedView(() => []) }));
    const req = { ...poolRequest('cache', ''), node: '', containerID: '', interface: '', kind: 'reserved' as const };
    const got = await Promise.all(agents.map((a) => a.allocate(net, req)));
    const ips = new Set(got.map((g) => g[0]!.spec.ip));
    expect(ips.size).toBe(1);
    expect(await liveIps('rr')).toEqual([...ips]);
  });
});
