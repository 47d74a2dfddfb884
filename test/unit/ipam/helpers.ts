// Shared setup for the IPAM tests: claims against the fake apiserver, networks from YAML-shaped specs.
import type * as k8s from '@kubernetes/client-node';
import { ClusterObjects, IPCLAIMS, loadKubeConfig, makeKubeClients, type KubeClients } from '../../../src/kube/client';
import type { ClaimDeps, IPClaim } from '../../../src/ipam/claims';
import { podUidGetter } from '../../../src/kube/pods';
import { buildNetwork, type NetworkModel } from '../../../src/registrations/network-model';
import { networkSchema } from '../../../src/schemas/network';
import type { FakeKube } from '../../fakes/kube-apiserver';

export function network(name: string, spec: Record<string, unknown>): NetworkModel {
  const parsed = networkSchema.parse({ resourceName: 'sriov-underlay.io/pool-a', vlan: 100, ...spec });
  return buildNetwork(name, parsed, { namespace: 'sriov-underlay', name: 'networks', resourceVersion: '1', uid: 'u', created: 0 });
}

export interface ClaimEnv {
  clients: KubeClients;
  claims: ClusterObjects<IPClaim>;
  deps: ClaimDeps;
}

export function claimEnv(fake: FakeKube, now?: () => Date): ClaimEnv {
  const clients = makeKubeClients(loadKubeConfig({ kubeconfig: fake.kubeconfigPath, env: {} }));
  const claims = new ClusterObjects<IPClaim>(clients.custom, IPCLAIMS);
  const deps: ClaimDeps = { claims, podUid: podUidGetter(clients.core) };
  if (now) deps.now = now;
  return { clients, claims, deps };
}

export const source = (key: string, namespace = 'demo') => ({ namespace, configMap: 'regs', key, resourceVersion: '7' });

export function poolRequest(name: string, uid: string, node = 'node-a', namespace = 'demo') {
  return { pod: { namespace, name, uid }, node, containerID: `c-${uid}`, interface: 'net1', source: source(name, namespace), kind: 'pool' as const };
}

export async function createPod(core: k8s.CoreV1Api, namespace: string, name: string, node = 'node-a', grace?: number): Promise<string> {
  const spec: k8s.V1PodSpec = { nodeName: node, containers: [{ name: 'c', image: 'busybox' }] };
  if (grace !== undefined) spec.terminationGracePeriodSeconds = grace;
  const p = await core.createNamespacedPod({ namespace, body: { metadata: { name, namespace }, spec } });
  return p.metadata!.uid!;
}

export async function ensureNamespace(core: k8s.CoreV1Api, name: string): Promise<void> {
  try {
    await core.createNamespace({ body: { metadata: { name } } });
  } catch (e) {
    if ((e as { code?: number }).code !== 409) throw e;
  }
}
