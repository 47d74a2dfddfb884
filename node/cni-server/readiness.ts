/**
 * What the CNI server adds to STATUS (the CNI's own STATUS, cni/status.ts, already checks netlink,
 * the state dir and sysfs, and the IPAM plugin, for both entry points): it is not ready while it
 * stops, nor when the netconf names an agent socket nothing answers on (an ADD of a pod with a
 * registration would then fail with "try again later"). The standalone CNI's STATUS is unchanged.
 */
import * as net from 'node:net';
import { CniCode, UnderlayError } from '../../src/errors';
import type { NetConf } from '../../src/schemas/netconf';

/** A connect to the agent is local and instant when it runs; its lookups are bounded elsewhere. */
export const AGENT_PROBE_MS = 1_000;

export function serverStatusChecks(isStopping: () => boolean, probeMs = AGENT_PROBE_MS): (conf: NetConf) => Promise<void> {
  return async (conf) => {
    if (isStopping()) throw new UnderlayError(CniCode.PluginNotAvailable, 'CNI server is stopping; calls fall back to the standalone CNI meanwhile');
    if (conf.agentSocket) {
      const why = await connectError(conf.agentSocket, probeMs);
      if (why) {
        throw new UnderlayError(
          CniCode.PluginNotAvailable,
          `node agent unreachable at ${conf.agentSocket} (${why}): an ADD of a pod with a registration would fail; check the sriov-underlay-node agent on this node`,
        );
      }
    }
  };
}

/** null when something accepts a connection at path within ms, else why not. */
function connectError(path: string, ms: number): Promise<string | null> {
  return new Promise((resolve) => {
    const c = net.createConnection(path);
    const done = (why: string | null) => {
      clearTimeout(timer);
      c.destroy();
      resolve(why);
    };
    const timer = setTimeout(() => done(`no accept within ${ms} ms`), ms);
    c.once('connect', () => done(null));
    c.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
  });
}
