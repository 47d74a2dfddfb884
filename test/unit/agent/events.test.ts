/**
 * Rejection Events against the fake API server: one Event per object, reason and series, shared
 * by every agent and by the same agent after a restart; repeats update its count; a flood of
 * rejections on one object is rate-limited.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as k8s from '@kubernetes/client-node';
import { startFakeKube, type FakeKube } from '../../fakes/kube-apiserver';
import { loadKubeConfig, makeKubeClients, type KubeClients } from '../../../src/kube/client';
import { EventRecorder, OBJECT_BURST, rejectionSeries, type EventTarget } from '../../../node/agent/events';
import { silentLogger } from '../../../src/log';

let kube: FakeKube;
let clients: KubeClients;

beforeAll(async () => {
  kube = await startFakeKube({ namespaces: ['team'] });
  clients = makeKubeClients(loadKubeConfig({ kubeconfig: kube.kubeconfigPath }));
});
afterAll(async () => {
  await kube?.close();
});

async function eventsOn(name: string): Promise<k8s.CoreV1Event[]> {
  return (await clients.core.listNamespacedEvent({ namespace: 'team' })).items.filter((e) => e.involvedObject.name === name);
}
const recorder = (node: string) => new EventRecorder(clients.core, node, silentLogger());

describe('EventRecorder', () => {
  it('two agents (or one restarted) reporting the same rejection make one Event, not one each', async () => {
    const cm: EventTarget = { kind: 'ConfigMap', namespace: 'team', name: 'regs-a' };
    const rej = { key: 'web', field: 'ip' };
    const msg = 'configmap team/regs-a key "web": field "ip": 10.9.9.9 is not inside the subnet 10.100.0.0/24 of network "vlan100"';
    for (const node of ['node-a', 'node-b', 'node-a']) {
      const r = recorder(node); // a fresh recorder: another node, or the same after a restart
      r.emit(cm, 'Warning', 'RegistrationRejected', msg, rejectionSeries(rej));
      await r.flush();
    }
    const evs = await eventsOn('regs-a');
    expect(evs.map((e) => [e.reason, e.count, e.message])).toEqual([['RegistrationRejected', 1, msg]]);
  });

  it('the same key and field with a new message updates that Event and counts it', async () => {
    const cm: EventTarget = { kind: 'ConfigMap', namespace: 'team', name: 'regs-b' };
    const r = recorder('node-a');
    r.emit(cm, 'Warning', 'RegistrationRejected', 'configmap team/regs-b key "web": field "ip": first', rejectionSeries({ key: 'web', field: 'ip' }));
    await r.flush();
    const again = recorder('node-b');
    again.emit(cm, 'Warning', 'RegistrationRejected', 'configmap team/regs-b key "web": field "ip": second', rejectionSeries({ key: 'web', field: 'ip' }));
    await again.flush();
    const evs = await eventsOn('regs-b');
    expect(evs.map((e) => [e.count, e.message, e.reportingInstance])).toEqual([[2, 'configmap team/regs-b key "web": field "ip": second', 'node-b']]);
  });

  it('a thousand rejected keys on one ConfigMap make at most the per-object burst of Events', async () => {
    const cm: EventTarget = { kind: 'ConfigMap', namespace: 'team', name: 'regs-c' };
    const r = recorder('node-a');
    for (let i = 0; i < 1000; i++) r.emit(cm, 'Warning', 'RegistrationRejected', `configmap team/regs-c key "k${i}": field "ip": bad`, rejectionSeries({ key: `k${i}`, field: 'ip' }));
    await r.flush();
    expect((await eventsOn('regs-c')).length).toBe(OBJECT_BURST);
    expect(r.dropped).toBe(1000 - OBJECT_BURST);
    // Another object still gets its Events.
    r.emit({ kind: 'ConfigMap', namespace: 'team', name: 'regs-d' }, 'Warning', 'RegistrationRejected', 'x');
    await r.flush();
    expect((await eventsOn('regs-d')).length).toBe(1);
  });
});
