/**
 * Bad-input corpus for the agent's registration index: more than 1,000 generated registration and
 * network ConfigMaps (malformed YAML, wrong types, unknown fields, list forms, hostile names, and
 * huge ones: 50,000 addresses, thousands of keys, near the API server's size limit), applied
 * through the fake API server to a running agent. Each rejection names its ConfigMap, key and
 * field; the agent keeps serving; what was already assigned does not change.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { startFakeKube, type FakeKube } from '../../fakes/kube-apiserver';
import { crdValidators } from '../../fixtures/crd-schema';
import { waitFor } from '../../fakes/kube-apiserver/wait';
import { ClusterObjects, IPCLAIMS, loadKubeConfig, makeKubeClients, type KubeClients } from '../../../src/kube/client';
import type { Agent } from '../../../node/agent/agent';
import { startTestAgent } from './test-agent';
import { agentLookup, answerToPodSettings } from '../../../cni/agent-client';
import type { IPClaim } from '../../../src/ipam/claims';

const REG_CMS = 900;
const NET_CMS = 150;
const KIND = 'sriov-underlay.io/kind';

let kube: FakeKube;
let clients: KubeClients;
let claims: ClusterObjects<IPClaim>;
let dir: string;
let agent: Agent;

const v4 = (n: number) => Array.from({ length: n }, (_, i) => `10.${64 + ((i + 2) >> 16)}.${((i + 2) >> 8) & 255}.${(i + 2) & 255}`);

// ---- generators -------------------------------------------------------------------------------
const junkIp = fc.oneof(fc.ipV4(), fc.ipV6(), fc.string({ maxLength: 20 }), fc.integer(), fc.constant('10.100.0.0'), fc.constant('10.100.0.255'));
const netName = fc.oneof(fc.constantFrom('vlan100', 'corp', 'nope', ''), fc.string({ maxLength: 70 }), fc.integer());
const attachment = fc.record(
  {
    network: netName,
    pool: netName,
    ip: fc.oneof(junkIp, fc.array(junkIp, { maxLength: 3 })),
    ips: fc.array(junkIp, { maxLength: 30 }),
    ips6: fc.array(fc.ipV6(), { maxLength: 5 }),
    reserve: fc.oneof(fc.boolean(), fc.string({ maxLength: 3 })),
    mac: fc.oneof(fc.mixedCase(fc.constant('02:00:00:aa:bb:cc')), fc.string({ maxLength: 20 }), fc.constant('01:00:00:00:00:01')),
    qos: fc.record({ maxTxRateMbps: fc.oneof(fc.integer({ min: -5, max: 2_000_000 }), fc.string({ maxLength: 4 })), minTxRateMbps: fc.integer({ min: -5, max: 5000 }) }, { requiredKeys: [] }),
    routes: fc.array(fc.record({ dst: fc.oneof(fc.constant('10.250.0.0/16'), fc.string({ maxLength: 10 })), gw: junkIp }, { requiredKeys: ['dst'] }), { maxLength: 3 }),
    mtu: fc.integer({ min: -1, max: 70000 }),
    vlan: fc.integer({ min: -1, max: 5000 }),
    replicas: fc.integer({ min: -1, max: 200_000 }),
    qoss: fc.anything(),
  },
  { requiredKeys: [] },
);
const regValue = fc.oneof(
  { weight: 4, arbitrary: attachment.map((a) => stringify(a)) },
  { weight: 2, arbitrary: fc.array(attachment, { maxLength: 10 }).map((a) => stringify(a)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.anything().map((a) => stringify(a) ?? 'null') },
  { weight: 1, arbitrary: fc.constantFrom('{', 'network: [', '- - - [', 'a: &x 1\nb: *x\nc: *y', 'ip: 1\nip: 2', '!!binary x', '\u0000\uffff') },
);
const networkValue = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .record(
        {
          vlan: fc.integer({ min: -1, max: 5000 }),
          subnet: fc.oneof(fc.constant('10.7.0.0/24'), fc.string({ maxLength: 12 })),
          gateway: junkIp,
          subnet6: fc.oneof(fc.constant('fd00:7::/64'), fc.string({ maxLength: 12 })),
          resourceName: fc.oneof(fc.constant('sriov-underlay.io/vf-pool-a'), fc.string({ maxLength: 12 })),
          ranges: fc.array(fc.oneof(fc.constant('10.7.0.10-10.7.0.20'), fc.string({ maxLength: 12 })), { maxLength: 300 }),
          allowedNamespaces: fc.array(fc.oneof(fc.constant('corpus'), fc.string({ maxLength: 10 })), { maxLength: 4 }),
          pools: fc.array(fc.string({ maxLength: 12 }), { maxLength: 3 }),
          cooldownSeconds: fc.integer({ min: -1, max: 10_000_000 }),
        },
        { requiredKeys: [] },
      )
      .map((n) => stringify(n)),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 100 }) },
  { weight: 1, arbitrary: fc.anything().map((a) => stringify(a) ?? 'null') },
);
// Valid ConfigMap keys (the API server checks them), some shaped like StatefulSet pods.
const cmKey = fc.oneof(fc.stringMatching(/^[a-z][a-z0-9-]{0,20}(-[0-9])?$/), fc.stringMatching(/^[A-Za-z0-9._-]{1,40}$/).filter((k) => k !== '.' && k !== '..'));
/** A network key must not redefine the one the assigned pod uses. */
const netKey = cmKey.filter((k) => k !== 'vlan100');

