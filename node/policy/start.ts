/**
 * Starting the node-policy component from the daemon's flags: the netlink socket for the PF's MTU
 * and link, the in-use sources (kubelet's checkpoint and PodResources, the CNI's VF records), and
 * the node's labels from the API server (loaded only when an entry has a nodeSelector).
 */
import * as path from 'node:path';
import type { Logger } from '../../src/log';
import { Rtnl } from '../../src/netlink';
import type { NodeFlags } from '../../src/schemas/node-flags';
import { NodePolicy } from './component';

const CHECKPOINT = 'device-plugins/kubelet_internal_checkpoint';

export async function startNodePolicy(flags: NodeFlags, log: Logger): Promise<{ policy: NodePolicy; stop(): Promise<void> }> {
  const plog = log.child({ component: 'node-policy' });
  const rtnl = Rtnl.open();
  const socket = flags['pod-resources-socket'];
  const pr = socket === '' ? null : new (await import('../agent/pod-resources')).PodResourcesClient(plog, socket);
  let core: import('@kubernetes/client-node').CoreV1Api | null = null;
  const nodeName = flags['node-name'];
  const policy = new NodePolicy({
    sysfsRoot: flags['sysfs-root'],
    source: { configMap: flags['node-policy-configmap'], file: flags['node-policy'] },
    links: rtnl,
    inUse: {
      checkpointPath: path.join(flags['kubelet-dir'], CHECKPOINT),
      stateDir: flags['cni-state-dir'],
      podResources: pr ? () => pr.list() : null,
    },
    nodeLabels: async () => {
      if (!nodeName) return null;
      if (!core) {
        const { loadKubeConfig, makeKubeClients } = await import('../../src/kube/client');
        core = makeKubeClients(loadKubeConfig(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {})).core;
      }
      const node = await core.readNode({ name: nodeName });
      return node.metadata?.labels ?? {};
    },
    log: plog,
    intervalMs: flags['node-policy-interval-ms'],
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
