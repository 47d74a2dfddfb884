/** Fixed dual-stack claims are all or nothing, against the fake API server through client-node. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { claimFixed } from '../../../node/agent/assign';
import { podUidGetter } from '../../../src/kube/pods';
import { UnderlayError } from '../../../src/errors';
import { claimIp, type ClaimDeps, type IPClaim } from '../../../src/ipam/claims';
import { ClusterObjects, IPCLAIMS, loadKubeConfig, makeKubeClients, type KubeClients } from '../../../src/kube/client';
import type { ResolvedSettings } from '../../../src/registrations/types';
import { startFakeKube, type FakeKube } from '../../fakes/kube-apiserver';
import { crdValidators } from '../../fixtures/crd-schema';

let kube: FakeKube;
let clients: KubeClients;
let deps: ClaimDeps;

beforeAll(async () => {
  kube = await startFakeKube({ namespaces: ['default', 'db'], validators: crdValidators() });
  clients = makeKubeClients(loadKubeConfig({ kubeconfig: kube.kubeconfigPath }));
  deps = { claims: new ClusterObjects<IPClaim>(clients.custom, IPCLAIMS), podUid: podUidGetter(clients.core) };
});
afterAll(async () => kube.close());

async function pod(name: string): Promise<string> {
  const p = await clients.core.createNamespacedPod({ namespace: 'db', body: { metadata: { name }, spec: { containers: [{ name: 'c', image: 'x' }] } } });
  return p.metadata!.uid!;
}

const source = (key: string) => ({ namespace: 'db', configMap: 'db-net', key, resourceVersion: '7' });

function settings(key: string, ips: string[]): ResolvedSettings {
  return { network: 'vlan100', resourceName: 'sriov-underlay.io/fabric-a', ips, gateways: [], routes: [], duplicateDetection: true, source: source(key) };
}

it('a dual-stack pod whose IPv6 address is held by another live pod keeps no IPv4 claim either', async () => {
  const holderUid = await pod('holder');
  await claimIp(deps, {
    network: 'vlan100',
    ip: 'fd00:100::31',
    kind: 'fixed',
    pod: { namespace: 'db', name: 'holder', uid: holderUid },
    node: 'node-a',
    containerID: 'ctr-holder',
    interface: 'net1',
    source: source('holder'),
  });
  const uid = await pod('app');
  const attempt = claimFixed(deps, settings('app', ['10.100.0.31/24', 'fd00:100::31/64']), {
    pod: { namespace: 'db', name: 'app', uid },
    node: 'node-a',
    containerID: 'ctr-app',
    interface: 'net1',
  });
  await expect(attempt).rejects.toBeInstanceOf(UnderlayError);
  const held = (await deps.claims.list()).items.map((c) => [c.spec.ip, c.spec.pod.name]);
  expect(held).toEqual([['fd00:100::31', 'holder']]);

  // With the other family free, both are claimed.
  const both = await claimFixed(deps, settings('app', ['10.100.0.32/24', 'fd00:100::32/64']), {
    pod: { namespace: 'db', name: 'app', uid },
    node: 'node-a',
    containerID: 'ctr-app',
    interface: 'net1',
  });
  expect(both.map((c) => c.spec.ip)).toEqual(['10.100.0.32', 'fd00:100::32']);
});
