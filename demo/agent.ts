/**
 * The node agent for the demo. The agent is meant to be a component of sriov-underlay-node
 * (`--components device-plugin,agent`); until a build has it, the demo runs the same agent
 * (`startAgent` of src/agent/agent.ts: registration index by list+watch, CNI socket, IP claims,
 * Events, release queue) in its own process, and says so loudly. Only the host process differs.
 */
import { execFile } from 'node:child_process';
import { startAgent } from '../src/agent/agent';
import { fileLogger } from '../src/log';

/** The flags the demo passes to the daemon's agent component. */
export const AGENT_FLAGS = ['--kubeconfig', '--agent-socket', '--state-dir', '--node-name'];

export interface DaemonAgentSupport {
  /** --help lists an "agent" component. */
  component: boolean;
  /** AGENT_FLAGS that --help does not list. */
  missingFlags: string[];
}

/** What the daemon's --help says about the agent component and the flags the demo would pass. */
export function daemonAgentSupport(nodeBin: string): Promise<DaemonAgentSupport> {
  return new Promise((resolve) => {
    execFile(nodeBin, ['--help'], { encoding: 'utf8' }, (_err, stdout) => {
      const components = stdout.split('\n').find((l) => l.includes('--components')) ?? '';
      resolve({ component: /\bagent\b/.test(components), missingFlags: AGENT_FLAGS.filter((f) => !stdout.includes(f)) });
    });
  });
}

export interface StandInOptions {
  kubeconfig: string;
  socket: string;
  stateDir: string;
  sysfsRoot: string;
  nodeName: string;
  logFile: string;
}

export async function startStandInAgent(o: StandInOptions): Promise<{ close(): Promise<void> }> {
  const log = fileLogger(o.logFile, 'info', { name: 'sriov-underlay-agent (demo stand-in)' });
  const agent = await startAgent({
    nodeName: o.nodeName,
    log,
    kubeconfig: o.kubeconfig,
    socketPath: o.socket,
    stateDir: o.stateDir,
    sysfsRoot: o.sysfsRoot,
    podResourcesSocket: null, // the demo's pods come with a deviceID (secondary-network case)
  });
  return { close: () => agent.stop() };
}
