// Shared setup for the agent tests: a fake API server with the CRDs, ConfigMaps, pods, agents.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startFakeKube, type FakeKube } from '../../fakes/kube-apiserver';
import { crdValidators } from '../../fixtures/crd-schema';
import { ClusterObjects, IPCLAIMS, loadKubeConfig, makeKubeClients, type KubeClients } from '../../../src/kube/client';
import { startAgent, type Agent, type AgentOptions } from '../../../node/agent/agent';
import { agentLookup, answerToPodSettings } from '../../../cni/agent-client';
import { queueClaimRelease } from '../../../cni/claim-release';
import type { Invocation } from '../../../cni/skel';
import type { IPClaim } from '../../../src/ipam/claims';
import { silentLogger } from '../../../src/log';

export const KIND = 'sriov-underlay.io/kind';
export const POOL_NET = 'vlan: 100\nsubnet: 10.100.0.0/24\ngateway: 10.100.0.1\nranges: [10.100.0.100-10.100.0.199]\nresourceName: sriov-underlay.io/vf-pool-a';

export interface AgentEnv {
  kube: FakeKube;
  clients: KubeClients;
  claims: ClusterObjects<IPClaim>;
  dir: string;
  close(): Promise<void>;
}

export async function agentEnv(namespaces = ['sriov-underlay', 'demo']): Promise<AgentEnv> {
  const kube = await startFakeKube({ namespaces, validators: crdValidators() });
  const clients = makeKubeClients(loadKubeConfig({ kubeconfig: kube.kubeconfigPath, env: {} }));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-'));
  return {
    kube, clients, dir,
    claims: new ClusterObjects<IPClaim>(clients.custom, IPCLAIMS),
    async close() {
      await kube.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function putCm(env: AgentEnv, namespace: string, name: string, kind: string, data: Record<string, string>): Promise<void> {
  const body = { metadata: { name, namespace, labels: { [KIND]: kind } }, data };
  try {
    await env.clients.core.replaceNamespacedConfigMap({ namespace, name, body });
  } catch {
    await env.clients.core.createNamespacedConfigMap({ namespace, body });
  }
}

/** A pod as the API shows it; `mirrorOf` makes it a static pod's mirror (the runtime knows it by that hash). */
export async function createPod(env: AgentEnv, namespace: string, name: string, node = 'node-a', mirrorOf?: string): Promise<string> {
  const metadata = { name, ...(mirrorOf ? { annotations: { 'kubernetes.io/config.mirror': mirrorOf } } : {}) };
  const p = await env.clients.core.createNamespacedPod({ namespace, body: { metadata, spec: { nodeName: node, containers: [{ name: 'c', image: 'x' }] } } });
  return p.metadata!.uid!;
}

export async function createNode(env: AgentEnv, name: string): Promise<void> {
  await env.clients.core.createNode({ body: { metadata: { name } } });
}

export function launch(env: AgentEnv, node: string, extra: Partial<AgentOptions> = {}): Promise<Agent> {
  return startAgent({
    nodeName: node,
    log: silentLogger(),
    kubeconfig: env.kube.kubeconfigPath,
    socketPath: path.join(env.dir, `${node}.sock`),
    releaseQueueDir: path.join(env.dir, `queue-${node}`),
    podResourcesSocket: null,
    sysfsRoot: path.join(env.dir, 'no-sysfs'),
    releaseRetryMs: 60_000,
    reconcileIntervalMs: 0,
    ...extra,
  });
}

/** ADD as the CNI asks it; the addresses handed out (without prefix), or the error. */
export async function add(agent: Agent, ns: string, name: string, uid: string, containerId = `ctr-${name}-${uid}`): Promise<string[]> {
  const s = answerToPodSettings(await agentLookup(agent.socketPath, { namespace: ns, name, uid, containerId, ifName: 'net1' }, 30_000));
  return (s?.ips ?? []).map((x) => x.split('/')[0]!);
}

/** DEL as the CNI does it: a note on the node's disk, then the agent's queue runs. */
export function del(env: AgentEnv, agent: Agent, node: string, ns: string, name: string, uid: string, containerId = `ctr-${name}-${uid}`): Promise<void> {
  queueClaimRelease(path.join(env.dir, `queue-${node}`), { containerId, ifName: 'net1', pod: { namespace: ns, name, uid } } as unknown as Invocation);
  return agent.drainReleases();
}
