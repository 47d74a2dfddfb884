/**
 * The node daemon (process entry node/entry.ts; in the one executable dist/bin/sriov-underlay-node,
 * see exe/main.ts). Each component is started on its own according to --components: the device
 * plugin, the node agent, the node policy and the CNI server. Together, the agent
 * publishes the device plugin's pool counts as this node's SriovNodeState.
 *
 * Each component's modules are loaded only when it starts (dynamic import, which esbuild turns into
 * a deferred require): a device-plugin-only daemon never evaluates @kubernetes/client-node and its
 * models, which cost ~45 MB of RSS, and an agent-only one skips prom-client and the plugin server.
 */
import * as v8 from 'node:v8';
import type { SriovNodeState } from '../src/schemas/node-state';
import { stderrLogger, type Logger } from '../src/log';
import type { DevicePluginDaemon } from './device-plugin/daemon';
import { FlagError, parseFlags, USAGE } from './flags';
import type { NodeFlags } from '../src/schemas/node-flags';
import type { NodePolicy } from './policy/component';

interface Component {
  stop(): Promise<void>;
}

/** How often the node state is re-published (writes are skipped when nothing changed). */
const NODE_STATE_PERIOD_MS = 10_000;

async function startDevicePlugin(flags: NodeFlags, log: Logger): Promise<Component & { daemon: DevicePluginDaemon }> {
  const { DevicePluginDaemon } = await import('./device-plugin/daemon');
  const daemon = new DevicePluginDaemon({
    kubeletDir: flags['kubelet-dir'],
    sysfsRoot: flags['sysfs-root'],
    configPath: flags.config,
    devinfoDir: flags['devinfo-dir'] === '' ? null : flags['devinfo-dir'],
    registrationMode: flags['registration-mode'],
    rescanMs: flags['rescan-interval-ms'],
    log: log.child({ component: 'device-plugin' }),
  });
  await daemon.start();
  const metrics = flags['metrics-address'] === '' ? null : await daemon.metrics.listen(flags['metrics-address'], log);
  return {
    daemon,
    async stop() {
      metrics?.server.close();
      await daemon.stop();
    },
  };
}

async function startAgentComponent(flags: NodeFlags, log: Logger, dp: DevicePluginDaemon | null, policy: NodePolicy | null): Promise<Component> {
  const [{ startAgent }, { NodeStatePublisher, nodePoolStates }, { ClusterObjects, SRIOV_NODE_STATES }, { netdevSpeedMbps }, { poolOfFromDaemon, poolOfFromConfig }] = await Promise.all([
    import('./agent/agent'),
    import('./agent/node-state'),
    import('../src/kube/client'),
    import('../src/sysfs/pci'),
    import('./device-plugin/vf-pool'),
  ]);
  const agent = await startAgent({
    nodeName: flags['node-name'] as string,
    log,
    ...(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {}),
    socketPath: flags['agent-socket'],
    releaseQueueDir: flags['release-queue-dir'],
    podResourcesSocket: flags['pod-resources-socket'] === '' ? null : flags['pod-resources-socket'],
    sysfsRoot: flags['sysfs-root'],
    reconcileIntervalMs: flags['reconcile-interval-ms'],
    reconcileReportOnly: flags['reconcile-report-only'],
    poolOf: dp ? poolOfFromDaemon(dp) : poolOfFromConfig(flags['sysfs-root'], flags.config),
  });
  let timer: NodeJS.Timeout | undefined;
  const publisher = dp || policy ? new NodeStatePublisher(new ClusterObjects<SriovNodeState>(agent.clients.custom, SRIOV_NODE_STATES), flags['node-name'] as string, log) : null;
  if (policy && publisher) {
    // The node policy's status goes into the same SriovNodeState; its Events go on the Node.
    const node = flags['node-name'] as string;
    let lastPolicy = '';
    policy.statusSink = (s) => {
      const key = JSON.stringify({ ...s, appliedAt: '' });
      if (key === lastPolicy) return;
      publisher.updatePolicy(s).then(() => (lastPolicy = key), () => undefined);
    };
    policy.eventSink = (e) => agent.events.emit({ kind: 'Node', namespace: 'default', name: node }, e.type, e.reason, e.message);
    if (policy.last) policy.statusSink(policy.last);
  }
  if (dp && publisher) {
    let last = '';
    const publish = () => {
      const pools = nodePoolStates(
        dp.pools(),
        (resource) => [...(dp.poolStates().find((p) => p.resource === resource)?.devices.values() ?? [])].flatMap((d) => (d.vf.pfNetdev ? [d.vf.pfNetdev] : [])),
        (pf) => netdevSpeedMbps(flags['sysfs-root'], pf),
      );
      const key = JSON.stringify(pools);
      if (key === last) return;
      publisher.update(pools).then(
        () => (last = key),
        () => undefined, // logged by the publisher; retried on the next tick
      );
    };
    publish();
    timer = setInterval(publish, NODE_STATE_PERIOD_MS);
    timer.unref();
  }
  return {
    async stop() {
      if (timer) clearInterval(timer);
      await agent.stop();
    },
  };
}

export async function main(argv: string[]): Promise<number> {
  let flags: NodeFlags;
  try {
    flags = parseFlags(argv);
  } catch (e) {
    if (!(e instanceof FlagError)) throw e;
    process.stderr.write(`sriov-underlay-node: ${e.message}\n\n${USAGE}`);
    return 2;
  }
  if (flags.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  // A long-lived daemon that allocates little after start-up: V8 grows its heap more slowly and its
  // memory reducer hands the start-up burst back to the OS (the agent with 10,000 registrations:
  // ~150 -> ~110 MB a few seconds after start, see docs/registrations.md "Figures"). This flag is
  // not allowed in NODE_OPTIONS, and it does take effect when set here, before the components start.
  v8.setFlagsFromString('--optimize-for-size');
  const log = stderrLogger(flags['log-level'], { name: 'sriov-underlay-node' });
  const components: Component[] = [];
  try {
    let dp: DevicePluginDaemon | null = null;
    let policy: NodePolicy | null = null;
    // The node policy first: the device plugin then registers the VFs as the policy leaves them.
    if (flags.components.includes('node-policy')) {
      const started = await (await import('./policy/start')).startNodePolicy(flags, log);
      policy = started.policy;
      components.push(started);
    }
    if (flags.components.includes('device-plugin')) {
      const started = await startDevicePlugin(flags, log);
      dp = started.daemon;
      components.push(started);
      if (policy) {
        const d = dp;
        policy.fence = (pf, on) => d.fence(pf, on);
        policy.allocatedByPlugin = (pci) => d.isAllocatedAnywhere(pci);
      }
    }
    if (flags.components.includes('agent')) components.push(await startAgentComponent(flags, log, dp, policy));
    if (flags.components.includes('cni-server')) components.push(await (await import('./cni-server/start')).startCniServerComponent(flags, log));
  } catch (e) {
    log.fatal({ err: (e as Error).message }, 'start-up failed');
    await Promise.all(components.map((c) => c.stop()));
    return 1;
  }
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  log.info('stopping');
  await Promise.all(components.map((c) => c.stop()));
  return 0;
}
