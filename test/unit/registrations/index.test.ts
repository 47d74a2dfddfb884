import { describe, expect, it } from 'vitest';
import { RegistrationIndex } from '../../../src/registrations/index';
import { configMap, indexWith, networksCm, rejected, resolved } from './fixtures';

describe('RegistrationIndex lookup', () => {
  it('resolves a fixed IP with network defaults and registration overrides', () => {
    const idx = indexWith(
      configMap('db', 'db-net', 'registration', {
        'pg-0': 'network: vlan100\nip: 10.100.0.11\nqos: {maxTxRateMbps: 500}\nmac: 02:00:00:AA:BB:CC\nmtu: 1500',
      }, { resourceVersion: '4711' }),
    );
    const s = resolved(idx.lookup('db', 'pg-0'));
    expect(s).toEqual({
      network: 'vlan100',
      resourceName: 'sriov-underlay.io/vf-pool-a',
      vlan: 100,
      ips: ['10.100.0.11/24'],
      gateways: ['10.100.0.1'],
      // only the network's IPv4 route: the pod has no IPv6 address
      routes: [{ dst: '10.200.0.0/16', gw: '10.100.0.1' }],
      mtu: 1500,
      mac: '02:00:00:aa:bb:cc',
      minTxRateMbps: 100,
      maxTxRateMbps: 500,
      spoofchk: true,
      trust: false,
      duplicateDetection: true,
      source: { namespace: 'db', configMap: 'db-net', key: 'pg-0', resourceVersion: '4711' },
    });
  });

  it('resolves dual stack with both gateways and both families of routes', () => {
    const idx = indexWith(configMap('db', 'r', 'registration', { a: 'network: vlan100\nip: [10.100.0.12, "fd00:100:0::12"]' }));
    const s = resolved(idx.lookup('db', 'a'));
    expect(s.ips).toEqual(['10.100.0.12/24', 'fd00:100::12/64']);
    expect(s.gateways).toEqual(['10.100.0.1', 'fd00:100::1']);
    expect(s.routes).toEqual([
      { dst: '10.200.0.0/16', gw: '10.100.0.1' },
      { dst: 'fd00:200::/64', gw: 'fd00:100::1' },
    ]);
  });

  it('gives StatefulSet pods their ordinal address, and an exact key wins', () => {
    const idx = indexWith(
      configMap('db', 'r', 'registration', {
        mysql: 'network: vlan100\nips: [10.100.0.21, 10.100.0.22, 10.100.0.23]\nips6: [fd00:100::21, fd00:100::22, fd00:100::23]',
        'mysql-1': 'network: vlan100\nip: 10.100.0.22\nqos: {maxTxRateMbps: 300}',
      }),
    );
    expect(resolved(idx.lookup('db', 'mysql-0')).ips).toEqual(['10.100.0.21/24', 'fd00:100::21/64']);
    const one = resolved(idx.lookup('db', 'mysql-1'));
    expect(one.ips).toEqual(['10.100.0.22/24']);
    expect(one.maxTxRateMbps).toBe(300);
    expect(one.source.key).toBe('mysql-1');
    expect(resolved(idx.lookup('db', 'mysql-2')).source.key).toBe('mysql');
    const past = rejected(idx.lookup('db', 'mysql-3'));
    expect(past.message).toBe('configmap db/r key "mysql": field "ips": lists 3 addresses; pod "mysql-3" needs ordinal 3');
    expect(idx.lookup('db', 'mysql-01')).toEqual({ kind: 'not-registered' });
    expect(idx.lookup('db', 'mysql')).toEqual({ kind: 'not-registered' });
    expect(idx.lookup('other', 'mysql-0')).toEqual({ kind: 'not-registered' });
  });

  it('rejects only the bad key; the others keep working', () => {
    const idx = indexWith(
      configMap('db', 'r', 'registration', {
        good: 'network: vlan100\nip: 10.100.0.11',
        yaml: 'network: vlan100\nip: [10.100.0.12',
        field: 'network: vlan100\nip: 10.100.0.13\nqos: {maxTxRateMbps: -1}',
        subnet: 'network: vlan100\nip: 10.101.0.13',
        gw: 'network: vlan100\nip: 10.100.0.1',
        bcast: 'network: vlan100\nip: 10.100.0.255',
        unknown: 'network: vlan300\nip: 10.100.0.14',
        v6less: 'network: vlan200\nip: fd00::5',
        vlan: 'network: vlan200\nip: 10.200.0.5\nvlan: 100',
        pool200: 'pool: vlan200',
      }),
    );
    expect(resolved(idx.lookup('db', 'good')).ips).toEqual(['10.100.0.11/24']);
    const msg = (pod: string) => rejected(idx.lookup('db', pod)).message;
    expect(msg('yaml')).toMatch(/^configmap db\/r key "yaml": field "\(yaml\)": malformed YAML: /);
    expect(msg('field')).toMatch(/^configmap db\/r key "field": field "qos.maxTxRateMbps": Too small/);
    expect(msg('subnet')).toBe('configmap db/r key "subnet": field "ip": 10.101.0.13 is not inside the subnet 10.100.0.0/24 of network "vlan100"');
    expect(msg('gw')).toBe('configmap db/r key "gw": field "ip": 10.100.0.1 is the gateway of network "vlan100"');
    expect(msg('bcast')).toContain('field "ip": 10.100.0.255 is the broadcast address of 10.100.0.0/24');
    expect(msg('unknown')).toBe('configmap db/r key "unknown": field "network": unknown network "vlan300" (known: vlan100, vlan200)');
    expect(msg('v6less')).toContain('field "ip": fd00::5 is IPv6 but network "vlan200" has no subnet6');
    expect(msg('vlan')).toContain('field "vlan": is 100 but network "vlan200" has vlan 200');
    expect(msg('pool200')).toContain('field "pool": network "vlan200" has no "ranges"');
    const all = idx.rejectionsOf('db', 'r');
    expect(all.map((r) => r.key).sort()).toEqual(['bcast', 'field', 'gw', 'pool200', 'subnet', 'unknown', 'v6less', 'vlan', 'yaml']);
    expect(all.every((r) => r.resourceVersion === all[0]!.resourceVersion)).toBe(true);
  });

  it('gives a contested IP to the older registration and names both in the loser’s error', () => {
    const idx = indexWith(
      configMap('team-b', 'newer', 'registration', { web: 'network: vlan100\nip: 10.100.0.50' }, { created: '2026-03-01T00:00:00Z' }),
      configMap('team-a', 'older', 'registration', { api: 'network: vlan100\nip: 10.100.0.50' }, { created: '2026-02-01T00:00:00Z' }),
    );
    expect(resolved(idx.lookup('team-a', 'api')).ips).toEqual(['10.100.0.50/24']);
    const r = rejected(idx.lookup('team-b', 'web'));
    expect(r.reason).toBe('conflict');
    expect(r.message).toBe(
      'configmap team-b/newer key "web": field "ip": 10.100.0.50 on network "vlan100" is already registered by ' +
        'configmap team-a/older key "api" (pod team-a/api), which is older and keeps it',
    );
    expect(r.heldBy).toEqual({ namespace: 'team-a', configMap: 'older', key: 'api' });
    // Removing the holder hands the address to the other.
    idx.deleteConfigMap('team-a', 'older');
    expect(resolved(idx.lookup('team-b', 'web')).ips).toEqual(['10.100.0.50/24']);
  });

  it('breaks a creation-time tie by namespace, name, then key', () => {
    const idx = indexWith(
      configMap('ns', 'cm', 'registration', { b: 'network: vlan100\nip: 10.100.0.60', a: 'network: vlan100\nip: 10.100.0.60' }),
    );
    expect(resolved(idx.lookup('ns', 'a')).ips).toEqual(['10.100.0.60/24']);
    expect(rejected(idx.lookup('ns', 'b')).message).toContain('already registered by configmap ns/cm key "a"');
  });

  it('an invalid or overridden registration holds no address', () => {
    const idx = indexWith(
      configMap('ns', 'old', 'registration', {
        broken: 'network: vlan100\nip: 10.100.0.70\nmtu: 10', // invalid: holds nothing
        sts: 'network: vlan100\nips: [10.100.0.71]',
        'sts-0': 'network: vlan100\nip: 10.100.0.72', // overrides sts ordinal 0, freeing .71
      }, { created: '2026-01-01T00:00:00Z' }),
      configMap('ns', 'new', 'registration', {
        x: 'network: vlan100\nip: 10.100.0.70',
        y: 'network: vlan100\nip: 10.100.0.71',
      }, { created: '2026-05-01T00:00:00Z' }),
    );
    expect(resolved(idx.lookup('ns', 'x')).ips).toEqual(['10.100.0.70/24']);
    expect(resolved(idx.lookup('ns', 'y')).ips).toEqual(['10.100.0.71/24']);
    // an exact key and its StatefulSet entry naming the same address for the same pod do not conflict
    const idx2 = indexWith(configMap('ns', 'c', 'registration', { s: 'network: vlan100\nips: [10.100.0.80]', 's-0': 'network: vlan100\nip: 10.100.0.80' }));
    expect(resolved(idx2.lookup('ns', 's-0')).source.key).toBe('s-0');
    expect(idx2.rejectionsOf('ns', 'c')).toEqual([]);
  });

  it('the same key in two ConfigMaps of a namespace: the older is used, the newer is shadowed', () => {
    const idx = indexWith(
      configMap('ns', 'b-new', 'registration', { p: 'network: vlan100\nip: 10.100.0.91' }, { created: '2026-02-01T00:00:00Z' }),
      configMap('ns', 'a-old', 'registration', { p: 'network: vlan100\nip: 10.100.0.90' }, { created: '2026-01-01T00:00:00Z' }),
    );
    expect(resolved(idx.lookup('ns', 'p')).ips).toEqual(['10.100.0.90/24']);
    const [r] = idx.rejectionsOf('ns', 'b-new');
    expect(r?.reason).toBe('shadowed');
    expect(r?.message).toBe('configmap ns/b-new key "p": field "(key)": the same key and network "vlan100" are in configmap ns/a-old, which is older and is used');
  });

  it('resolves a pool entry without addresses, with both families’ gateways', () => {
    const idx = indexWith(configMap('ns', 'c', 'registration', { app: 'pool: vlan100\nreserve: true' }));
    const s = resolved(idx.lookup('ns', 'app'));
    expect(s.ips).toEqual([]);
    expect(s.pool).toEqual({ reserve: true });
    expect(s.gateways).toEqual(['10.100.0.1', 'fd00:100::1']);
    expect(idx.network('vlan100')!.pool.length).toBe(3); // 100-149, 151-199, the v6 range
  });

  it('follows edits, label removal and network changes', () => {
    const idx = indexWith(configMap('ns', 'c', 'registration', { p: 'network: vlan200\nip: 10.200.0.9' }));
    const g0 = idx.generation;
    expect(resolved(idx.lookup('ns', 'p')).ips).toEqual(['10.200.0.9/24']);
    idx.applyConfigMap(configMap('ns', 'c', 'registration', { p: 'network: vlan200\nip: 10.200.0.10' }));
    expect(resolved(idx.lookup('ns', 'p')).ips).toEqual(['10.200.0.10/24']);
    expect(idx.generation).toBeGreaterThan(g0);
    // network narrowed: the registration is now outside it
    idx.applyConfigMap(networksCm({ vlan200: 'vlan: 200\nsubnet: 10.200.0.0/29\ngateway: 10.200.0.1\nresourceName: a/b' }));
    expect(rejected(idx.lookup('ns', 'p')).message).toContain('10.200.0.10 is not inside the subnet 10.200.0.0/29');
    idx.applyConfigMap(configMap('ns', 'c', null, { p: 'network: vlan200\nip: 10.200.0.2' }));
    expect(idx.lookup('ns', 'p')).toEqual({ kind: 'not-registered' });
  });

  it('ignores network ConfigMaps outside the system namespace and shadows duplicate network names', () => {
    const idx = new RegistrationIndex();
    idx.applyConfigMap(configMap('default', 'fake-nets', 'network', { vlan9: 'vlan: 9\nsubnet: 10.9.0.0/24\nresourceName: a/b' }));
    expect(idx.network('vlan9')).toBeUndefined();
    idx.applyConfigMap(networksCm({}, '2026-01-01T00:00:00Z'));
    idx.applyConfigMap(configMap('sriov-underlay', 'more', 'network', { vlan100: 'vlan: 999\nsubnet: 10.9.0.0/24\nresourceName: a/b', 'Bad_Name': 'vlan: 1\nsubnet: 10.1.0.0/24\nresourceName: a/b' }, { created: '2026-06-01T00:00:00Z' }));
    expect(idx.network('vlan100')!.spec.vlan).toBe(100);
    const rs = idx.networkRejectionsOf('sriov-underlay', 'more').map((r) => r.message);
    expect(rs).toEqual([
      'configmap sriov-underlay/more key "vlan100": field "(key)": network "vlan100" is already defined by configmap sriov-underlay/networks, which is older and is used',
      'configmap sriov-underlay/more key "Bad_Name": field "(key)": a network name must be a DNS label: lowercase letters, digits and "-", at most 63',
    ]);
  });

  it('replaceAll after a relist drops what is gone', () => {
    const idx = indexWith(configMap('ns', 'c', 'registration', { p: 'network: vlan200\nip: 10.200.0.9' }));
    idx.replaceAll([networksCm(), configMap('ns', 'd', 'registration', { q: 'network: vlan200\nip: 10.200.0.9' })]);
    expect(idx.lookup('ns', 'p')).toEqual({ kind: 'not-registered' });
    expect(resolved(idx.lookup('ns', 'q')).ips).toEqual(['10.200.0.9/24']);
  });

  it('accepts creationTimestamp as a Date, as client-node returns it', () => {
    const older = configMap('a', 'x', 'registration', { p: 'network: vlan200\nip: 10.200.0.30' });
    older.metadata!.creationTimestamp = new Date('2020-01-01T00:00:00Z');
    const idx = indexWith(configMap('a', 'w', 'registration', { q: 'network: vlan200\nip: 10.200.0.30' }), older);
    expect(resolved(idx.lookup('a', 'p')).ips).toEqual(['10.200.0.30/24']);
  });
});
