/**
 * The node agent for the demo. The agent is a component of sriov-underlay-node (`--components
 * device-plugin,agent`); until a build has it, the demo serves the same socket itself with the
 * project's agent modules (src/agent's lookup handler and CNI socket over src/registrations' index,
 * filled from the API server), and says so loudly. It claims no IPs: the demo's pods have fixed
 * addresses and the registration index already refuses a second holder.
 */
import { execFile } from 'node:child_process';
import { startCniSocket } from '../src/agent/cni-socket';
import { lookupHandler } from '../src/agent/lookup';
import { loadKubeConfig, makeKubeClients } from '../src/kube/client';
import { fileLogger } from '../src/log';
import { RegistrationIndex } from '../src/registrations/index';
import type { ConfigMapObject } from '../src/registrations/types';
import { NETWORK_LABEL } from '../src/schemas/network';
import { REGISTRATION_LABEL } from '../src/schemas/registration';

/** True when the daemon's --help lists an "agent" component. */
export function daemonHasAgent(nodeBin: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(nodeBin, ['--help'], { encoding: 'utf8' }, (_err, stdout) => resolve(/\bagent\b/.test(stdout.split('\n').find((l) => l.includes('--components')) ?? '')));
  });
}

export async function startStandInAgent(kubeconfig: string, socket: string, logFile: string): Promise<{ close(): Promise<void> }> {
  const log = fileLogger(logFile, 'info', { name: 'demo-agent-standin' });
  const { core } = makeKubeClients(loadKubeConfig({ kubeconfig }));
  const cms: ConfigMapObject[] = [];
  for (const label of [NETWORK_LABEL, REGISTRATION_LABEL]) {
    const list = await core.listConfigMapForAllNamespaces({ labelSelector: `${label.key}=${label.value}` });
    cms.push(...(list.items as ConfigMapObject[]));
  }
  const index = new RegistrationIndex();
  index.replaceAll(cms);
  return startCniSocket(socket, lookupHandler({ index, log }), log);
}
