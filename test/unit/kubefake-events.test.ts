// events.k8s.io/v1 Events are a view of core/v1 Events, as in the real apiserver.
import * as k8s from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { expectStatus } from '../fakes/kube-apiserver/client-errors';
import { type FakeKube, startFakeKube } from '../fakes/kube-apiserver';
import { waitFor } from '../fakes/kube-apiserver/wait';

let fake: FakeKube;
let core: k8s.CoreV1Api;
let events: k8s.EventsV1Api;
let kc: k8s.KubeConfig;
const aborts: AbortController[] = [];
const NS = 'default';

beforeAll(async () => {
  fake = await startFakeKube();
  kc = new k8s.KubeConfig();
  kc.loadFromFile(fake.kubeconfigPath);
  core = kc.makeApiClient(k8s.CoreV1Api);
  events = kc.makeApiClient(k8s.EventsV1Api);
});
afterEach(() => aborts.splice(0).forEach((a) => a.abort()));
afterAll(async () => fake.close());

const v1Event = (name: string, pod: string): k8s.EventsV1Event => ({
  metadata: { name },
  eventTime: new Date() as unknown as k8s.V1MicroTime,
  reportingController: 'sriov-underlay.io/agent',
  reportingInstance: 'agent-node-1',
  action: 'Assign',
  reason: 'Assigned',
  type: 'Normal',
  note: 'ip 10.0.0.5/24 vlan 100',
  regarding: { kind: 'Pod', namespace: NS, name: pod },
});

describe('events.k8s.io/v1', () => {
  it('stores an events.k8s.io Event as a core Event with mapped fields', async () => {
    const made = await events.createNamespacedEvent({ namespace: NS, body: v1Event('ev-1', 'db-0') });
    expect(made.regarding?.name).toBe('db-0');
    expect(made.note).toBe('ip 10.0.0.5/24 vlan 100');
    const asCore = await core.readNamespacedEvent({ name: 'ev-1', namespace: NS });
    expect(asCore.involvedObject).toMatchObject({ kind: 'Pod', name: 'db-0' });
    expect(asCore.message).toBe('ip 10.0.0.5/24 vlan 100');
    expect(asCore.reportingComponent).toBe('sriov-underlay.io/agent');
    expect(asCore.metadata?.resourceVersion).toBe(made.metadata?.resourceVersion);
  });

  it('shows core Events through the events.k8s.io list, watch and field selectors', async () => {
    const list = await events.listNamespacedEvent({ namespace: NS });
    const seen: string[] = [];
    aborts.push(await new k8s.Watch(kc).watch(`/apis/events.k8s.io/v1/namespaces/${NS}/events`, { resourceVersion: list.metadata!.resourceVersion! },
      (type, obj: k8s.EventsV1Event) => seen.push(`${type} ${obj.regarding?.name} ${obj.note}`), () => undefined));
    await core.createNamespacedEvent({ namespace: NS, body: { metadata: { name: 'ev-2' }, involvedObject: { kind: 'Pod', namespace: NS, name: 'db-1' }, reason: 'Released', message: 'released', type: 'Normal' } });
    await waitFor('watch event', () => seen.length >= 1);
    expect(seen).toEqual(['ADDED db-1 released']);
    const byRegarding = await events.listNamespacedEvent({ namespace: NS, fieldSelector: 'regarding.name=db-1' });
    expect(byRegarding.items.map((e) => e.metadata?.name)).toEqual(['ev-2']);
  });

  it('validates the events.k8s.io fields with 422', async () => {
    const bad = { ...v1Event('ev-bad', 'db-0'), reportingController: undefined, type: 'Info' };
    const st = await expectStatus(() => events.createNamespacedEvent({ namespace: NS, body: bad }));
    expect(st).toMatchObject({ code: 422, reason: 'Invalid', details: { group: 'events.k8s.io' } });
    expect(st.details?.causes?.map((c) => c.field).sort()).toEqual(['reportingController', 'type']);
    expect(fake.server.get('events', NS, 'ev-bad')).toBeUndefined();
  });

  it('deletes through either API', async () => {
    await events.createNamespacedEvent({ namespace: NS, body: v1Event('ev-3', 'db-0') });
    const st = await events.deleteNamespacedEvent({ name: 'ev-3', namespace: NS });
    expect(st).toMatchObject({ status: 'Success' });
    expect((await expectStatus(() => core.readNamespacedEvent({ name: 'ev-3', namespace: NS }))).code).toBe(404);
  });
});
