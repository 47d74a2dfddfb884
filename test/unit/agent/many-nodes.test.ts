import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startFakeKube, type FakeKube } from '../../fakes/kube-apiserver';
import { crdValidators } from '../../fixtures/crd-schema';
import { waitFor } from '../../fakes/kube-apiserver/wait';
import { ClusterObjects, IPCLAIMS, loadKubeConfig, makeKubeClients, type KubeClients } from '../../../src/kube/client';
import { startAgent, type Agent } from '../../../src/agent/agent';
import { agentLookup, answerToPodSettings } from '../../../cni/agent-client';
import { silentLogger } from '../../../src/log';
import type { IPClaim } from '../../../src/ipam/claims';

const NODES = 10;
const PODS = 200;

let kube: FakeKube;
let clients: KubeClients;
let dir: string;
const agents: Agent[] = [];

beforeAll(async () => {
  kube = await startFakeKube({ namespaces: ['sriov-underlay', 'bank'], validators: crdValidators() });
  clients = makeKubeClients(loadKubeConfig({ kubeconfig: kube.kubeconfigPath }));
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reg-many-'));
  await clients.core.createNamespacedConfigMap({
    namespace: 'sriov-underlay',
    body: {
      metadata: { name: 'networks', labels: { 'sriov-underlay.io/kind': 'network' } },
      data: { db: 'vlan: 300\nsubnet: 10.30.0.0/16\ngateway: 10.30.0.1\nresourceName: sriov-underlay.io/vf-pool-a' },
    },
  });
  // 200 pods registered in 10 ConfigMaps of 20 keys.
  for (let c = 0; c < 10; c++) {
    const data: Record<string, string> = {};
    for (let k = 0; k < 20; k++) {
      const i = c * 20 + k;
      data[`db-${i}`] = `network: db\nip: 10.30.${Math.floor(i / 200) + 1}.${(i % 200) + 10}`;
    }
    await clients.core.createNamespacedConfigMap({ namespace: 'bank', body: { metadata: { name: `regs-${c}`, labels: { 'sriov-underlay.io/kind': 'registration' } }, data } });
  }
  for (let n = 0; n < NODES; n++) {
    agents.push(
      await startAgent({
        nodeName: `node-${n}`,
        log: silentLogger(),
        kubeconfig: kube.kubeconfigPath,
        socketPath: path.join(dir, `agent-${n}.sock`),
        releaseQueueDir: path.join(dir, `queue-${n}`),
        podResourcesSocket: null,
        releaseRetryMs: 60_000,
      }),
    );
  }
});
afterAll(async () => {
  for (const a of agents) await a.stop();
  await kube?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe(`${PODS} registered pods on ${NODES} simulated nodes, all added at once`, () => {
  it('every pod gets its registered IP and no IP is in two claims', async () => {
    for (const a of agents) await waitFor('index loaded', () => a.index.registrationKeyCount === PODS);
    const uids = await Promise.all(
      Array.from({ length: PODS }, async (_, i) => {
        const p = await clients.core.createNamespacedPod({ namespace: 'bank', body: { metadata: { name: `db-${i}` }, spec: { containers: [{ name: 'c', image: 'x' }] } } });
        return p.metadata!.uid!;
      }),
    );
    const answers = await Promise.all(
      uids.map((uid, i) =>
        agentLookup(agents[i % NODES]!.socketPath, { namespace: 'bank', name: `db-${i}`, uid, containerId: `ctr-${i}`, ifName: 'net1' }, 30_000).then(answerToPodSettings),
      ),
    );
    answers.forEach((s, i) => expect(s?.ips).toEqual([`10.30.${Math.floor(i / 200) + 1}.${(i % 200) + 10}/16`]));
    const claims = (await new ClusterObjects<IPClaim>(clients.custom, IPCLAIMS).list()).items;
    expect(claims).toHaveLength(PODS);
    expect(new Set(claims.map((c) => c.spec.ip)).size).toBe(PODS);
    expect(new Set(claims.map((c) => c.spec.pod.uid)).size).toBe(PODS);
    expect(new Set(claims.map((c) => c.spec.node)).size).toBe(NODES);
  });
});