/** Huge ones: one every 50 ConfigMaps. */
function huge(i: number): Record<string, string> {
  switch (i % 4) {
    case 0:
      return { db: `network: vlan100\nips: [${v4(50_000).join(', ')}]` };
    case 1: {
      const d: Record<string, string> = {};
      for (let k = 0; k < 6000; k++) d[`p-${k}`] = 'network: vlan100\nip: 10.100.0.9';
      return d;
    }
    case 2:
      return { big: `network: vlan100\nip: 10.100.0.9\n# ${'x'.repeat(120 * 1024)}`, list: `- network: vlan100\n  ips: [${v4(3000).join(', ')}]` };
    default: {
      const d: Record<string, string> = {};
      for (let k = 0; k < 4; k++) d[`pad${k}`] = `# ${'y'.repeat(250 * 1024)}`; // just under the API server's 1 MiB
      return d;
    }
  }
}

async function put(namespace: string, name: string, kind: string, data: Record<string, string>): Promise<void> {
  await clients.core.createNamespacedConfigMap({ namespace, body: { metadata: { name, namespace, labels: { [KIND]: kind } }, data } });
}

beforeAll(async () => {
  kube = await startFakeKube({ namespaces: ['sriov-underlay', 'corpus', 'app'], validators: crdValidators() });
  clients = makeKubeClients(loadKubeConfig({ kubeconfig: kube.kubeconfigPath }));
  claims = new ClusterObjects<IPClaim>(clients.custom, IPCLAIMS);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reg-corpus-'));
  await put('sriov-underlay', 'networks', 'network', { vlan100: 'vlan: 100\nsubnet: 10.100.0.0/24\ngateway: 10.100.0.1\nresourceName: sriov-underlay.io/vf-pool-a' });
  await put('app', 'regs', 'registration', { served: 'network: vlan100\nip: 10.100.0.50', later: 'network: vlan100\nip: 10.100.0.51' });
  agent = await startTestAgent(kube.kubeconfigPath, dir);
}, 60_000);
afterAll(async () => {
  await agent?.stop();
  await kube?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('generated registration and network ConfigMaps through the fake API server', () => {
  it(`${REG_CMS + NET_CMS} of them: each rejection names ConfigMap, key and field; the agent serves on; the assigned pod keeps its claim`, async () => {
    const uid = (await clients.core.createNamespacedPod({ namespace: 'app', body: { metadata: { name: 'served' }, spec: { containers: [{ name: 'c', image: 'x' }] } } })).metadata!.uid!;
    const before = answerToPodSettings(await agentLookup(agent.socketPath, { namespace: 'app', name: 'served', uid, containerId: 'ctr', ifName: 'net1', network: 'vlan100' }));
    expect(before?.ips).toEqual(['10.100.0.50/24']);
    const claimBefore = await claims.get('vlan100.10.100.0.50');

    const regs = fc.sample(fc.dictionary(cmKey, regValue, { minKeys: 1, maxKeys: 12 }), { numRuns: REG_CMS, seed: 4711 });
    const nets = fc.sample(fc.dictionary(netKey, networkValue, { minKeys: 1, maxKeys: 6 }), { numRuns: NET_CMS, seed: 4712 });
    const applied: Array<{ namespace: string; name: string; kind: 'registration' | 'network'; keys: string[] }> = [];
    const refused: string[] = [];
    const jobs = [
      ...regs.map((d, i) => ({ namespace: 'corpus', name: `reg-${i}`, kind: 'registration' as const, data: i % 50 === 7 ? huge(Math.floor(i / 50)) : d })),
      ...nets.map((d, i) => ({ namespace: 'sriov-underlay', name: `net-${i}`, kind: 'network' as const, data: i % 50 === 7 ? huge(Math.floor(i / 50)) : d })),
    ];
    // A few at a time, as kubectl apply from several operators would.
    for (let i = 0; i < jobs.length; i += 8) {
      await Promise.all(
        jobs.slice(i, i + 8).map(async (j) => {
          try {
            await put(j.namespace, j.name, j.kind, j.data);
            applied.push({ namespace: j.namespace, name: j.name, kind: j.kind, keys: Object.keys(j.data) });
          } catch {
            refused.push(j.name);
          }
        }),
      );
    }
    // Watch events arrive in order: once the sentinel is indexed, everything before it is.
    await put('app', 'sentinel', 'registration', { sentinel: 'network: vlan100\nip: 10.100.0.52' });
    await waitFor('corpus indexed', () => agent.index.lookup('app', 'sentinel', 'vlan100').kind === 'resolved', 120_000);
    expect(refused).toEqual([]); // every one reached the agent: none is over the API server's own limits
    expect(applied.length).toBeGreaterThanOrEqual(1000);

    let rejectedKeys = 0;
    for (const cm of applied) {
      const rs = cm.kind === 'registration' ? agent.index.rejectionsOf(cm.namespace, cm.name) : agent.index.networkRejectionsOf(cm.namespace, cm.name);
      for (const r of rs) {
        expect(r.message.startsWith(`configmap ${cm.namespace}/${cm.name}`), r.message).toBe(true);
        expect(r.message, r.message).toMatch(/^configmap [^ ]+( key "[^"]*")?: field "[^"]+": ./);
        expect(r.namespace).toBe(cm.namespace);
        expect(r.configMap).toBe(cm.name);
        expect(r.field).not.toBe('');
      }
      if (cm.kind === 'registration') {
        for (const key of cm.keys.slice(0, 20)) {
          const res = agent.index.lookup(cm.namespace, key, 'vlan100');
          if (res.kind === 'rejected') {
            rejectedKeys++;
            expect(res.rejection.message, res.rejection.message).toMatch(new RegExp(`^configmap ${cm.namespace}/[^ ]+ key "[^"]+": field "[^"]+": .`));
          }
        }
      }
    }
    expect(rejectedKeys).toBeGreaterThan(500); // the corpus is mostly hostile: most keys must have been refused

    // Nothing the corpus did touched the assigned claim (read before the repeated ADD below, which may refresh it).
    const claimAfter = await claims.get('vlan100.10.100.0.50');
    expect(claimAfter?.metadata?.resourceVersion).toBe(claimBefore?.metadata?.resourceVersion);
    expect(claimAfter?.spec.pod.uid).toBe(uid);
    // The agent still serves: the assigned pod gets the same answer, a new pod its registration.
    const again = answerToPodSettings(await agentLookup(agent.socketPath, { namespace: 'app', name: 'served', uid, containerId: 'ctr', ifName: 'net1', network: 'vlan100' }));
    expect(again?.ips).toEqual(before?.ips);
    const uid2 = (await clients.core.createNamespacedPod({ namespace: 'app', body: { metadata: { name: 'later' }, spec: { containers: [{ name: 'c', image: 'x' }] } } })).metadata!.uid!;
    const later = answerToPodSettings(await agentLookup(agent.socketPath, { namespace: 'app', name: 'later', uid: uid2, containerId: 'ctr2', ifName: 'net1', network: 'vlan100' }));
    expect(later?.ips).toEqual(['10.100.0.51/24']);
    // Rejection Events stayed bounded: at most the per-object burst per ConfigMap.
    expect(agent.events.count).toBeLessThan(applied.length * 26);
  }, 600_000);
});
