import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startFakeKube, type FakeKube } from '../../fakes/kube-apiserver';
import { crdValidators } from '../../fixtures/crd-schema';
import { waitFor } from '../../fakes/kube-apiserver/wait';
import { ClusterObjects, IPCLAIMS, loadKubeConfig, makeKubeClients, type KubeClients } from '../../../src/kube/client';
import { startAgent, type Agent } from '../../../node/agent/agent';
import { agentLookup, answerToPodSettings } from '../../../cni/agent-client';
import { silentLogger } from '../../../src/log';
import type { IPClaim } from '../../../src/ipam/claims';

const NODES = 10;
const PODS = 200;
const POOL_PODS = 100;
const POOL_SIZE = 110;

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
      data: {
        db: 'vlan: 300\nsubnet: 10.30.0.0/16\ngateway: 10.30.0.1\nresourceName: sriov-underlay.io/vf-pool-a',
        // A pool barely larger than its pods, so agents racing on it collide often.
        web: `vlan: 301\nsubnet: 10.31.0.0/24\ngateway: 10.31.0.1\nranges: [10.31.0.2-10.31.0.${POOL_SIZE + 1}]\nresourceName: sriov-underlay.io/vf-pool-a`,
      },
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
  const web: Record<string, string> = {};
  for (let i = 0; i < POOL_PODS; i++) web[`web-${i}`] = 'pool: web';
  await clients.core.createNamespacedConfigMap({ namespace: 'bank', body: { metadata: { name: 'web', labels: { 'sriov-underlay.io/kind': 'registration' } }, data: web } });
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
        // A correctness test on a shared, loaded machine: generous time bounds (timeouts.test.ts tests them).
        apiTimeoutMs: 30_000,
        allocationTimeoutMs: 25_000,
        answerDeadlineMs: 28_000,
      }),
    );
  }
});
afterAll(async () => {
  for (const a of agents) await a.stop();
  await kube?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** ADD as kubelet drives it: retried while the agent says "try again later" (11). */
async function addRetrying(agent: Agent, name: string, uid: string): Promise<string[]> {
  for (let attempt = 0; ; attempt++) {
    const a = await agentLookup(agent.socketPath, { namespace: 'bank', name, uid, containerId: `ctr-${name}`, ifName: 'net1' }, 30_000);
    if (a.ok || a.code !== 11 || attempt >= 20) return (answerToPodSettings(a)?.ips ?? []).map((x) => x.split('/')[0]!);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Addresses handed to more than one pod (from the answers the pods got, not from claim names). */
function handedTwice(answers: Array<{ pod: string; ips: string[] }>): string[] {
  const byIp = new Map<string, Set<string>>();
  for (const a of answers) for (const ip of a.ips) byIp.set(ip, (byIp.get(ip) ?? new Set()).add(a.pod));
  return [...byIp].filter(([, pods]) => pods.size > 1).map(([ip, pods]) => `${ip}: ${[...pods].join(', ')}`);
}

describe(`${PODS} registered and ${POOL_PODS} pool pods on ${NODES} simulated nodes, all added at once`, () => {
  it('every pod gets its registered IP or a pool address, and no address is handed to two pods', { timeout: 120_000 }, async () => {
    for (const a of agents) await waitFor('index loaded', () => a.index.registrationKeyCount === PODS + POOL_PODS);
    const names = [...Array.from({ length: PODS }, (_, i) => `db-${i}`), ...Array.from({ length: POOL_PODS }, (_, i) => `web-${i}`)];
    const uids = await Promise.all(
      names.map(async (name) => {
        const p = await clients.core.createNamespacedPod({ namespace: 'bank', body: { metadata: { name }, spec: { containers: [{ name: 'c', image: 'x' }] } } });
        return p.metadata!.uid!;
      }),
    );
    const answers = await Promise.all(names.map(async (pod, i) => ({ pod, ips: await addRetrying(agents[i % NODES]!, pod, uids[i]!) })));
    answers.slice(0, PODS).forEach((a, i) => expect(a.ips).toEqual([`10.30.${Math.floor(i / 200) + 1}.${(i % 200) + 10}`]));
    for (const a of answers.slice(PODS)) expect(a.ips).toHaveLength(1);
    expect(handedTwice(answers)).toEqual([]);
    const claims = (await new ClusterObjects<IPClaim>(clients.custom, IPCLAIMS).list()).items;
    expect(claims).toHaveLength(PODS + POOL_PODS);
    expect(new Set(claims.map((c) => c.spec.node)).size).toBe(NODES);
  });
});
