/**
 * Registrations per attachment: a pod registered on two networks gets each network's own
 * registration for the attachment that asks for it; a network decides which namespaces may
 * register on it; old single-network ConfigMaps keep working where that is unambiguous.
 */
import { describe, expect, it } from 'vitest';
import { RegistrationIndex } from '../../../src/registrations/index';
import { configMap, indexWith, networksCm, rejected, resolved, VLAN200 } from './fixtures';


const TWO = `
- network: vlan100
  ip: 10.100.0.11
  mac: 02:00:0a:64:00:0b
- network: vlan200
  ip: 10.200.0.11
  mac: 02:00:0a:c8:00:0b
`;

describe('registrations per attachment', () => {
  it('a pod on two networks gets each network’s own IP, VLAN and MAC, by the network the CNI names', () => {
    const idx = indexWith(configMap('ns', 'r', 'registration', { app: TWO }));
    const a = resolved(idx.lookup('ns', 'app', 'vlan100'));
    const b = resolved(idx.lookup('ns', 'app', 'vlan200'));
    const got = [a, b].map((s) => ({ ips: s.ips, vlan: s.vlan, mac: s.mac, network: s.network }));
    expect(got).toEqual([
      { ips: ['10.100.0.11/24'], vlan: 100, mac: '02:00:0a:64:00:0b', network: 'vlan100' },
      { ips: ['10.200.0.11/24'], vlan: 200, mac: '02:00:0a:c8:00:0b', network: 'vlan200' },
    ]);
    // Uniqueness on what the pod got, not on names.
    expect(new Set(got.flatMap((g) => g.ips)).size).toBe(2);
    expect(new Set(got.map((g) => g.mac)).size).toBe(2);
    expect(idx.rejectionsOf('ns', 'r')).toEqual([]);
  });

  it('a single-network registration does not answer for another defined network (that attachment uses its netconf)', () => {
    const idx = indexWith(configMap('ns', 'r', 'registration', { app: 'network: vlan100\nip: 10.100.0.12' }));
    expect(resolved(idx.lookup('ns', 'app', 'vlan100')).ips).toEqual(['10.100.0.12/24']);
    expect(idx.lookup('ns', 'app', 'vlan200')).toEqual({ kind: 'not-registered' });
  });

  it('old form, old NAD: a name that is no network, or none, gets the pod’s only registration', () => {
    const idx = indexWith(configMap('ns', 'r', 'registration', { app: 'network: vlan100\nip: 10.100.0.13' }));
    expect(resolved(idx.lookup('ns', 'app')).ips).toEqual(['10.100.0.13/24']);
    expect(resolved(idx.lookup('ns', 'app', 'sriov-net-a')).ips).toEqual(['10.100.0.13/24']);
  });

  it('two networks and a name that is none of them: rejected as ambiguous, naming ConfigMap, key and field', () => {
    const idx = indexWith(configMap('ns', 'r', 'registration', { app: TWO }));
    const r = rejected(idx.lookup('ns', 'app', 'sriov-net-a'));
    expect(r.message).toBe(
      'configmap ns/r key "app": field "0.network": pod ns/app is registered on networks "vlan100", "vlan200" and the CNI asked for "sriov-net-a" ' +
        '(its netconf "name"), which is none of them: set each NetworkAttachmentDefinition\'s netconf "name" to the network it attaches',
    );
    expect(rejected(idx.lookup('ns', 'app')).field).toBe('0.network');
  });

  it('attachments can be split over ConfigMaps; the same key and network twice: the older is used', () => {
    const idx = indexWith(
      configMap('ns', 'a', 'registration', { app: 'network: vlan100\nip: 10.100.0.14' }, { created: '2026-01-01T00:00:00Z' }),
      configMap('ns', 'b', 'registration', { app: 'network: vlan200\nip: 10.200.0.14' }, { created: '2026-02-01T00:00:00Z' }),
      configMap('ns', 'c', 'registration', { app: 'network: vlan100\nip: 10.100.0.15' }, { created: '2026-03-01T00:00:00Z' }),
    );
    expect(resolved(idx.lookup('ns', 'app', 'vlan100')).ips).toEqual(['10.100.0.14/24']);
    expect(resolved(idx.lookup('ns', 'app', 'vlan200')).ips).toEqual(['10.200.0.14/24']);
    expect(idx.rejectionsOf('ns', 'c').map((r) => r.reason)).toEqual(['shadowed']);
  });

  it('StatefulSets: per network, an exact key wins over the StatefulSet key', () => {
    const idx = indexWith(
      configMap('ns', 'r', 'registration', {
        db: '- network: vlan100\n  ips: [10.100.0.21, 10.100.0.22]\n- network: vlan200\n  ips: [10.200.0.21, 10.200.0.22]',
        'db-1': 'network: vlan200\nip: 10.200.0.99',
      }),
    );
    expect(resolved(idx.lookup('ns', 'db-1', 'vlan100')).ips).toEqual(['10.100.0.22/24']);
    expect(resolved(idx.lookup('ns', 'db-1', 'vlan200')).ips).toEqual(['10.200.0.99/24']);
    expect(resolved(idx.lookup('ns', 'db-0', 'vlan200')).ips).toEqual(['10.200.0.21/24']);
  });

  it('a list element that is wrong names its index in the field; the other attachment still serves', () => {
    const idx = indexWith(configMap('ns', 'r', 'registration', { app: '- network: vlan100\n  ip: 10.100.0.16\n- network: vlan200\n  ip: 10.100.0.16' }));
    const r = rejected(idx.lookup('ns', 'app', 'vlan200'));
    expect(r.field).toBe('1.ip');
    expect(r.message).toBe('configmap ns/r key "app": field "1.ip": 10.100.0.16 is not inside the subnet 10.200.0.0/24 of network "vlan200"');
    expect(resolved(idx.lookup('ns', 'app', 'vlan100')).ips).toEqual(['10.100.0.16/24']);
  });

  it('rejects a network named twice in one key, an empty list and too many attachments', () => {
    const idx = indexWith(
      configMap('ns', 'r', 'registration', {
        twice: '- network: vlan100\n  ip: 10.100.0.17\n- network: vlan100\n  ip: 10.100.0.18',
        empty: '[]',
        many: Array.from({ length: 9 }, (_, i) => `- network: n${i}\n  ip: 10.0.0.${i + 1}`).join('\n'),
      }),
    );
    const msgs = idx.rejectionsOf('ns', 'r').map((r) => r.message);
    expect(msgs).toContain('configmap ns/r key "twice": field "1.network": network "vlan100" is already registered by 0.network; one attachment per network');
    expect(msgs).toContain('configmap ns/r key "empty": field "(root)": an empty list registers nothing');
    expect(msgs).toContain('configmap ns/r key "many": field "(root)": lists 9 attachments; at most 8 are allowed');
    expect(rejected(idx.lookup('ns', 'empty', 'vlan100')).field).toBe('(root)');
  });

  it('a malformed key for a pod rejects its lookups on every network rather than serving the netconf', () => {
    const idx = indexWith(configMap('ns', 'r', 'registration', { app: 'network: [' }));
    expect(rejected(idx.lookup('ns', 'app', 'vlan100')).field).toBe('(yaml)');
    expect(rejected(idx.lookup('ns', 'app', 'vlan200')).field).toBe('(yaml)');
  });
});

