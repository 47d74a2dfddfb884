import { describe, expect, it } from 'vitest';
import { RegistrationIndex } from '../../../src/registrations/index';
import { detectDrift } from '../../../src/registrations/drift';
import { configMap, networksCm } from './fixtures';

function setup(value: string) {
  const idx = new RegistrationIndex();
  idx.applyConfigMap(networksCm());
  idx.applyConfigMap(configMap('db', 'r', 'registration', { 'pg-0': value, other: 'network: vlan200\nip: 10.200.0.7' }, { resourceVersion: '10' }));
  const r = idx.lookup('db', 'pg-0');
  if (r.kind !== 'resolved') throw new Error('setup');
  return { idx, running: r.settings };
}

describe('detectDrift', () => {
  it('reports nothing when only another key of the ConfigMap changed', () => {
    const { idx, running } = setup('network: vlan100\nip: 10.100.0.11');
    idx.applyConfigMap(configMap('db', 'r', 'registration', { 'pg-0': 'network: vlan100\nip: 10.100.0.11', other: 'network: vlan200\nip: 10.200.0.8' }, { resourceVersion: '11' }));
    expect(detectDrift('db/pg-0', running, idx.lookup('db', 'pg-0'))).toBeNull();
  });

  it('lists each changed field with running and current values and both versions', () => {
    const { idx, running } = setup('network: vlan100\nip: 10.100.0.11');
    idx.applyConfigMap(configMap('db', 'r', 'registration', { 'pg-0': 'network: vlan100\nip: 10.100.0.12\nqos: {maxTxRateMbps: 200}' }, { resourceVersion: '12' }));
    const d = detectDrift('db/pg-0', running, idx.lookup('db', 'pg-0'));
    expect(d?.kind).toBe('changed');
    if (d?.kind !== 'changed') return;
    expect(d.changes).toEqual([
      { field: 'ips', running: ['10.100.0.11/24'], current: ['10.100.0.12/24'] },
      { field: 'maxTxRateMbps', running: 1000, current: 200 },
    ]);
    expect(d.message).toBe(
      'pod db/pg-0: registration drift, running configmap db/r key "pg-0" @ resourceVersion 10, now configmap db/r key "pg-0" @ resourceVersion 12: ' +
        'ips: ["10.100.0.11/24"] → ["10.100.0.12/24"], maxTxRateMbps: 1000 → 200; the running pod is not changed',
    );
  });

  it('reports a removed and a now-rejected registration', () => {
    const { idx, running } = setup('network: vlan100\nip: 10.100.0.11');
    idx.applyConfigMap(configMap('db', 'r', 'registration', { 'pg-0': 'network: vlan100\nip: 10.100.0.11\nmtu: 1' }, { resourceVersion: '13' }));
    const rej = detectDrift('db/pg-0', running, idx.lookup('db', 'pg-0'));
    expect(rej?.kind).toBe('rejected');
    expect(rej?.message).toContain('field "mtu"');
    idx.deleteConfigMap('db', 'r');
    expect(detectDrift('db/pg-0', running, idx.lookup('db', 'pg-0'))?.kind).toBe('removed');
  });

  it('does not compare a pool pod’s allocated address', () => {
    const { idx, running } = setup('pool: vlan100');
    const withIp = { ...running, ips: ['10.100.0.100/24'] };
    expect(detectDrift('db/pg-0', withIp, idx.lookup('db', 'pg-0'))).toBeNull();
  });
});
