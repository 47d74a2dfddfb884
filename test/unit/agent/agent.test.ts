import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { startFakeKube, type FakeKube } from '../../fakes/kube-apiserver';
import { crdValidators } from '../../fixtures/crd-schema';
import { waitFor } from '../../fakes/kube-apiserver/wait';
import { FakePodResourcesServer } from '../../fakes/podresources/server';
import { ClusterObjects, IPCLAIMS, loadKubeConfig, makeKubeClients, type KubeClients } from '../../../src/kube/client';
import { startAgent, type Agent } from '../../../node/agent/agent';
import { agentLookup, agentReport, answerToPodSettings } from '../../../cni/agent-client';
import { queueClaimRelease } from '../../../cni/claim-release';
import { silentLogger } from '../../../src/log';
import type { IPClaim } from '../../../src/ipam/claims';
import type { Invocation } from '../../../cni/skel';
import { UnderlayError } from '../../../src/errors';
import { VLAN100, VLAN200 } from '../registrations/fixtures';

let kube: FakeKube;
let clients: KubeClients;
let claims: ClusterObjects<IPClaim>;
let dir: string;
let agent: Agent;
let kubelet: FakePodResourcesServer;

const REG = 'sriov-underlay.io/kind';

async function putCm(namespace: string, name: string, kind: string, data: Record<string, string>) {
  const body = { metadata: { name, namespace, labels: { [REG]: kind } }, data };
  try {
    await clients.core.replaceNamespacedConfigMap({ namespace, name, body });
  } catch {
    await clients.core.createNamespacedConfigMap({ namespace, body });
  }
}
async function pod(namespace: string, name: string): Promise<string> {
  const p = await clients.core.createNamespacedPod({ namespace, body: { metadata: { name }, spec: { nodeName: 'node-a', containers: [{ name: 'c', image: 'x' }] } } });
  return p.metadata!.uid!;
}
async function eventsFor(namespace: string, kind: string, name: string): Promise<k8s.CoreV1Event[]> {
  await agent.events.flush();
  return (await clients.core.listNamespacedEvent({ namespace })).items.filter((e) => e.involvedObject.kind === kind && e.involvedObject.name === name);
}
function add(ns: string, name: string, uid: string, extra: { containerId?: string; deviceID?: string } = {}) {
  return agentLookup(agent.socketPath, { namespace: ns, name, uid, containerId: extra.containerId ?? `ctr-${name}`, ifName: 'net1', ...(extra.deviceID ? { deviceID: extra.deviceID } : {}) });
}
function del(ns: string, name: string, uid: string, containerId = `ctr-${name}`) {
  queueClaimRelease(path.join(dir, 'release-queue'), { containerId, ifName: 'net1', pod: { namespace: ns, name, uid } } as unknown as Invocation);
  return agent.drainReleases();
}

