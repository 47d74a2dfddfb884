/**
 * What a node needs around the container runtime for the runtime tier, on the paths kubelet and the
 * DaemonSet use (deploy/40-daemonset.yaml's hostPaths; the guest's /var/lib and /run are tmpfs):
 * the fake API server (TLS) with a network and the pods' registrations, a service-account token it
 * accepts for this node, the fake kubelet (plugin-watcher registration and Allocate, under
 * /var/lib/kubelet) with its PodResources socket. The node daemon itself runs from the image
 * (./node-image.ts); `volumeDirs` and `serviceEnv` are what kubelet would give its containers.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startFakeApi, type FakeApi } from '../../../demo/processes';
import { loadKubeConfig, makeKubeClients, type KubeClients } from '../../../src/kube/client';
import { FakeKubelet } from '../../fakes/kubelet';
import { FakePodResourcesServer } from '../../fakes/podresources/server';
import { waitFor } from './sh';

export const NODE = 'vm-node';
export const RESOURCE = 'sriov-underlay.io/crivf';
export const AGENT_SOCKET = '/run/sriov-underlay/agent.sock';
/** kubelet's root dir: the DaemonSet mounts its device-plugins, plugins_registry and pod-resources. */
export const KUBELET_DIR = '/var/lib/kubelet';

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
  /** Host dirs for the DaemonSet's configMap and projected volumes (pools, node policy, the token). */
  volumeDirs: Record<string, string>;
  /** KUBERNETES_SERVICE_HOST/PORT: what kubelet sets in every container, here the fake API server. */
  serviceEnv: Record<string, string>;
  /** Until the daemon's pool is registered with the fake kubelet and the agent socket exists. */
  waitForDaemon(alive: () => Promise<boolean>): Promise<void>;
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
  // The daemon's credentials are a node-bound service-account token, as kubelet projects it.
  const token = randomBytes(24).toString('base64url');
  const api = await startFakeApi(project, kubeconfig, join(logDir, 'apiserver.log'), ['--tls', '--node-token', `${NODE}=${token}`]);
  defer(() => api.stop());
  // The projected kube-api-access volume: token, the cluster's CA (kube-root-ca.crt), namespace.
  const sa = join(dir, 'kube-api-access');
  mkdirSync(sa, { recursive: true });
  const kc = parse(readFileSync(kubeconfig, 'utf8')) as { clusters: { cluster: { 'certificate-authority-data'?: string } }[] };
  const ca = kc.clusters[0]?.cluster['certificate-authority-data'];
  if (!ca) throw new Error(`${kubeconfig}: the fake API server (--tls) wrote no certificate-authority-data`);
  writeFileSync(join(sa, 'token'), token, { mode: 0o644 });
  writeFileSync(join(sa, 'ca.crt'), Buffer.from(ca, 'base64'), { mode: 0o644 });
  writeFileSync(join(sa, 'namespace'), 'sriov-underlay', { mode: 0o644 });
  const url = new URL(api.url);
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

  // The ConfigMap volume sriov-underlay-device-plugin (key pools.yaml); no node-policy ConfigMap
  // (optional: an empty dir, so the policy writes nothing).
  const pools = join(dir, 'pools-config');
  const policy = join(dir, 'node-policy');
  mkdirSync(pools, { recursive: true });
  mkdirSync(policy, { recursive: true });
  writeFileSync(join(pools, 'pools.yaml'), `resourceList:\n  - resourceName: ${RESOURCE.split('/')[1]}\n    selectors: {pfNames: ["${pf}"]}\n`);
  // The daemon's default registration mode (auto) takes plugin-watcher: the DaemonSet mounts plugins_registry.
  const kubelet = new FakeKubelet(KUBELET_DIR, 'plugin-watcher');
  await kubelet.start();
  defer(() => kubelet.stop());
  const podResources = new FakePodResourcesServer({ socketPath: join(KUBELET_DIR, 'pod-resources', 'kubelet.sock') });
  mkdirSync(join(KUBELET_DIR, 'pod-resources'), { recursive: true });
  await podResources.start();
  defer(() => podResources.stop());

  return {
    api,
    core,
    kubelet,
    podResources,
    volumeDirs: { 'pools-config': pools, 'node-policy': policy, 'kube-api-access': sa },
    serviceEnv: { KUBERNETES_SERVICE_HOST: url.hostname, KUBERNETES_SERVICE_PORT: url.port },
    async waitForDaemon(alive) {
      await waitFor('the pool registered with the fake kubelet and the agent socket', async () => {
        if (!(await alive())) throw new Error('the node container is not running (node-1.log)');
        return kubelet.healthyIds(RESOURCE).length > 0 && existsSync(AGENT_SOCKET);
      }, 180_000, 500);
    },
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
