/**
 * Pool allocation throughput: 1,000 allocations from 10 simulated node agents at once against the
 * fake apiserver (real HTTP, real @kubernetes/client-node). Each agent has its own clients, its own
 * claims informer (the view of what is taken) and its own PoolAllocator; each runs its 100 pods one
 * after another, as kubelet's CNI calls arrive, so the 10 agents race each other on one pool.
 *
 * Figures: wall time (goal ≤ 10 s), p50/p99 per allocation, API writes per allocation from the
 * fake's counters (goal ≤ 3), retries (409s), and duplicates counted on the addresses handed to the
 * pods (the allocations' answers: an address given to two pods, or a pod given two of one family),
 * which fails if the API server's 409 on a taken claim name is not what keeps them apart (claim
 * names are network + address, so counting claim objects per address could never find one).
 */
import { ClusterObjects, IPCLAIMS, loadKubeConfig, makeKubeClients } from '../src/kube/client';
import { clusterObjectInformer } from '../src/kube/informer';
import type { ClaimDeps, IPClaim } from '../src/ipam/claims';
import { cachedView, PoolAllocator } from '../src/ipam/pool-allocator';
import { buildNetwork } from '../src/registrations/network-model';
import { networkSchema } from '../src/schemas/network';
import { startFakeKube } from '../test/fakes/kube-apiserver';
import { table } from './lib/report';
import { summarize } from './lib/stats';

const AGENTS = 10;
const PER_AGENT = 100;
const WALL_GOAL_MS = 10_000;
const WRITES_GOAL = 3;

async function main(): Promise<void> {
  const fake = await startFakeKube();
  const net = buildNetwork(
    'bench',
    networkSchema.parse({ vlan: 100, subnet: '10.50.0.0/20', gateway: '10.50.0.1', ranges: ['10.50.0.0/20'], resourceName: 'sriov-underlay.io/pool-a' }),
    { namespace: 'sriov-underlay', name: 'networks', resourceVersion: '1', uid: 'u', created: 0 },
  );
  const agents = await Promise.all(
    Array.from({ length: AGENTS }, async (_, i) => {
      const clients = makeKubeClients(loadKubeConfig({ kubeconfig: fake.kubeconfigPath, env: {} }));
      const claims = new ClusterObjects<IPClaim>(clients.custom, IPCLAIMS);
      const informer = clusterObjectInformer(claims, clients.watch, { name: `claims-node-${i}` });
      await informer.start();
      const claimDeps: ClaimDeps = { claims, podUid: () => Promise.resolve(null) };
      const alloc = new PoolAllocator({ claims, claimDeps, view: cachedView(() => informer.list()) });
      return { node: `node-${i}`, informer, alloc };
    }),
  );
  fake.server.resetCounters();
  const samples: number[] = [];
  const handed: Array<{ pod: string; ips: string[] }> = [];
  const started = performance.now();
  await Promise.all(
    agents.map(async (a, i) => {
      for (let j = 0; j < PER_AGENT; j++) {
        const uid = `uid-${i}-${j}`;
        const t0 = performance.now();
        const got = await a.alloc.allocate(net, {
          pod: { namespace: 'bench', name: `pod-${i}-${j}`, uid },
          node: a.node,
          containerID: `c-${uid}`,
          interface: 'net1',
          source: { namespace: 'bench', configMap: 'regs', key: `pod-${i}-${j}`, resourceVersion: '1' },
          kind: 'pool',
        });
        samples.push(performance.now() - t0);
        handed.push({ pod: uid, ips: got.map((c) => c.spec.ip) });
      }
    }),
  );
  const wall = performance.now() - started;
  const counters = fake.server.counters();
  const writes = counters.writeRequests;
  const total = AGENTS * PER_AGENT;
  const retries = agents.reduce((s, a) => s + a.alloc.stats.retries, 0);
  const all = (await new ClusterObjects<IPClaim>(makeKubeClients(loadKubeConfig({ kubeconfig: fake.kubeconfigPath, env: {} })).custom, IPCLAIMS).list()).items;
  const byIp = new Map<string, Set<string>>();
  for (const h of handed) for (const ip of h.ips) byIp.set(ip, (byIp.get(ip) ?? new Set()).add(h.pod));
  // An address handed to two pods, or a pod handed other than one address.
  const duplicates = [...byIp.values()].filter((pods) => pods.size > 1).length + handed.filter((h) => h.ips.length !== 1).length;
  const perPod = new Set(all.map((c) => c.spec.pod.uid));
  const podsWithClaim = perPod.size;
  for (const a of agents) await a.informer.stop();
  await fake.close();

  const s = summarize(samples);
  const goal = (ok: boolean) => (ok ? 'met' : 'MISSED');
  process.stdout.write(`ipam: ${total} pool allocations, ${AGENTS} agents × ${PER_AGENT}, pool of ${net.pool.reduce((n, r) => n + Number(r.end - r.start + 1n), 0)} addresses\n`);
  process.stdout.write(
    `${table(
      ['figure', 'value', 'goal'],
      [
        ['wall time', `${(wall / 1000).toFixed(2)} s`, `≤ ${WALL_GOAL_MS / 1000} s ${goal(wall <= WALL_GOAL_MS)}`],
        ['p50 per allocation', `${s.p50.toFixed(1)} ms`, ''],
        ['p99 per allocation', `${s.p99.toFixed(1)} ms`, ''],
        ['API writes / allocation', (writes / total).toFixed(2), `≤ ${WRITES_GOAL} ${goal(writes / total <= WRITES_GOAL)}`],
        ['retries (409)', String(retries), ''],
        ['claims listed', String(all.length), `= ${total} ${goal(all.length === total && podsWithClaim === total)}`],
        ['addresses handed to two pods', String(duplicates), `0 ${goal(duplicates === 0)}`],
      ],
    )}\n`,
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`ipam bench failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
