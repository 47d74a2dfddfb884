import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeKube, type FakeKube } from '../../fakes/kube-apiserver';
import { crdValidators } from '../../fixtures/crd-schema';
import { ClusterObjects, IPCLAIMS, loadKubeConfig, makeKubeClients, type KubeClients } from '../../../src/kube/client';
import { claimIp, claimName, releaseAttachment, type ClaimDeps, type ClaimRequest, type IPClaim } from '../../../src/ipam/claims';
import { podUidGetter } from '../../../src/kube/pods';
import { UnderlayError } from '../../../src/errors';

let kube: FakeKube;
let clients: KubeClients;
let deps: ClaimDeps;

beforeAll(async () => {
  kube = await startFakeKube({ namespaces: ['default', 'db'], validators: crdValidators() });
  clients = makeKubeClients(loadKubeConfig({ kubeconfig: kube.kubeconfigPath }));
  deps = { claims: new ClusterObjects<IPClaim>(clients.custom, IPCLAIMS), podUid: podUidGetter(clients.core) };
});
afterAll(async () => kube.close());
beforeEach(async () => {
  for (const c of (await deps.claims.list()).items) kube.server.remove('ipclaims', undefined, c.metadata!.name!);
  for (const p of (await clients.core.listNamespacedPod({ namespace: 'db' })).items) kube.server.remove('pods', 'db', p.metadata!.name!);
});

async function pod(name: string): Promise<string> {
  const p = await clients.core.createNamespacedPod({ namespace: 'db', body: { metadata: { name }, spec: { containers: [{ name: 'c', image: 'x' }] } } });
  return p.metadata!.uid!;
}

function req(podName: string, uid: string, ip = '10.100.0.11', over: Partial<ClaimRequest> = {}): ClaimRequest {
  return {
    network: 'vlan100',
    ip,
    kind: 'fixed',
    pod: { namespace: 'db', name: podName, uid },
    node: 'node-a',
    containerID: `ctr-${uid}`,
    interface: 'net1',
    source: { namespace: 'db', configMap: 'db-net', key: podName, resourceVersion: '7' },
    ...over,
  };
}

async function code(p: Promise<unknown>): Promise<[number, string]> {
  try {
    await p;
  } catch (e) {
    if (e instanceof UnderlayError) return [e.code, e.message];
    throw e;
  }
  throw new Error('expected a failure');
}

describe('claimName', () => {
  it('is a valid object name, one per address', () => {
    expect(claimName('vlan100', '10.100.0.11')).toBe('vlan100.10.100.0.11');
    expect(claimName('vlan100', 'fd00:100::11')).toBe('vlan100.fd000100000000000000000000000011');
    expect(claimName('vlan100', 'fd00:100:0:0::11')).toBe(claimName('vlan100', 'fd00:100::11'));
  });
});

