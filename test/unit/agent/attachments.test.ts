/**
 * A pod with two attachments, through the agent's socket and the fake API server: each ADD names
 * its network (the netconf "name") and its VF, and gets that network's registration; the claims
 * of the first are untouched by the second. The VF's pool (pools config + a generated sysfs tree,
 * as in an agent-only daemon) must be one the network allows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startFakeKube, type FakeKube } from '../../fakes/kube-apiserver';
import { crdValidators } from '../../fixtures/crd-schema';
import { writeSysfsTree } from '../../fixtures/sysfs-tree';
import { ClusterObjects, IPCLAIMS, loadKubeConfig, makeKubeClients, type KubeClients } from '../../../src/kube/client';
import type { Agent } from '../../../node/agent/agent';
import { startTestAgent } from './test-agent';
import { agentLookup, answerToPodSettings } from '../../../cni/agent-client';
import { poolOfFromConfig } from '../../../node/device-plugin/vf-pool';
import type { IPClaim } from '../../../src/ipam/claims';
import { UnderlayError } from '../../../src/errors';

let kube: FakeKube;
let clients: KubeClients;
let claims: ClusterObjects<IPClaim>;
let dir: string;
let agent: Agent;

const NETS = {
  a100: 'vlan: 100\nsubnet: 10.100.0.0/24\ngateway: 10.100.0.1\nresourceName: sriov-underlay.io/fabric-a\nallowedNamespaces: [demo]',
  b200: 'vlan: 200\nsubnet: 10.200.0.0/24\ngateway: 10.200.0.1\nresourceName: sriov-underlay.io/fabric-b\nallowedNamespaces: [demo]',
};
// VFs 01:10.x belong to PF 01:00.0 (pool fabric-a), 01:11.x to PF 01:00.1 (fabric-b).
const VF_A = '0000:01:10.0';
const VF_B = '0000:01:11.0';

async function putCm(namespace: string, name: string, kind: string, data: Record<string, string>) {
  await clients.core.createNamespacedConfigMap({ namespace, body: { metadata: { name, namespace, labels: { 'sriov-underlay.io/kind': kind } }, data } });
}
async function pod(name: string): Promise<string> {
  const p = await clients.core.createNamespacedPod({ namespace: 'demo', body: { metadata: { name }, spec: { nodeName: 'node-a', containers: [{ name: 'c', image: 'x' }] } } });
  return p.metadata!.uid!;
}
function add(name: string, uid: string, ifName: string, network: string | undefined, deviceID: string) {
  return agentLookup(agent.socketPath, { namespace: 'demo', name, uid, containerId: `ctr-${name}`, ifName, deviceID, ...(network ? { network } : {}) }).then(answerToPodSettings);
}

beforeAll(async () => {
  kube = await startFakeKube({ namespaces: ['sriov-underlay', 'demo'], validators: crdValidators() });
  clients = makeKubeClients(loadKubeConfig({ kubeconfig: kube.kubeconfigPath }));
  claims = new ClusterObjects<IPClaim>(clients.custom, IPCLAIMS);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reg-attach-'));
  const sysfs = path.join(dir, 'sys');
  writeSysfsTree(sysfs, [
    { pciAddr: '0000:01:00.0', netdev: 'ens1f0', vfs: [{ pciAddr: VF_A, netdev: 'ens1f0v0' }] },
    { pciAddr: '0000:01:00.1', netdev: 'ens1f1', vfs: [{ pciAddr: VF_B, netdev: 'ens1f1v0' }] },
  ]);
  const config = path.join(dir, 'pools.yaml');
  fs.writeFileSync(config, 'resourceList:\n  - resourceName: fabric-a\n    selectors: {rootDevices: ["0000:01:00.0"]}\n  - resourceName: fabric-b\n    selectors: {rootDevices: ["0000:01:00.1"]}\n');
  await putCm('sriov-underlay', 'networks', 'network', NETS);
  await putCm('demo', 'two', 'registration', {
    app: '- network: a100\n  ip: 10.100.0.11\n  mac: 02:00:0a:64:00:0b\n- network: b200\n  ip: 10.200.0.11\n  mac: 02:00:0a:c8:00:0b',
    single: 'network: a100\nip: 10.100.0.12',
    wrongpool: 'network: a100\nip: 10.100.0.13',
  });
  agent = await startTestAgent(kube.kubeconfigPath, dir, { sysfsRoot: sysfs, poolOf: poolOfFromConfig(sysfs, config) });
});
afterAll(async () => {
  await agent?.stop();
  await kube?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('a pod with two attachments', () => {
  it('gets distinct IPs, VLANs and MACs, one per network, and both claims stay its own', async () => {
    const uid = await pod('app');
    const first = await add('app', uid, 'net1', 'a100', VF_A);
    const second = await add('app', uid, 'net2', 'b200', VF_B);
    const got = [first, second].map((s) => ({ ips: s?.ips, vlan: s?.vlan, mac: s?.mac }));
    expect(got).toEqual([
      { ips: ['10.100.0.11/24'], vlan: 100, mac: '02:00:0a:64:00:0b' },
      { ips: ['10.200.0.11/24'], vlan: 200, mac: '02:00:0a:c8:00:0b' },
    ]);
    // Uniqueness on what the pod got.
    expect(new Set(got.flatMap((g) => g.ips)).size).toBe(2);
    expect(new Set(got.map((g) => g.vlan)).size).toBe(2);
    // The second ADD did not take the first's claim over.
    const mine = (await claims.list()).items.filter((c) => c.spec.pod.uid === uid).map((c) => [c.spec.ip, c.spec.interface, c.spec.vf]).sort();
    expect(mine).toEqual([
      ['10.100.0.11', 'net1', VF_A],
      ['10.200.0.11', 'net2', VF_B],
    ]);
  });

  it('an attachment to a network the pod has no registration on gets none (its netconf applies)', async () => {
    const uid = await pod('single');
    expect((await add('single', uid, 'net1', 'a100', VF_A))?.ips).toEqual(['10.100.0.12/24']);
    expect(await add('single', uid, 'net2', 'b200', VF_B)).toBeNull();
  });

  it('a VF from another pool than the network’s is refused before any claim, naming the ConfigMaps, key and field', async () => {
    const uid = await pod('wrongpool');
    const err = await add('wrongpool', uid, 'net1', 'a100', VF_B).catch((e: unknown) => e as UnderlayError);
    expect(err).toBeInstanceOf(UnderlayError);
    expect((err as UnderlayError).code).toBe(106);
    expect((err as UnderlayError).message).toBe(
      'configmap demo/two key "wrongpool": field "network": VF 0000:01:11.0 is in device pool "sriov-underlay.io/fabric-b", but network "a100" may only be carried by ' +
        '"sriov-underlay.io/fabric-a" (configmap sriov-underlay/networks key "a100" field "resourceName")',
    );
    expect(await claims.get('a100.10.100.0.13')).toBeUndefined();
    await agent.events.flush();
    const ev = (await clients.core.listNamespacedEvent({ namespace: 'demo' })).items.filter((e) => e.involvedObject.name === 'wrongpool');
    expect(ev.map((e) => e.reason)).toEqual(['RegistrationRejected']);
  });
});
