/**
 * `disruption: evict` end to end: nodes whose sysfs has a kernel behind it (harness.ts), the fake
 * apiserver with its Eviction API, PodDisruptionBudgets and Leases (test/fakes/kube-apiserver), and
 * a small kubelet stand-in that drops a pod's VFs from its node's checkpoint once the pod is gone.
 * Nothing of the node policy is mocked: its evictor talks to the fake through client-node.
 */
import * as k8s from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Evictor } from '../../../node/policy/evict';
import { NodeLease } from '../../../node/policy/lease';
import type { NodePolicy } from '../../../node/policy/component';
import type { NodePolicyStatus } from '../../../node/policy/status';
import { loadKubeConfig, makeKubeClients } from '../../../src/kube/client';
import { VfRecords } from '../../../src/state/vf-records';
import { silentLogger } from '../../../src/log';
import { startFakeKube, type FakeKube } from '../../fakes/kube-apiserver';
import type { KubeObject } from '../../fakes/kube-apiserver';
import { PF2_PCI, PF_PCI, PolicyNode, vfPci } from './harness';

const NS = 'sriov-underlay';
const LEASE = 'sriov-underlay-node-policy';

let fake: FakeKube;
let nodes: PolicyNode[] = [];
let stopKubelet: (() => void) | null = null;
beforeEach(async () => {
  fake = await startFakeKube();
  fake.server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
});
afterEach(async () => {
  stopKubelet?.();
  await Promise.all(nodes.map((n) => n.cleanup()));
  nodes = [];
  await fake.close();
});

/** kubelet's part: which pod holds which VFs on which node; a pod that is gone frees them. */
class Kubelets {
  private held = new Map<string, { node: string; pf: PolicyNode; pcis: string[] }>();
  constructor(private readonly byNode: Record<string, PolicyNode>) {
    stopKubelet = fake.server.store.subscribe((c) => {
      if (c.res.plural !== 'pods' || c.type !== 'DELETED') return;
      const h = this.held.get(c.obj.metadata.uid!);
      if (!h) return;
      this.held.delete(c.obj.metadata.uid!);
      this.write(h.node);
    });
  }

  /** A running, Ready pod on `node`, holding `pcis` (in the node's checkpoint) when given. */
  pod(node: string, ns: string, name: string, pcis: string[], labels: Record<string, string> = {}, grace = 0): KubeObject {
    if (!fake.server.get('namespaces', undefined, ns)) fake.server.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    const p = fake.server.put({
      apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels },
      spec: { nodeName: node, terminationGracePeriodSeconds: grace, containers: [{ name: 'c', image: 'i' }] },
      status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
    });
    if (pcis.length) {
      this.held.set(p.metadata.uid!, { node, pf: this.byNode[node]!, pcis });
      this.write(node);
    }
    return p;
  }

  private write(node: string): void {
    const pods = [...this.held].filter(([, h]) => h.node === node).map(([podUid, h]) => ({ podUid, pcis: h.pcis }));
    this.byNode[node]!.allocateTo(pods);
  }
}

function evictingDaemon(n: PolicyNode, name: string, o: { durationS?: number; backoffMs?: number } = {}): NodePolicy {
  const k = makeKubeClients(loadKubeConfig({ kubeconfig: fake.kubeconfigPath, env: {} }));
  const lease = new NodeLease(k.coordination, { namespace: NS, name: LEASE, holder: name, durationS: o.durationS ?? 30 });
  const evictor = new Evictor({ core: k.core, lease, nodeName: name, log: silentLogger(), backoffMs: o.backoffMs ?? 20, maxBackoffMs: 200 });
  return n.daemon({}, { evictor });
}

