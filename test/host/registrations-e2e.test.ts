/**
 * End to end on this host: the fake API server holds the Network and Registration ConfigMaps, the
 * real node agent watches them and serves its socket, and the built CNI executable (run like a
 * runtime runs it) configures veth-backed emulated VFs in real network namespaces.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmulatedNic, type EmulatedNic } from '../fixtures/sysfs-tree';
import { requireBinary, runCni } from '../fixtures/cni';
import { ip, ipJson, linkNames, linkSnapshot, makeNetns, uniqueTag, type NetnsHandle } from '../fixtures/host-net';
import { startFakeKube, type FakeKube } from '../fakes/kube-apiserver';
import { crdValidators } from '../fixtures/crd-schema';
import { spawn, execFileSync } from 'node:child_process';
import { ClusterObjects, IPCLAIMS, loadKubeConfig, makeKubeClients, type KubeClients } from '../../src/kube/client';
import { startAgent, type Agent } from '../../node/agent/agent';
import { silentLogger } from '../../src/log';
import type { IPClaim } from '../../src/ipam/claims';

const tag = uniqueTag('rg');
let nic: EmulatedNic;
let tmp: string;
let stateDir: string;
let kube: FakeKube;
let clients: KubeClients;
let claims: ClusterObjects<IPClaim>;
let agent: Agent | null = null;
const netnses: NetnsHandle[] = [];

const NETWORK = `
subnet: 10.88.0.0/24
gateway: 10.88.0.1
subnet6: fd00:88::/64
gateway6: fd00:88::1
routes: [{dst: 10.99.0.0/16}]
mtu: 1400
resourceName: sriov-underlay.io/vf-pool-a
`;

async function startTheAgent() {
  agent = await startAgent({
    nodeName: 'node-e2e',
    log: silentLogger(),
    kubeconfig: kube.kubeconfigPath,
    socketPath: path.join(tmp, 'agent.sock'),
    releaseQueueDir: path.join(tmp, 'release-queue'),
    sysfsRoot: nic.root,
    podResourcesSocket: null,
    releaseRetryMs: 60_000,
  });
}

async function pod(name: string): Promise<{ ns: NetnsHandle; uid: string }> {
  const ns = makeNetns(`${tag}-${name}`);
  netnses.push(ns);
  const p = await clients.core.createNamespacedPod({ namespace: 'e2e', body: { metadata: { name }, spec: { nodeName: 'node-e2e', containers: [{ name: 'c', image: 'x' }] } } });
  return { ns, uid: p.metadata!.uid! };
}

function netconf(vf: number) {
  return {
    cniVersion: '1.0.0',
    name: 'e2e-net',
    type: 'sriov-underlay',
    deviceID: nic.vfAddrs[vf],
    sysfsRoot: nic.root,
    stateDir,
    releaseQueueDir: path.join(tmp, 'release-queue'),
    agentSocket: path.join(tmp, 'agent.sock'),
    logFile: path.join(tmp, 'cni.log'),
    // Never used for a registered pod: the registration's addresses win.
    ipam: { type: 'static', addresses: [{ address: '10.77.7.7/24' }] },
  };
}

const env = (name: string, uid: string, ns: NetnsHandle) => ({
  containerId: `ctr-${name}`,
  netns: ns.path,
  ifName: 'net1',
  args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=e2e;K8S_POD_NAME=${name};K8S_POD_UID=${uid};K8S_POD_INFRA_CONTAINER_ID=ctr-${name}`,
});

function addrs(ns: NetnsHandle): string[] {
  const j = ipJson<Array<{ addr_info: Array<{ local: string; prefixlen: number; scope: string }> }>>('-n', ns.name, 'addr', 'show', 'dev', 'net1');
  return (j[0]?.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`);
}

beforeAll(async () => {
  requireBinary();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'reg-e2e-'));
  stateDir = path.join(tmp, 'state');
  nic = createEmulatedNic({ tag, root: path.join(tmp, 'sys'), pfs: 1, vfsPerPf: 4 });
  kube = await startFakeKube({ namespaces: ['sriov-underlay', 'e2e'], validators: crdValidators() });
  clients = makeKubeClients(loadKubeConfig({ kubeconfig: kube.kubeconfigPath }));
  claims = new ClusterObjects<IPClaim>(clients.custom, IPCLAIMS);
  await clients.core.createNamespacedConfigMap({
    namespace: 'sriov-underlay',
    body: { metadata: { name: 'networks', labels: { 'sriov-underlay.io/kind': 'network' } }, data: { e2e: NETWORK } },
  });
  await clients.core.createNamespacedConfigMap({
    namespace: 'e2e',
    body: {
      metadata: { name: 'e2e-net', labels: { 'sriov-underlay.io/kind': 'registration' } },
      data: {
        'pod-a': 'network: e2e\nip: [10.88.0.10, fd00:88::10]',
        'pod-b': 'network: e2e\nip: 10.88.0.11\nmtu: 1300\nroutes: [{dst: 10.98.0.0/16, gw: 10.88.0.254}]',
        'pod-c': 'network: e2e\nip: 10.88.0.12\nmtu: jumbo',
      },
    },
  });
  await startTheAgent();
});

afterAll(async () => {
  await agent?.stop();
  while (netnses.length) netnses.pop()?.destroy();
  nic?.destroy();
  await kube?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('registered pods through agent + CNI on real netns', () => {
  it('each registered pod gets exactly its IPs, routes and MTU; they reach each other; DEL releases the claim', async () => {
    const a = await pod('pod-a');
    const b = await pod('pod-b');
    const addA = await runCni('ADD', netconf(0), env('pod-a', a.uid, a.ns));
    expect(addA.code, addA.stdout).toBe(0);
    const addB = await runCni('ADD', netconf(1), env('pod-b', b.uid, b.ns));
    expect(addB.code, addB.stdout).toBe(0);
    expect(addA.json).toMatchObject({ ips: [{ address: '10.88.0.10/24', gateway: '10.88.0.1' }, { address: 'fd00:88::10/64', gateway: 'fd00:88::1' }] });

    expect(addrs(a.ns).sort()).toEqual(['10.88.0.10/24', 'fd00:88::10/64']);
    expect(addrs(b.ns)).toEqual(['10.88.0.11/24']);
    expect(linkSnapshot('net1', a.ns.name)?.mtu).toBe(1400); // the network's
    expect(linkSnapshot('net1', b.ns.name)?.mtu).toBe(1300); // the registration's
    expect(ip('-n', a.ns.name, 'route', 'show', '10.99.0.0/16')).toContain('via 10.88.0.1 dev net1');
    expect(ip('-n', b.ns.name, 'route', 'show', '10.98.0.0/16')).toContain('via 10.88.0.254 dev net1');
    expect(ip('-n', b.ns.name, 'route', 'show', '10.99.0.0/16')).toBe(''); // its own routes replace the network's
    // The two VFs share the emulated NIC's fabric: the registered addresses really work.
    expect(await udpAcross(a.ns, b.ns, '10.88.0.11')).toBe('hello from pod-a');

    const claimA = await claims.get('e2e.10.88.0.10');
    expect(claimA?.spec).toMatchObject({ pod: { namespace: 'e2e', name: 'pod-a', uid: a.uid }, node: 'node-e2e', containerID: 'ctr-pod-a', interface: 'net1', vf: nic.vfAddrs[0] });
    await agent!.events.flush();
    const evs = (await clients.core.listNamespacedEvent({ namespace: 'e2e' })).items.filter((e) => e.involvedObject.name === 'pod-a');
    expect(evs.map((e) => e.reason)).toEqual(['IPAssigned']);
    expect(evs[0]?.message).toContain(`on VF ${nic.vfAddrs[0]} of PF ${tag}p0`);

    const del = await runCni('DEL', netconf(0), env('pod-a', a.uid, a.ns));
    expect(del.code, del.stdout).toBe(0);
    await agent!.drainReleases();
    expect(await claims.get('e2e.10.88.0.10')).toBeUndefined();
    expect(await claims.get('e2e.fd000088000000000000000000000010')).toBeUndefined();
    expect(linkNames(a.ns.name)).toEqual(['lo']);
    expect(linkNames()).toContain(`${tag}p0v0`);
    expect((await runCni('DEL', netconf(1), env('pod-b', b.uid, b.ns))).code).toBe(0);
  });

  it('a pod without a registration gets the netconf (its delegated IPAM), as with sriov-cni', async () => {
    const x = await pod('unregistered');
    const add = await runCni('ADD', netconf(2), env('unregistered', x.uid, x.ns));
    expect(add.code, add.stdout).toBe(0);
    expect(addrs(x.ns)).toEqual(['10.77.7.7/24']);
    expect((await claims.list()).items.filter((c) => c.spec.pod.name === 'unregistered')).toEqual([]);
    expect((await runCni('DEL', netconf(2), env('unregistered', x.uid, x.ns))).code).toBe(0);
  });

  it('a rejected registration fails ADD naming configmap, key and field, and leaves the VF alone', async () => {
    const c = await pod('pod-c');
    const before = linkSnapshot(`${tag}p0v2`);
    const add = await runCni('ADD', netconf(2), env('pod-c', c.uid, c.ns));
    expect(add.code).toBe(1);
    expect(add.json).toMatchObject({ code: 106 });
    expect(String(add.json?.msg)).toMatch(/^configmap e2e\/e2e-net key "pod-c": field "mtu": /);
    expect(linkSnapshot(`${tag}p0v2`)).toEqual(before);
  });

  it('with the agent down, ADD is "try again later" saying what to check, and DEL still succeeds', async () => {
    const d = await pod('pod-a2');
    await agent!.stop();
    agent = null;
    try {
      const add = await runCni('ADD', netconf(3), env('pod-a', d.uid, d.ns));
      expect(add.json).toMatchObject({ code: 11 });
      expect(String(add.json?.msg)).toContain(`node agent unreachable at ${path.join(tmp, 'agent.sock')}`);
      expect(String(add.json?.msg)).toContain('sriov-underlay-node pod is running on this node');
      const del = await runCni('DEL', netconf(3), env('pod-a', d.uid, d.ns));
      expect(del.code, del.stdout).toBe(0);
    } finally {
      await startTheAgent();
    }
  });
});

/** A UDP datagram from one pod's netns to another's address, received by a listener in that netns. */
function udpAcross(from: NetnsHandle, to: NetnsHandle, addr: string): Promise<string> {
  const listener = spawn('ip', ['netns', 'exec', to.name, process.execPath, '-e',
    `const s=require('dgram').createSocket('udp4');s.on('message',(m)=>{process.stdout.write(m.toString());process.exit(0)});` +
    `s.bind(7777,'${addr}',()=>process.stdout.write('ready\\n'));setTimeout(()=>process.exit(2),5000)`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  return new Promise((resolve, reject) => {
    listener.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (out === 'ready\n') {
        execFileSync('ip', ['netns', 'exec', from.name, process.execPath, '-e',
          `const s=require('dgram').createSocket('udp4');s.send('hello from pod-a',7777,'${addr}',()=>s.close())`]);
      }
    });
    listener.on('error', reject);
    listener.on('close', () => resolve(out.replace('ready\n', '')));
  });
}
