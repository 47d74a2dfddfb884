/** A node agent for tests against the fake API server: node-a, silent, socket and release queue in `dir`. */
import * as path from 'node:path';
import { startAgent, type Agent, type AgentOptions } from '../../../node/agent/agent';
import { silentLogger } from '../../../src/log';

export function startTestAgent(kubeconfig: string, dir: string, extra: Partial<AgentOptions> = {}): Promise<Agent> {
  return startAgent({
    nodeName: 'node-a',
    log: silentLogger(),
    kubeconfig,
    socketPath: path.join(dir, 'agent.sock'),
    releaseQueueDir: path.join(dir, 'release-queue'),
    podResourcesSocket: null,
    releaseRetryMs: 60_000,
    ...extra,
  });
}
