/**
 * Starting the node-policy component from the daemon's flags: the netlink socket for the PF's MTU
 * and link, the in-use sources (kubelet's checkpoint and PodResources, the CNI's VF records), the
 * node's labels from the API server (loaded only when an entry has a nodeSelector), and, with the
 * node name, the evictor of `disruption: evict` (its Lease lives in the policy ConfigMap's
 * namespace, the daemon's own).
 */
import * as path from 'node:path';
import type { Logger } from '../../src/log';
import { Rtnl } from '../../src/netlink';
import type { NodeFlags } from '../../src/schemas/node-flags';
import { NodePolicy } from './component';
import type { Evictor } from './evict';

const CHECKPOINT_FILE = 'device-plugins/kubelet_internal_checkpoint';


export async function startNodePolicy(flags: NodeFlags, log: Logger): Promise<{ policy: NodePolicy; stop(): Promise<void> }> {
  const plog = log.child({ component: 'node-policy' });
  const rtnl = Rtnl.open();
  const socket = flags['pod-resources-socket'];
  const pr = socket === '' ? null : new (await import('../agent/pod-resources')).PodResourcesClient(plog, socket);
  let clients: import('../../src/kube/client').KubeClients | null = null;
  const kube = async () => {
    if (!clients) {
      const { loadKubeConfig, makeKubeClients } = await import('../../src/kube/client');
      clients = makeKubeClients(loadKubeConfig(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {}));
    }
    return clients;
  };
  const nodeName = flags['node-name'];
  let evictor: Evictor | null = null;
  if (nodeName) {
    try {
      const k = await kube();
      const { NodeLease, EVICT_LEASE_NAME, EVICT_LEASE_SECONDS } = await import('./lease');
      const { Evictor } = await import('./evict');
      const lease = new NodeLease(k.coordination, { namespace: flags['node-policy-configmap'].split('/')[0]!, name: EVICT_LEASE_NAME, holder: nodeName, durationS: EVICT_LEASE_SECONDS });
      evictor = new Evictor({ core: k.core, lease, nodeName, log: plog });
    } catch (e) {
      plog.warn({ err: (e as Error).message }, 'no Kubernetes API access: disruption: evict entries stay held');
    }
  }
  const policy = new NodePolicy({
    sysfsRoot: flags['sysfs-root'],
    source: { configMap: flags['node-policy-configmap'], file: flags['node-policy'] },
    links: rtnl,
    inUse: {
      checkpointPath: path.join(flags['kubelet-dir'], CHECKPOINT_FILE),
      stateDir: flags['cni-state-dir'],
      podResources: pr ? () => pr.list() : null,
    },
    nodeLabels: async () => {
      if (!nodeName) return null;
      const node = await (await kube()).core.readNode({ name: nodeName });
      return node.metadata?.labels ?? {};
    },
    log: plog,
    intervalMs: flags['node-policy-interval-ms'],
    evictor,
  });
  // Before anything else of the daemon: the device plugin registers only what this leaves.
  const first = await policy.applyOnce();
  plog.info({ pfs: first.pfs.map((p) => ({ pf: p.name, applied: p.conditions.find((c) => c.type === 'Applied')?.reason })), rejected: first.rejected.length }, 'node policy first pass done');
  policy.start();
  return {
    policy,
    async stop() {
      await policy.stop();
      pr?.close();
      rtnl.close();
    },
  };
}