const node = (): PolicyNode => {
  const n = new PolicyNode();
  nodes.push(n);
  return n;
};
const blocked = (s: NodePolicyStatus, pci = PF_PCI) => s.pfs.find((p) => p.pciAddr === pci)?.conditions.find((c) => c.type === 'Blocked');
const exists = (ns: string, name: string) => fake.server.get('pods', ns, name) !== undefined;
const leaseHolder = () => (fake.server.get('leases', NS, LEASE)?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Passes until `done`, a bounded number of them. */
async function passes(d: NodePolicy, done: (s: NodePolicyStatus) => boolean, max = 50, gapMs = 20): Promise<NodePolicyStatus> {
  for (let i = 0; i < max; i++) {
    const s = await d.applyOnce();
    if (done(s)) return s;
    await sleep(gapMs);
  }
  throw new Error(`not done after ${max} passes: ${JSON.stringify(d.last?.pfs.map((p) => p.conditions))}`);
}

/** Both nodes start with 4 VFs on PF 0000:91:00.0 (the same PCI address on each node's own bus). */
async function grown(n: PolicyNode): Promise<void> {
  n.setPolicy({ policies: [{ name: 'a', rootDevices: [PF_PCI], numVfs: 4 }, { name: 'b', rootDevices: [PF2_PCI], numVfs: 4 }] });
  await n.daemon().applyOnce();
  expect(n.numVfs()).toBe(4);
}
const shrinkPolicy = (evict2 = false) => ({ policies: [
  { name: 'a', rootDevices: [PF_PCI], numVfs: 2, disruption: 'evict' },
  { name: 'b', rootDevices: [PF2_PCI], numVfs: 2, ...(evict2 ? { disruption: 'evict' } : {}) },
] });

/** node-a and node-b, 4 VFs each, pod db/pa holding VF 1 on node-a and db/pb VF 2 on node-b. */
async function twoNodes(graceA: number, graceB: number): Promise<{ a: PolicyNode; b: PolicyNode }> {
  const a = node();
  const b = node();
  await grown(a);
  await grown(b);
  const kl = new Kubelets({ 'node-a': a, 'node-b': b });
  kl.pod('node-a', 'db', 'pa', [vfPci(0x91, 1)], {}, graceA);
  kl.pod('node-b', 'db', 'pb', [vfPci(0x91, 2)], {}, graceB);
  return { a, b };
}

describe('node policy: disruption: evict', () => {
  it("evicts only the pods holding VFs of that PF, applies, releases the Lease; other pods are never touched", async () => {
    const a = node();
    await grown(a);
    const kl = new Kubelets({ 'node-a': a });
    kl.pod('node-a', 'db', 'on-pf1', [vfPci(0x91, 1)]);
    kl.pod('node-a', 'db', 'on-pf2', [vfPci(0x92, 0)]); // PF2's entry does not opt in
    kl.pod('node-a', 'web', 'no-vf', []);
    kl.pod('node-a', 'aaa', 'sorts-first', []); // first in every list of node-a's pods
    kl.pod('node-b', 'db', 'elsewhere', []);
    a.setPolicy(shrinkPolicy());
    const d = evictingDaemon(a, 'node-a');
    const events: string[] = [];
    d.eventSink = (e) => events.push(`${e.reason}: ${e.message}`);

    const s = await passes(d, (x) => !blocked(x, PF_PCI));
    expect(a.numVfs(PF_PCI)).toBe(2);
    expect(exists('db', 'on-pf1')).toBe(false);
    expect(exists('db', 'on-pf2')).toBe(true);
    expect(exists('web', 'no-vf')).toBe(true);
    expect(exists('db', 'elsewhere')).toBe(true);
    expect(exists('aaa', 'sorts-first')).toBe(true);
    // PF2 stays held (no opt-in), and says so.
    expect(a.numVfs(PF2_PCI)).toBe(4);
    expect(blocked(s, PF2_PCI)).toMatchObject({ reason: 'VFsInUse' });
    const evictions = fake.server.requests().filter((r) => r.resource === 'pods/eviction');
    expect(evictions.map((r) => r.path)).toEqual(['/api/v1/namespaces/db/pods/on-pf1/eviction']);
    expect(events).toEqual(expect.arrayContaining([
      expect.stringMatching(/^NodePolicyLeaseTaken: /),
      expect.stringMatching(new RegExp(`^NodePolicyEvicted: PF ${a.pfName}: evicted pod db/on-pf1 \\(it holds VF ${vfPci(0x91, 1)}`)),
    ]));
    // Converged: the next pass gives the Lease up.
    await d.applyOnce();
    expect(leaseHolder()).toBeUndefined();
    expect(events).toContainEqual(expect.stringMatching(/^NodePolicyLeaseReleased: /));
  });

  it('a PodDisruptionBudget that forbids it: held, the pod stays, the status names the PDB; relaxed, it proceeds', async () => {
    const a = node();
    await grown(a);
    const kl = new Kubelets({ 'node-a': a });
    kl.pod('node-a', 'db', 'mysql-0', [vfPci(0x91, 0)], { app: 'mysql' });
    kl.pod('node-c', 'db', 'mysql-1', [], { app: 'mysql' });
    const policy = makeKubeClients(loadKubeConfig({ kubeconfig: fake.kubeconfigPath, env: {} })).config.makeApiClient(k8s.PolicyV1Api);
    await policy.createNamespacedPodDisruptionBudget({ namespace: 'db', body: { metadata: { name: 'mysql-pdb' }, spec: { minAvailable: 2, selector: { matchLabels: { app: 'mysql' } } } } });
    a.setPolicy(shrinkPolicy());
    const d = evictingDaemon(a, 'node-a');
    const s = await passes(d, (x) => blocked(x)?.reason === 'BlockedByPDB');
    expect(blocked(s)!.message).toContain('eviction of pod db/mysql-0 blocked by PDB db/mysql-pdb: The disruption budget mysql-pdb needs 2 healthy pods and has 2 currently');
    expect(blocked(s)!.message).toContain(`sriov_numvfs 4 -> 2 held: VF ${vfPci(0x91, 0)} in use by pod uid`);
    // Several passes later: still held, the pod still there, the Lease still this node's.
    for (let i = 0; i < 5; i++) await d.applyOnce();
    expect(exists('db', 'mysql-0')).toBe(true);
    expect(a.numVfs()).toBe(4);
    expect(leaseHolder()).toBe('node-a');

    await policy.patchNamespacedPodDisruptionBudget({ namespace: 'db', name: 'mysql-pdb', body: { spec: { minAvailable: 1 } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    await passes(d, (x) => !blocked(x));
    expect(exists('db', 'mysql-0')).toBe(false);
    expect(exists('db', 'mysql-1')).toBe(true);
    expect(a.numVfs()).toBe(2);
  });

  it('two nodes racing: one holds the Lease and evicts, the other waits, then proceeds', async () => {
    // A slow kubelet: evicted pods take a moment to go, so the first holder keeps the Lease a while.
    const { a, b } = await twoNodes(1, 1);
    // The timeline as the apiserver saw it: who held the Lease at each pod deletion.
    const timeline: string[] = [];
    fake.server.store.subscribe((c) => {
      if (c.res.plural === 'leases') timeline.push(`lease ${(c.obj.spec as { holderIdentity?: string }).holderIdentity ?? '-'}`);
      if (c.res.plural === 'pods' && c.obj.metadata.deletionTimestamp && c.type === 'MODIFIED') timeline.push(`evict ${c.obj.metadata.name!} (lease ${leaseHolder() ?? '-'})`);
    });
    for (const n of [a, b]) n.setPolicy(shrinkPolicy());
    const da = evictingDaemon(a, 'node-a');
    const db = evictingDaemon(b, 'node-b');
    const waited: string[] = [];
    for (let i = 0; i < 200 && (a.numVfs() !== 2 || b.numVfs() !== 2 || leaseHolder() !== undefined); i++) {
      const [sa, sb] = await Promise.all([da.applyOnce(), db.applyOnce()]);
      for (const [s, who] of [[sa, 'a'], [sb, 'b']] as const) if (blocked(s)?.reason === 'WaitingForLease') waited.push(`${who}: ${blocked(s)!.message}`);
      // kubelet finishing graceful deletions
      for (const p of ['pa', 'pb']) if (fake.server.get('pods', 'db', p)?.metadata.deletionTimestamp) fake.server.finalizePod('db', p);
      await sleep(20);
    }
    expect([a.numVfs(), b.numVfs()]).toEqual([2, 2]);
    expect(leaseHolder()).toBeUndefined();
    const first = timeline.find((t) => t.startsWith('lease node-'))!.slice('lease '.length);
    const second = first === 'node-a' ? 'node-b' : 'node-a';
    const [p1, p2] = first === 'node-a' ? ['pa', 'pb'] : ['pb', 'pa'];
    // Each eviction under its own node's Lease; the second node took it only after the first gave it up.
    expect(timeline).toContain(`evict ${p1} (lease ${first})`);
    expect(timeline).toContain(`evict ${p2} (lease ${second})`);
    const i1 = timeline.indexOf(`evict ${p1} (lease ${first})`);
    const released = timeline.indexOf('lease -', i1);
    const taken2 = timeline.indexOf(`lease ${second}`);
    expect(released).toBeGreaterThan(i1);
    expect(taken2).toBeGreaterThan(released);
    expect(timeline.indexOf(`evict ${p2} (lease ${second})`)).toBeGreaterThan(taken2);
    // And the second one said why it waited.
    expect(waited.length).toBeGreaterThan(0);
    for (const w of waited) expect(w).toMatch(new RegExp(`^${second.slice(-1)}: .*; waiting for Lease ${NS}/${LEASE} \\(held by ${first}\\): one node evicts at a time$`));
  });

  it('the holder killed while holding the Lease: the other node takes it over once it expires', async () => {
    // a's pod never goes (a long grace period and no kubelet to finish it): a holds the Lease on.
    const { a, b } = await twoNodes(3600, 0);
    for (const n of [a, b]) n.setPolicy(shrinkPolicy());
    const da = evictingDaemon(a, 'node-a', { durationS: 1 });
    const db = evictingDaemon(b, 'node-b', { durationS: 1 });
    await passes(da, (s) => blocked(s)?.reason === 'Evicting' && /pod db\/pa evicted, waiting/.test(blocked(s)!.message));
    expect(leaseHolder()).toBe('node-a');
    // node-a is killed here: no more passes, no release. node-b waits while the Lease is fresh...
    const started = Date.now();
    const s = await db.applyOnce();
    expect(blocked(s)).toMatchObject({ reason: 'WaitingForLease', message: expect.stringContaining('held by node-a') });
    expect(exists('db', 'pb')).toBe(true);
    // ...and takes it over once a full lease duration passed without a renewal.
    await passes(db, (x) => !blocked(x), 100, 50);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(b.numVfs()).toBe(2);
    expect(exists('db', 'pb')).toBe(false);
    expect(fake.server.get('leases', NS, LEASE)?.spec).toMatchObject({ leaseTransitions: 1 });
    // node-a's change is still held (its pod is still terminating): nothing was forced there.
    expect(a.numVfs()).toBe(4);
  });

  it("a CNI record naming a pod that is not on this node (a stale record) evicts nothing, and says so", async () => {
    const a = node();
    await grown(a);
    const kl = new Kubelets({ 'node-a': a });
    const other = kl.pod('node-b', 'db', 'mysql-0', []); // same name, another node: not the VF's holder
    kl.pod('node-a', 'db', 'web-0', []);
    await new VfRecords(a.stateDir).write({
      version: 1, pciAddr: vfPci(0x91, 3), networkName: 'n', containerId: 'c0ffee', ifName: 'net1', netns: '/proc/1/ns/net',
      pod: { namespace: 'db', name: 'mysql-0', uid: 'uid-of-an-older-mysql-0' }, phase: 'ready', createdAt: new Date().toISOString(),
      original: { pfNetdev: a.pfName, vfIndex: 3, userspace: false, vf: null, netdev: null }, cniVersion: '1.0.0',
    });
    a.setPolicy(shrinkPolicy());
    const d = evictingDaemon(a, 'node-a');
    let s = await d.applyOnce();
    s = await d.applyOnce();
    expect(blocked(s)!.message).toContain(`VF ${vfPci(0x91, 3)}: pod db/mysql-0 is no longer a pod on this node; waiting for kubelet and the CNI to free the VF`);
    expect(fake.server.get('pods', 'db', 'mysql-0')?.metadata.uid).toBe(other.metadata.uid);
    expect(exists('db', 'web-0')).toBe(true);
    expect(fake.server.requests().filter((r) => r.resource === 'pods/eviction')).toEqual([]);
    expect(a.numVfs()).toBe(4);
  });

  it('without API access the entry stays held and says why; nothing is evicted', async () => {
    const a = node();
    await grown(a);
    a.allocate([vfPci(0x91, 1)]);
    a.setPolicy(shrinkPolicy());
    const s = await a.daemon().applyOnce();
    expect(blocked(s)).toMatchObject({ reason: 'VFsInUse', message: expect.stringContaining('disruption: evict needs API access and the node name') });
    expect(a.numVfs()).toBe(4);
  });
});
