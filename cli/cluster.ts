/** The CLI's reads: the cluster through a kubeconfig, or Kubernetes objects from YAML/JSON files. */
import * as k8s from '@kubernetes/client-node';
import * as fs from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { IPClaim } from '../src/ipam/claims';
import { ClusterObjects, IPCLAIMS, kubeFailure, loadKubeConfig, makeKubeClients, SRIOV_NODE_STATES, type KubeClients } from '../src/kube/client';
import type { ConfigMapObject } from '../src/registrations/types';
import { NETWORK_LABEL } from '../src/schemas/network';
import type { SriovNodeState } from '../src/schemas/node-state';
import { CliError, EXIT } from './errors';

export interface Cluster {
  clients: KubeClients;
  apps: k8s.AppsV1Api;
  claims: ClusterObjects<IPClaim>;
  nodeStates: ClusterObjects<SriovNodeState>;
}

export function connect(kubeconfig: string | undefined): Cluster {
  let kc: k8s.KubeConfig;
  try {
    kc = loadKubeConfig(kubeconfig ? { kubeconfig } : {});
  } catch (e) {
    throw new CliError(EXIT.api, (e as Error).message);
  }
  const clients = makeKubeClients(kc);
  return {
    clients,
    apps: kc.makeApiClient(k8s.AppsV1Api),
    claims: new ClusterObjects<IPClaim>(clients.custom, IPCLAIMS),
    nodeStates: new ClusterObjects<SriovNodeState>(clients.custom, SRIOV_NODE_STATES),
  };
}

/** Run an API call; a failure becomes exit code 5 with what was being done. */
export async function api<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const f = kubeFailure(e);
    throw new CliError(EXIT.api, `${what}: ${f.unreachable ? `Kubernetes API unreachable: ${f.message}` : `Kubernetes API answered ${f.code} ${f.reason ?? ''}: ${f.message}`}`);
  }
}

/** Every network and registration ConfigMap in the cluster. */
export async function clusterConfigMaps(c: Cluster): Promise<ConfigMapObject[]> {
  const list = await api('list ConfigMaps', () =>
    c.clients.core.listConfigMapForAllNamespaces({ labelSelector: `${NETWORK_LABEL.key} in (network,registration)` }),
  );
  return list.items as ConfigMapObject[];
}

export interface FileObjects {
  configMaps: ConfigMapObject[];
  statefulSets: k8s.V1StatefulSet[];
  nodeStates: SriovNodeState[];
  /** Documents of other kinds, ignored (reported as a note). */
  ignored: string[];
}

/** Kubernetes objects from YAML (multi-document) or JSON files; `List` kinds are unpacked. */
export function readObjectFiles(paths: string[], defaultNamespace: string): FileObjects {
  const out: FileObjects = { configMaps: [], statefulSets: [], nodeStates: [], ignored: [] };
  const add = (o: unknown, where: string) => {
    if (o === null || o === undefined) return;
    if (typeof o !== 'object' || Array.isArray(o)) throw new CliError(EXIT.input, `${where}: not a Kubernetes object`);
    const obj = o as { kind?: unknown; items?: unknown; metadata?: { namespace?: string; name?: string } };
    if (obj.kind === 'List' && Array.isArray(obj.items)) return obj.items.forEach((x, i) => add(x, `${where} item ${i}`));
    const name = `${String(obj.kind)} ${obj.metadata?.name ?? '(no name)'}`;
    if (!obj.metadata?.name) throw new CliError(EXIT.input, `${where}: ${String(obj.kind)} has no metadata.name`);
    if (obj.kind === 'ConfigMap') {
      obj.metadata.namespace ??= defaultNamespace;
      out.configMaps.push(obj as ConfigMapObject);
    } else if (obj.kind === 'StatefulSet') {
      obj.metadata.namespace ??= defaultNamespace;
      out.statefulSets.push(obj as k8s.V1StatefulSet);
    } else if (obj.kind === 'SriovNodeState') out.nodeStates.push(obj as SriovNodeState);
    else out.ignored.push(`${where}: ${name}`);
  };
  for (const p of paths) {
    let text: string;
    try {
      text = fs.readFileSync(p, 'utf8');
    } catch (e) {
      throw new CliError(EXIT.input, `${p}: cannot be read: ${(e as Error).message}`);
    }
    const docs = parseAllDocuments(text, { uniqueKeys: true });
    if (!Array.isArray(docs)) continue; // an empty file
    docs.forEach((d, i) => {
      if (d.errors.length) throw new CliError(EXIT.input, `${p} document ${i + 1}: not valid YAML: ${d.errors[0]!.message.split('\n')[0]}`);
      add(d.toJS(), `${p} document ${i + 1}`);
    });
  }
  return out;
}
