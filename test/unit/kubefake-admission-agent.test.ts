/**
 * The whole node agent (startAgent), each with its node's bound service account token over https,
 * under the node-scoped claim policy of deploy/25-claims-admission.yaml: a StatefulSet-like pod
 * re-created on node-a while node-b (its old node) still exists is refused its address (the agent
 * refuses itself before the policy would; kubefake-admission.test.ts shows the policy refusing a
 * hostile agent's writes); once node-b is deleted, node-a's agent takes the address over, which the
 * policy allows.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { serviceAccountUser, startFakeKube, type FakeKube, type KubeObject } from '../fakes/kube-apiserver';
import { crdValidators } from '../fixtures/crd-schema';
import { waitFor } from '../fakes/kube-apiserver/wait';
import { startAgent, type Agent } from '../../node/agent/agent';
import { agentLookup, answerToPodSettings } from '../../cni/agent-client';
import { silentLogger } from '../../src/log';
import { claimName } from '../../src/ipam/claims';

let kube: FakeKube;
let dir: string;
const agents: Record<string, Agent> = {};
const SA = ['sriov-underlay', 'sriov-underlay-node'] as const;

async function agentOn(node: string): Promise<Agent> {
  const token = `token-${node}`;
  kube.server.addUser(token, serviceAccountUser(...SA, node, `sriov-underlay-node-${node}`));
  const a = await startAgent({
    nodeName: node, log: silentLogger(), kubeconfig: kube.kubeconfigFor(token, node),
    socketPath: path.join(dir, `${node}.sock`), releaseQueueDir: path.join(dir, `queue-${node}`),
    podResourcesSocket: null, releaseRetryMs: 60_000, reconcileIntervalMs: 0,
  });
  agents[node] = a;
  await waitFor(`${node} index loaded`, () => a.index.registrationKeyCount === 1);
  return a;
}

function pod(name: string): string {
  kube.server.remove('pods', 'bank', name);
  return kube.server.put({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'bank' }, spec: { containers: [{ name: 'c', image: 'x' }] } }).metadata.uid!;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vap-agent-'));
  kube = await startFakeKube({ tls: true, namespaces: ['sriov-underlay', 'bank'], validators: crdValidators() });
  for (const o of parseAllDocuments(fs.readFileSync(path.resolve(__dirname, '../../deploy/25-claims-admission.yaml'), 'utf8'))) kube.server.put(o.toJS() as KubeObject);
  for (const n of ['node-a', 'node-b']) kube.server.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: n } });
  kube.server.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'networks', namespace: 'sriov-underlay', labels: { 'sriov-underlay.io/kind': 'network' } }, data: { db: 'vlan: 300\nsubnet: 10.30.0.0/16\nresourceName: sriov-underlay.io/vf-pool-a' } });
  kube.server.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'regs', namespace: 'bank', labels: { 'sriov-underlay.io/kind': 'registration' } }, data: { 'db-0': 'network: db\nip: 10.30.1.10' } });
});
afterAll(async () => {
  for (const a of Object.values(agents)) await a.stop();
  await kube?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

it("refuses node-a's agent another live node's claim, and lets it take a deleted node's", async () => {
  const b = await agentOn('node-b');
  const first = pod('db-0');
  const onB = answerToPodSettings(await agentLookup(b.socketPath, { namespace: 'bank', name: 'db-0', uid: first, containerId: 'ctr-b', ifName: 'net1' }, 20_000));
  expect(onB?.ips).toEqual(['10.30.1.10/16']);
  const name = claimName('db', '10.30.1.10');
  expect(kube.server.get('ipclaims', undefined, name)?.metadata.labels?.['sriov-underlay.io/node']).toBe('node-b');

  // node-b goes quiet (its agent stopped, its Node still there); the pod is re-created on node-a
  await b.stop();
  delete agents['node-b'];
  const a = await agentOn('node-a');
  const second = pod('db-0');
  const ask = () => agentLookup(a.socketPath, { namespace: 'bank', name: 'db-0', uid: second, containerId: 'ctr-a', ifName: 'net1' }, 20_000).then(answerToPodSettings);
  await expect(ask()).rejects.toThrow('node node-b still exists, so only its agent releases it');
  expect(kube.server.get('ipclaims', undefined, name)?.spec).toMatchObject({ node: 'node-b', pod: { uid: first } });

  kube.server.remove('nodes', undefined, 'node-b');
  expect((await ask())?.ips).toEqual(['10.30.1.10/16']);
  expect(kube.server.get('ipclaims', undefined, name)?.spec).toMatchObject({ node: 'node-a', pod: { uid: second } });
});