describe('claimIp against the fake API server', () => {
  it('creates a claim recording IP, network, pod, node, container, interface, source and time', async () => {
    const uid = await pod('pg-0');
    const c = await claimIp(deps, req('pg-0', uid, '10.100.0.11', { vf: '0000:81:10.2' }));
    const stored = await deps.claims.get('vlan100.10.100.0.11');
    expect(stored?.spec).toMatchObject({
      network: 'vlan100',
      ip: '10.100.0.11',
      kind: 'fixed',
      pod: { namespace: 'db', name: 'pg-0', uid },
      node: 'node-a',
      containerID: `ctr-${uid}`,
      interface: 'net1',
      vf: '0000:81:10.2',
      source: { namespace: 'db', configMap: 'db-net', key: 'pg-0', resourceVersion: '7' },
    });
    expect(Date.parse(stored!.spec.claimedAt)).not.toBeNaN();
    expect(stored?.metadata?.labels).toMatchObject({ 'sriov-underlay.io/pod-uid': uid, 'sriov-underlay.io/node': 'node-a' });
    expect(c.metadata?.resourceVersion).toBe(stored?.metadata?.resourceVersion);
  });

  it('a repeated ADD for the same UID returns the same claim, refreshed (its updatedAt is what a queued DEL is compared with)', async () => {
    const uid = await pod('pg-0');
    const first = await claimIp(deps, req('pg-0', uid));
    kube.server.resetCounters();
    const again = await claimIp(deps, req('pg-0', uid));
    expect(again.metadata?.name).toBe(first.metadata?.name);
    expect(again.spec.claimedAt).toBe(first.spec.claimedAt);
    expect(Date.parse(again.spec.updatedAt)).toBeGreaterThanOrEqual(Date.parse(first.spec.updatedAt));
    expect(kube.server.counters().writesByResource.ipclaims).toEqual({ create: 1, update: 1 }); // the refused create, the refresh
    expect(kube.server.counters().commits).toBe(1);
  });

  it('another live pod asking for the address gets a conflict naming the holder', async () => {
    const a = await pod('pg-0');
    const b = await pod('web-0');
    await claimIp(deps, req('pg-0', a));
    const [c, msg] = await code(claimIp(deps, req('web-0', b)));
    expect(c).toBe(105);
    expect(msg).toMatch(
      new RegExp(`^claim 10\\.100\\.0\\.11 on network "vlan100" for pod db/web-0: it is claimed by pod db/pg-0 \\(uid ${a}\\) on node node-a since .*, from configmap db/db-net key "pg-0"$`),
    );
  });

  it('a StatefulSet pod re-created with a new UID waits while the old pod exists, then takes the claim over', async () => {
    const oldUid = await pod('mysql-0');
    await claimIp(deps, req('mysql-0', oldUid));
    // kubelet on another node starts the new incarnation before the old one is gone
    const [c, msg] = await code(claimIp(deps, req('mysql-0', 'new-uid', '10.100.0.11', { node: 'node-b' })));
    expect(c).toBe(11);
    expect(msg).toContain(`still held by the previous pod of that name (uid ${oldUid})`);
    kube.server.remove('pods', 'db', 'mysql-0');
    const newUid = await pod('mysql-0');
    const taken = await claimIp(deps, req('mysql-0', newUid, '10.100.0.11', { node: 'node-b' }));
    expect(taken.spec.pod.uid).toBe(newUid);
    expect(taken.spec.node).toBe('node-b');
  });

  it('under a burst, each address has exactly one holder', async () => {
    // 40 addresses, each wanted by two different pods at once.
    const uids = await Promise.all(Array.from({ length: 80 }, (_, i) => pod(`p-${i}`)));
    const results = await Promise.allSettled(uids.map((u, i) => claimIp(deps, req(`p-${i}`, u, `10.100.0.${100 + (i % 40)}`))));
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won.length).toBe(40);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as UnderlayError).code).toBe(105);
    const stored = (await deps.claims.list()).items;
    expect(stored.length).toBe(40);
    expect(new Set(stored.map((c) => c.spec.ip)).size).toBe(40);
  });

  it('release deletes only the attachment’s claims; a reservation goes back to waiting', async () => {
    const uid = await pod('pg-0');
    await claimIp(deps, req('pg-0', uid, '10.100.0.11'));
    await claimIp(deps, req('pg-0', uid, '10.100.0.12', { interface: 'net2', containerID: `ctr-${uid}` }));
    // a reservation, then the pod takes it
    await claimIp(deps, req('batch', '', '10.100.0.13', { kind: 'reserved', node: '', containerID: '', interface: '', source: { namespace: 'db', configMap: 'db-net', key: 'batch', resourceVersion: '7' } }));
    const bUid = await pod('batch');
    const taken = await claimIp(deps, req('batch', bUid, '10.100.0.13', { kind: 'pool', source: { namespace: 'db', configMap: 'db-net', key: 'batch', resourceVersion: '7' } }));
    expect(taken.spec).toMatchObject({ kind: 'reserved', pod: { uid: bUid } });

    expect(await releaseAttachment(deps, { containerID: `ctr-${uid}`, interface: 'net1', uid, node: 'node-a' })).toEqual(['vlan100.10.100.0.11']);
    expect(await deps.claims.get('vlan100.10.100.0.11')).toBeUndefined();
    expect(await deps.claims.get('vlan100.10.100.0.12')).toBeDefined();
    expect(await releaseAttachment(deps, { containerID: `ctr-${bUid}`, interface: 'net1', uid: bUid, node: 'node-a' })).toEqual(['vlan100.10.100.0.13']);
    expect((await deps.claims.get('vlan100.10.100.0.13'))?.spec).toMatchObject({ kind: 'reserved', pod: { name: 'batch', uid: '' }, containerID: '' });
  });

  it('a reservation is not taken by another registration’s pod', async () => {
    await claimIp(deps, req('batch', '', '10.100.0.14', { kind: 'reserved', node: '', containerID: '', interface: '' }));
    const other = await pod('other');
    const [c, msg] = await code(claimIp(deps, req('other', other, '10.100.0.14')));
    expect(c).toBe(105);
    expect(msg).toContain('a reservation for pod db/batch');
  });

  it('an unreachable API server is "try again later"', async () => {
    await kube.server.stop();
    try {
      const [c, msg] = await code(claimIp(deps, req('pg-0', 'u')));
      expect(c).toBe(11);
      expect(msg).toContain('Kubernetes API unreachable');
    } finally {
      await kube.server.start();
    }
  });
});
