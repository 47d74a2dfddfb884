/**
 * API load of one node agent's reconcile pass: 100 nodes, claims spread over them, one agent
 * (node-0) measured. Requests are counted at the fake API server (its per-verb counters) for one
 * ordinary pass and one scan-all pass (the every-10th pass that also looks at deleted nodes' claims
 * and tombstones), after the agent's informers have listed (their start-up lists are printed
 * apart). Goal: O(own claims) — the same figure at 2,000 and 10,000 claims in the cluster.
 * Half the pods have StatefulSet-like names (`db-N-I`: set `db-N`, ordinal I), so a gone one costs a
 * StatefulSet read, once per set and pass. Reference, measured in the same run: the same Reconciler without informer caches (lists nodes
 * and claims each pass, as the agent did before and `kubectl sriov gc` still does).
 */
import { ClusterObjects, IPCLAIMS, loadKubeConfig, makeKubeClients } from '../src/kube/client';
import type { IPClaim } from '../src/ipam/claims';
import { claimName } from '../src/ipam/claims';
import { IpamService } from '../src/ipam/pool-service';
import { ClusterReader, Reconciler } from '../src/ipam/reconcile';
import { podUidGetter } from '../src/kube/pods';
import { silentLogger } from '../src/log';
import { RegistrationIndex } from '../src/registrations/index';
import { startFakeKube } from '../test/fakes/kube-apiserver';
import type { Counters } from '../test/fakes/kube-apiserver/server';
import { table } from './lib/report';

const NODES = 100;
const ME = 'node-0';

interface Figures {
  total: number;
  own: number;
  startup: number;
  pass: number;
  scanAll: number;
  refPass: number;
  refScanAll: number;
}

const count = (c: Counters) => Object.values(c.requests).reduce((s, n) => s + (n ?? 0), 0);

async function scenario(total: number): Promise<Figures> {
  const fake = await startFakeKube({ namespaces: ['default', 'bench'] });
  const s = fake.server;
  for (let n = 0; n < NODES; n++) s.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: `node-${n}` } });
  const perNode = Math.floor(total / (NODES + 1));
  let own = 0;
  // Claims of every node (pods of node-0 exist, 10% of them gone), plus one deleted node's claims
  // and as many tombstones, which a scan-all pass looks at.
  for (let n = 0; n <= NODES; n++) {
    const node = n === NODES ? 'node-gone' : `node-${n}`;
    for (let i = 0; i < perNode; i++) {
      const k = n * perNode + i;
      const ip = `10.${Math.floor(k / 65536) % 256}.${Math.floor(k / 256) % 256}.${k % 256}`;
      const name = i % 2 ? `web-${n}-${i}-x` : `db-${n}-${i}`; // half Deployment-like, half StatefulSet-like names
      let uid = `uid-${n}-${i}`;
      if (node === ME) {
        own++;
        if (i % 10 !== 0) uid = (s.put({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'bench' }, spec: { nodeName: ME, containers: [{ name: 'c', image: 'x' }] } }).metadata.uid as string);
      }
      const tomb = n === NODES - 1;
      const spec = {
        network: 'bench', ip, kind: 'pool', pod: { namespace: 'bench', name, uid }, node: tomb ? '' : node, containerID: `c-${k}`, interface: 'net1',
        source: { namespace: 'bench', configMap: 'regs', key: name, resourceVersion: '1' }, claimedAt: new Date().toISOString(), updatedAt: new Date().toISOString(),
        ...(tomb ? { releasedAt: new Date().toISOString() } : {}),
      };
      const labels: Record<string, string> = { 'sriov-underlay.io/network': 'bench', 'sriov-underlay.io/claim-kind': 'pool' };
      if (!tomb) labels['sriov-underlay.io/node'] = node;
      s.put({ apiVersion: 'sriov-underlay.io/v1alpha1', kind: 'IPClaim', metadata: { name: claimName('bench', ip), labels }, spec } as never);
    }
  }
  const clients = makeKubeClients(loadKubeConfig({ kubeconfig: fake.kubeconfigPath, env: {} }), { timeoutMs: 60_000 });
  const claims = new ClusterObjects<IPClaim>(clients.custom, IPCLAIMS);
  const claimDeps = { claims, podUid: podUidGetter(clients.core) };
  const ipam = new IpamService({ clients, claims, claimDeps, index: new RegistrationIndex(), nodeName: ME, log: silentLogger(), reconcileIntervalMs: 0, reportOnly: true });
  s.resetCounters();
  await ipam.start();
  const startup = count(s.counters());
  const measure = async (run: () => Promise<unknown>) => {
    s.resetCounters();
    await run();
    return count(s.counters());
  };
  const scanAll = await measure(() => ipam.reconcile()); // the first pass is a scan-all one
  const pass = await measure(() => ipam.reconcile());
  const ref = new Reconciler({ claims, reader: new ClusterReader(clients.core, clients.apps), nodeName: ME, reportOnly: true });
  const refScanAll = await measure(() => ref.runOnce());
  const refPass = await measure(() => ref.runOnce());
  await ipam.stop();
  await fake.close();
  return { total: perNode * (NODES + 1), own, startup, pass, scanAll, refPass, refScanAll };
}

async function main(): Promise<void> {
  const rows: Figures[] = [];
  for (const total of [2_000, 10_000]) rows.push(await scenario(total));
  const [small, big] = rows as [Figures, Figures];
  process.stdout.write(`reconcile-load: API requests of one agent (${ME}) per reconcile pass, ${NODES} nodes, counted at the fake API server\n`);
  process.stdout.write(
    `${table(
      ['claims in cluster', 'own claims', 'informer start-up (once)', 'ordinary pass', 'scan-all pass', 'reference: ordinary (no caches)', 'reference: scan-all'],
      rows.map((r) => [String(r.total), String(r.own), String(r.startup), String(r.pass), String(r.scanAll), String(r.refPass), String(r.refScanAll)]),
    )}\n`,
  );
  // Own claims whose pod is gone (10%) are the only ones that cost a read beyond the node's pod list.
  const bound = (r: Figures) => 2 + Math.ceil(r.own / 10);
  const met = rows.every((r) => r.pass <= bound(r) && r.scanAll <= bound(r) + 1);
  process.stdout.write(
    `goal O(own claims), at most 2 + own claims with their pod gone: ${small.pass} → ${big.pass} requests (ordinary), ${small.scanAll} → ${big.scanAll} (scan-all) ` +
      `as the cluster grows ${(big.total / small.total).toFixed(1)}×; reference ${small.refScanAll} → ${big.refScanAll}: ${met ? 'met' : 'MISSED'}\n`,
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`reconcile-load bench failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
