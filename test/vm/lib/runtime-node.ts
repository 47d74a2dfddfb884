/**
 * What a node needs around the container runtime for the runtime tier: the fake API server with a
 * network and the pods' registrations, the fake kubelet (device-plugin registration and Allocate)
 * with its PodResources socket, and the node daemon (device plugin + node agent) from dist/, on
 * the daemon's default paths (agent socket, release queue) that the CNI's defaults meet.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeApi, startNodeDaemon, type FakeApi, type Started } from '../../../demo/processes';
import { loadKubeConfig, makeKubeClients, type KubeClients } from '../../../src/kube/client';
import { FakeKubelet } from '../../fakes/kubelet';
import { FakePodResourcesServer } from '../../fakes/podresources/server';
import { waitFor } from './sh';

export const NODE = 'vm-node';
export const RESOURCE = 'sriov-underlay.io/crivf';
export const AGENT_SOCKET = '/run/sriov-underlay/agent.sock';

export interface Registration { pod: string; ip: string; maxTxRateMbps: number }

export interface NetworkSpec {
  name: string;
  vlan: number;
  subnet: string;
  maxTxRateMbps: number;
  mtu: number;
}

export interface RuntimeNode {
  api: FakeApi;
  core: KubeClients['core'];
  kubelet: FakeKubelet;
  podResources: FakePodResourcesServer;
  daemon: Started;
  /** As the scheduler and kubelet do before RunPodSandbox: the Pod object, then Allocate of one VF. */
  admit(namespace: string, name: string, vf: string): Promise<{ uid: string; release(): Promise<void> }>;
}

export async function startRuntimeNode(opts: {
  project: string;
  dir: string;
  logDir: string;
  pf: string;
  network: NetworkSpec;
  namespace: string;
  registrations: Registration[];
  defer(fn: () => Promise<void> | void): void;
}): Promise<RuntimeNode> {
  const { project, dir, logDir, pf, network, namespace, defer } = opts;
  mkdirSync(dir, { recursive: true });
  const kubeconfig = join(dir, 'kubeconfig');
  const api = await startFakeApi(project, kubeconfig, join(logDir, 'apiserver.log'));
  defer(() => api.stop());
  const { core } = makeKubeClients(loadKubeConfig({ kubeconfig }));
  for (const ns of ['sriov-underlay', namespace]) await core.createNamespace({ body: { metadata: { name: ns } } });
  const n = network;
  await core.createNamespacedConfigMap({
    namespace: 'sriov-underlay',
    body: {
      metadata: { name: 'networks', namespace: 'sriov-underlay', labels: { 'sriov-underlay.io/kind': 'network' } },
      data: { [n.name]: `vlan: ${n.vlan}\nsubnet: ${n.subnet}\nmtu: ${n.mtu}\nqos: {maxTxRateMbps: ${n.maxTxRateMbps}}\nresourceName: ${RESOURCE}\nallowedNamespaces: [${namespace}]\n` },
    },
  });
  await core.createNamespacedConfigMap({
    namespace,
    body: {
      metadata: { name: 'pods', namespace, labels: { 'sriov-underlay.io/kind': 'registration' } },
      data: Object.fromEntries(opts.registrations.map((r) => [r.pod, `network: ${n.name}\nip: ${r.ip}\nqos: {maxTxRateMbps: ${r.maxTxRateMbps}}\n`])),
    },
  });

  const pools = join(dir, 'pools.yaml');
  writeFileSync(pools, `resourceList:\n  - resourceName: ${RESOURCE.split('/')[1]}\n    selectors: {pfNames: ["${pf}"]}\n`);
  const kubelet = new FakeKubelet(join(dir, 'kubelet'), 'legacy');
  await kubelet.start();
  defer(() => kubelet.stop());
  const podResources = new FakePodResourcesServer({ socketPath: join(dir, 'kubelet', 'pod-resources.sock') });
  await podResources.start();
  defer(() => podResources.stop());

  const daemon = startNodeDaemon(join(project, 'dist/bin/sriov-underlay-node'), [
    '--components', 'device-plugin,agent',
    '--kubelet-dir', kubelet.dir,
    '--config', pools,
    '--registration-mode', 'legacy',
    '--metrics-address', '',
    '--node-name', NODE,
    '--kubeconfig', kubeconfig,
    '--pod-resources-socket', podResources.socketPath,
  ], join(logDir, 'node.log'));
  defer(() => daemon.stop());
  await waitFor('the pool registered with the fake kubelet and the agent socket', () => {
    if (daemon.child.exitCode !== null) throw new Error(`the node daemon exited with ${daemon.child.exitCode} (node.log)`);
    return kubelet.healthyIds(RESOURCE).length > 0 && existsSync(AGENT_SOCKET);
  }, 120_000, 250);

  return {
    api,
    core,
    kubelet,
    podResources,
    daemon,
    async admit(ns, name, vf) {
      const pod = await core.createNamespacedPod({ namespace: ns, body: { metadata: { name, namespace: ns }, spec: { nodeName: NODE, containers: [{ name: 'app', image: 'app' }] } } });
      const { podUid } = await kubelet.allocate(RESOURCE, [vf]);
      podResources.setPod({ namespace: ns, name, containers: [{ name: 'app', devices: [{ resourceName: RESOURCE, deviceIds: [vf] }] }] });
      return {
        uid: pod.metadata!.uid!,
        async release() {
          podResources.removePod(ns, name);
          kubelet.release(podUid);
          await core.deleteNamespacedPod({ namespace: ns, name, gracePeriodSeconds: 0 });
        },
      };
    },
  };
}