beforeAll(async () => {
  kube = await startFakeKube({ namespaces: ['sriov-underlay', 'demo'], validators: crdValidators() });
  clients = makeKubeClients(loadKubeConfig({ kubeconfig: kube.kubeconfigPath }));
  claims = new ClusterObjects<IPClaim>(clients.custom, IPCLAIMS);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reg-agent-'));
  kubelet = new FakePodResourcesServer({ socketPath: path.join(dir, 'kubelet.sock'), getMode: 'gate-disabled' });
  await kubelet.start();
  await putCm('sriov-underlay', 'networks', 'network', { vlan100: VLAN100, vlan200: VLAN200 });
  await putCm('demo', 'demo-net', 'registration', {
    'app-a': 'network: vlan100\nip: 10.100.0.11\nqos: {maxTxRateMbps: 300}',
    'app-b': 'network: vlan100\nip: 10.100.0.12',
    'app-c': 'network: vlan200\nip: 10.200.0.13',
    broken: 'network: vlan100\nip: 10.100.0.14\nqos: {minTxRateMbps: fast}',
    web: 'pool: vlan100',
    batch: 'pool: vlan100\nreserve: true',
  });
  agent = await startAgent({
    nodeName: 'node-a',
    log: silentLogger(),
    kubeconfig: kube.kubeconfigPath,
    socketPath: path.join(dir, 'agent.sock'),
    releaseQueueDir: path.join(dir, 'release-queue'),
    podResourcesSocket: kubelet.socketPath,
    sysfsRoot: path.join(dir, 'no-sysfs'),
    releaseRetryMs: 60_000,
  });
});
afterAll(async () => {
  await agent?.stop();
  await kubelet?.stop();
  await kube?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('node agent against the fake API server', () => {
  it('at start, reports only real rejections, once, though the registrations were listed before their networks', async () => {
    // The list is sorted by namespace: demo/demo-net arrives before sriov-underlay/networks.
    const rejected = (await eventsFor('demo', 'ConfigMap', 'demo-net')).filter((e) => e.reason === 'RegistrationRejected');
    expect(rejected.map((e) => e.message?.replace(/: field .*/, ''))).toEqual(['configmap demo/demo-net key "broken"']);
  });

  it('ADD: serves the registration, claims the IP, records assigned Events on the pod and the ConfigMap', async () => {
    const uid = await pod('demo', 'app-a');
    const s = answerToPodSettings(await add('demo', 'app-a', uid, { deviceID: '0000:81:10.2' }));
    expect(s).toMatchObject({ ips: ['10.100.0.11/24'], vlan: 100, maxTxRateMbps: 300, gateways: ['10.100.0.1'] });
    expect(s?.source).toMatch(/^configmap demo\/demo-net key "app-a" @ resourceVersion \d+$/);
    const c = await claims.get('vlan100.10.100.0.11');
    expect(c?.spec).toMatchObject({ pod: { namespace: 'demo', name: 'app-a', uid }, node: 'node-a', containerID: 'ctr-app-a', interface: 'net1', vf: '0000:81:10.2', kind: 'fixed' });
    const [ev] = await eventsFor('demo', 'Pod', 'app-a');
    expect(ev?.reason).toBe('IPAssigned');
    expect(ev?.message).toMatch(/^assigned 10\.100\.0\.11\/24 on network vlan100 \(VLAN 100, max 300 Mbps, min 100 Mbps\) on VF 0000:81:10\.2 to pod demo\/app-a on node node-a, from configmap demo\/demo-net key "app-a" @ resourceVersion \d+$/);
    expect((await eventsFor('demo', 'ConfigMap', 'demo-net')).some((e) => e.reason === 'IPAssigned' && e.message === ev?.message)).toBe(true);
  });

  it('a repeated ADD for the same UID gets the same answer', async () => {
    const uid = (await clients.core.readNamespacedPod({ namespace: 'demo', name: 'app-a' })).metadata!.uid!;
    const again = answerToPodSettings(await add('demo', 'app-a', uid, { deviceID: '0000:81:10.2' }));
    expect(again?.ips).toEqual(['10.100.0.11/24']);
    expect((await claims.list()).items.filter((c) => c.spec.ip === '10.100.0.11')).toHaveLength(1);
  });

  it('asks kubelet PodResources (List when Get is gated off) for the VF when the CNI has no deviceID', async () => {
    kubelet.setPod({ namespace: 'demo', name: 'app-b', containers: [{ name: 'c', devices: [{ resourceName: 'sriov-underlay.io/vf-pool-a', deviceIds: ['0000:81:10.5'] }] }] });
    const uid = await pod('demo', 'app-b');
    const s = answerToPodSettings(await add('demo', 'app-b', uid));
    expect(s?.deviceID).toBe('0000:81:10.5');
    expect(kubelet.calls.List).toBeGreaterThan(0);
    expect((await claims.get('vlan100.10.100.0.12'))?.spec.vf).toBe('0000:81:10.5');
  });

  it('a rejected key fails ADD naming configmap, key and field, with Events on the pod and the ConfigMap; others work', async () => {
    const uid = await pod('demo', 'broken');
    const err = await add('demo', 'broken', uid).then(answerToPodSettings).catch((e: unknown) => e as UnderlayError);
    expect(err).toBeInstanceOf(UnderlayError);
    expect((err as UnderlayError).code).toBe(106);
    expect((err as UnderlayError).message).toMatch(/^configmap demo\/demo-net key "broken": field "qos.minTxRateMbps": /);
    expect((await eventsFor('demo', 'Pod', 'broken')).map((e) => e.reason)).toEqual(['RegistrationRejected']);
    const cmEvents = await eventsFor('demo', 'ConfigMap', 'demo-net');
    expect(cmEvents.some((e) => e.reason === 'RegistrationRejected' && e.message?.startsWith('configmap demo/demo-net key "broken": field "qos.minTxRateMbps"'))).toBe(true);
  });

  it('DEL: the queued release deletes the claim (also after an API outage) and records released Events', async () => {
    const uid = await pod('demo', 'app-c');
    await add('demo', 'app-c', uid);
    expect(await claims.get('vlan200.10.200.0.13')).toBeDefined();
    await kube.server.stop();
    try {
      await del('demo', 'app-c', uid);
    } finally {
      await kube.server.start();
    }
    expect(fs.readdirSync(path.join(dir, 'release-queue'))).toEqual([expect.stringMatching(/^[0-9a-f]{32}\.json$/)]);
    await agent.drainReleases();
    expect(fs.readdirSync(path.join(dir, 'release-queue'))).toEqual([]);
    expect(await claims.get('vlan200.10.200.0.13')).toBeUndefined();
    expect((await eventsFor('demo', 'Pod', 'app-c')).map((e) => e.reason)).toContain('IPReleased');
  });

  it('pool: a pod gets a free address from the ranges; a reservation exists before its pod and is what the pod gets', async () => {
    await agent.syncReservations();
    const reserved = (await claims.list()).items.filter((c) => c.spec.pod.name === 'batch');
    expect(reserved.map((c) => c.spec.kind)).toEqual(['reserved', 'reserved']); // IPv4 and IPv6
    const uid = await pod('demo', 'batch');
    const s = answerToPodSettings(await add('demo', 'batch', uid));
    expect(s?.ips?.map((x) => x.split('/')[0]).sort()).toEqual(reserved.map((c) => c.spec.ip).sort());
    const wuid = await pod('demo', 'web');
    const w = answerToPodSettings(await add('demo', 'web', wuid));
    expect(w?.ips).toHaveLength(2);
    const [v4] = w!.ips!;
    const last = Number(v4!.split('/')[0]!.split('.')[3]);
    expect(last >= 100 && last <= 199 && last !== 150).toBe(true);
  });

  it('pool: DEL leaves the address cooling down as a tombstone; the same pod UID gets it back, another pod does not', async () => {
    const uid = await pod('demo', 'web2');
    await putCm('demo', 'pool-extra', 'registration', { web2: 'pool: vlan100', web3: 'pool: vlan100' });
    await expect.poll(() => agent.index.lookup('demo', 'web2').kind).toBe('resolved');
    const got = answerToPodSettings(await add('demo', 'web2', uid))!.ips!.map((x) => x.split('/')[0]!);
    await del('demo', 'web2', uid);
    const stones = (await claims.list()).items.filter((c) => got.includes(c.spec.ip));
    expect(stones.map((c) => [c.spec.kind, Boolean(c.spec.releasedAt), c.spec.node])).toEqual([['pool', true, ''], ['pool', true, '']]);
    const uid3 = await pod('demo', 'web3');
    const other = answerToPodSettings(await add('demo', 'web3', uid3))!.ips!.map((x) => x.split('/')[0]!);
    expect(other.filter((ip) => got.includes(ip))).toEqual([]);
    const again = answerToPodSettings(await add('demo', 'web2', uid, { containerId: 'ctr-web2-b' }))!.ips!.map((x) => x.split('/')[0]!);
    expect(again.sort()).toEqual([...got].sort());
    await del('demo', 'web2', uid, 'ctr-web2-b');
    // Made a reservation later: the tombstones of its earlier pod do not count as one.
    await putCm('demo', 'pool-extra', 'registration', { web2: 'pool: vlan100\nreserve: true', web3: 'pool: vlan100' });
    await expect.poll(() => { const r = agent.index.lookup('demo', 'web2'); return r.kind === 'resolved' && r.settings.pool?.reserve; }).toBe(true);
    await agent.syncReservations();
    const reserved = (await claims.list()).items.filter((c) => c.spec.pod.name === 'web2' && c.spec.kind === 'reserved');
    expect(reserved).toHaveLength(2);
  });

  it('a duplicate address the CNI found on the wire becomes a Warning Event on the pod', async () => {
    const msg = 'duplicate address: 10.100.0.12 is already in use on the network by MAC 02:00:00:00:dd:01 (RFC 5227 ARP probe); the attachment was rolled back';
    expect(await agentReport(agent.socketPath, { namespace: 'demo', name: 'app-b', uid: 'u-b', reason: 'DuplicateAddress', message: msg })).toBe(true);
    await expect.poll(async () => (await eventsFor('demo', 'Pod', 'app-b')).filter((e) => e.reason === 'DuplicateAddress').map((e) => [e.type, e.message])).toEqual([['Warning', msg]]);
  });

  it('an edited registration does not touch the running pod; it is reported as drift', async () => {
    await putCm('demo', 'demo-net', 'registration', {
      'app-a': 'network: vlan100\nip: 10.100.0.21\nqos: {maxTxRateMbps: 300}',
      'app-b': 'network: vlan100\nip: 10.100.0.12',
      web: 'pool: vlan100',
      batch: 'pool: vlan100\nreserve: true',
    });
    const evs = await waitForEvents('demo', 'Pod', 'app-a', 'RegistrationDrift');
    expect(evs[0]?.message).toContain('ips: ["10.100.0.11/24"] → ["10.100.0.21/24"]; the running pod is not changed');
    expect(await claims.get('vlan100.10.100.0.11')).toBeDefined();
  });

  it('after an agent restart, drift of pods it served before is still reported (settings kept in the claims)', async () => {
    await agent.stop();
    agent = await startAgent({
      nodeName: 'node-a',
      log: silentLogger(),
      kubeconfig: kube.kubeconfigPath,
      socketPath: path.join(dir, 'agent.sock'),
      releaseQueueDir: path.join(dir, 'release-queue'),
      podResourcesSocket: kubelet.socketPath,
      sysfsRoot: path.join(dir, 'no-sysfs'),
      releaseRetryMs: 60_000,
    });
    expect(agent.running.get('demo/app-b/vlan100')?.ips).toEqual(['10.100.0.12/24']);
    await putCm('demo', 'demo-net', 'registration', {
      'app-a': 'network: vlan100\nip: 10.100.0.21\nqos: {maxTxRateMbps: 300}',
      'app-b': 'network: vlan100\nip: 10.100.0.12\nmtu: 1500',
      web: 'pool: vlan100',
      batch: 'pool: vlan100\nreserve: true',
    });
    const evs = await waitForEvents('demo', 'Pod', 'app-b', 'RegistrationDrift');
    expect(evs[0]?.message).toContain('mtu: 9000 → 1500');
  });

  it('two registrations naming one IP: the newer pod’s ADD fails naming both, with IPConflict Events', async () => {
    await putCm('demo', 'zz-newer', 'registration', { thief: 'network: vlan100\nip: 10.100.0.12' });
    const uid = await pod('demo', 'thief');
    await waitFor('index sees zz-newer', () => agent.index.lookup('demo', 'thief').kind !== 'not-registered');
    const err = await add('demo', 'thief', uid).then(answerToPodSettings).catch((e: unknown) => e as UnderlayError);
    expect((err as UnderlayError).code).toBe(105);
    expect((err as UnderlayError).message).toContain('configmap demo/zz-newer key "thief": field "ip": 10.100.0.12 on network "vlan100" is already registered by configmap demo/demo-net key "app-b"');
    expect((await eventsFor('demo', 'Pod', 'thief')).map((e) => e.reason)).toEqual(['IPConflict']);
  });
});

async function waitForEvents(ns: string, kind: string, name: string, reason: string): Promise<k8s.CoreV1Event[]> {
  for (let i = 0; i < 200; i++) {
    const evs = (await eventsFor(ns, kind, name)).filter((e) => e.reason === reason);
    if (evs.length) return evs;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no ${reason} event on ${kind} ${ns}/${name}`);
}
