/** The CNI server as a node daemon component: its socket, its deadline, its own /metrics. */
import type { Logger } from '../../src/log';
import { setSysctlRoot } from '../../src/netns';
import type { NodeFlags } from '../../src/schemas/node-flags';
import { serveMetrics } from '../metrics-http';
import { CniServerMetrics } from './metrics';
import { serverStatusChecks } from './readiness';
import { startCniServer, type CniServer } from './server';

export async function startCniServerComponent(flags: NodeFlags, log: Logger): Promise<{ server: CniServer; stop(): Promise<void> }> {
  setSysctlRoot(flags['cni-sysctl-root']);
  const metrics = flags['cni-metrics-address'] === '' ? null : new CniServerMetrics();
  const ref: { server?: CniServer } = {};
  const server = await startCniServer({
    socketPath: flags['cni-socket'],
    log,
    commandDeadlineMs: flags['cni-command-deadline-ms'],
    ...(metrics ? { observer: metrics } : {}),
    statusChecks: serverStatusChecks(() => ref.server?.stopping() ?? false),
  });
  const http = metrics ? await serveMetrics(metrics.registry, flags['cni-metrics-address'], log.child({ component: 'cni-server' })) : null;
  ref.server = server;
  return {
    server,
    async stop() {
      http?.server.close();
      await server.stop();
    },
  };
}