describe('allowedNamespaces', () => {
  const guarded = `${VLAN200}allowedNamespaces: [payments]\n`;
  it('a namespace not allowed on the network is rejected naming the registration and the network’s ConfigMap and key', () => {
    const idx = new RegistrationIndex();
    idx.applyConfigMap(networksCm({ vlan200: guarded }));
    idx.applyConfigMap(configMap('payments', 'r', 'registration', { ok: 'network: vlan200\nip: 10.200.0.5' }));
    idx.applyConfigMap(configMap('intruder', 'r', 'registration', { steal: 'network: vlan200\nip: 10.200.0.6', pooled: 'pool: vlan200' }));
    expect(resolved(idx.lookup('payments', 'ok', 'vlan200')).ips).toEqual(['10.200.0.5/24']);
    const r = rejected(idx.lookup('intruder', 'steal', 'vlan200'));
    expect(r.message).toBe(
      'configmap intruder/r key "steal": field "network": namespace "intruder" may not register on network "vlan200": it is not in allowedNamespaces of configmap sriov-underlay/networks key "vlan200"',
    );
    expect(rejected(idx.lookup('intruder', 'pooled', 'vlan200')).field).toBe('pool');
    expect(idx.rejectionsOf('intruder', 'r').map((x) => x.key).sort()).toEqual(['pooled', 'steal']);
  });

  it('an intruder’s registration holds no address: the allowed pod’s claim on the same IP is not a conflict', () => {
    const idx = new RegistrationIndex();
    idx.applyConfigMap(networksCm({ vlan200: guarded }));
    // Older, but not allowed: it must not take the address away from the allowed namespace.
    idx.applyConfigMap(configMap('intruder', 'r', 'registration', { steal: 'network: vlan200\nip: 10.200.0.7' }, { created: '2020-01-01T00:00:00Z' }));
    idx.applyConfigMap(configMap('payments', 'r', 'registration', { ok: 'network: vlan200\nip: 10.200.0.7' }));
    expect(resolved(idx.lookup('payments', 'ok', 'vlan200')).ips).toEqual(['10.200.0.7/24']);
  });

  it('pools must include resourceName; a bad namespace name is rejected at the network', () => {
    const idx = new RegistrationIndex();
    idx.applyConfigMap(networksCm({ a: `${VLAN200}pools: [sriov-underlay.io/other]\n`, b: `${VLAN200}allowedNamespaces: [Not_A_Namespace]\n` }));
    const msgs = idx.networkRejectionsOf('sriov-underlay', 'networks').map((r) => r.message);
    expect(msgs).toEqual([
      'configmap sriov-underlay/networks key "a": field "pools": must include resourceName "sriov-underlay.io/vf-pool-a"',
      'configmap sriov-underlay/networks key "b": field "allowedNamespaces.0": must be a namespace name (a DNS label)',
    ]);
  });
});

describe('kubectl sriov validate', () => {
  it('warns about each network without allowedNamespaces, naming it and the field', async () => {
    const { plan } = await import('../../../cli/validate');
    const { findings } = plan({ configMaps: [networksCm({ vlan200: `${VLAN200}allowedNamespaces: [payments]\n` })], statefulSetReplicas: new Map(), nodeStates: [], nowMs: 0 });
    expect(findings.filter((f) => f.check === 'open-network').map((f) => [f.severity, f.message])).toEqual([
      ['warning', 'configmap sriov-underlay/networks key "vlan100": field "allowedNamespaces": absent, so registrations in every namespace may use this network; list the namespaces that may'],
    ]);
  });
});
