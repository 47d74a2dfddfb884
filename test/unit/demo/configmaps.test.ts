import { describe, expect, it } from 'vitest';
import * as path from 'node:path';
import YAML from 'yaml';
import { loadConfigMaps, poolResources, poolsFor, withoutMinRates, withoutPfSide } from '../../../demo/configmaps';
import { RegistrationIndex } from '../../../src/registrations/index';
import { PoolSchema, PoolsConfigSchema } from '../../../src/schemas/device-pools';

const REPO = path.resolve(__dirname, '../../..');
const cms = loadConfigMaps(REPO);
const entries = (cm: { data?: Record<string, string> }) =>
  Object.fromEntries(Object.entries(cm.data ?? {}).map(([k, v]) => [k, YAML.parse(v) as Record<string, unknown>]));

describe('configmaps/ is self-consistent', () => {
  it('every network names a pool of device-plugin-pools.yaml', () => {
    const pools = poolResources(cms.pools.data!['pools.yaml']!);
    const named = Object.values(entries(cms.networks)).map((n) => n.resourceName);
    expect(named.length).toBeGreaterThan(0);
    for (const r of named) expect(pools).toContain(r);
  });

  it('the pools config is valid, every pool', () => {
    const doc = PoolsConfigSchema.parse(YAML.parse(cms.pools.data!['pools.yaml']!)) as { resourceList: unknown[] };
    for (const pool of doc.resourceList) expect(PoolSchema.safeParse(pool).error).toBeUndefined();
  });
});

describe('demo derivations', () => {
  it('host mode drops exactly the PF-side fields and keeps IPs, MACs, MTUs', () => {
    const d = withoutPfSide(cms);
    const nets = entries(d.networks);
    const regs = entries(d.registrations);
    for (const n of Object.values(nets)) for (const f of ['vlan', 'vlanQoS', 'vlanProto', 'qos', 'spoofchk', 'trust']) expect(n).not.toHaveProperty(f);
    for (const r of Object.values(regs)) expect(r).not.toHaveProperty('qos');
    const orig = entries(cms.registrations);
    expect(regs['app-b']!.mac).toBe(orig['app-b']!.mac);
    expect(regs['app-b']!.ip).toEqual(orig['app-b']!.ip);
    expect(regs['app-c']!.mtu).toBe(1400);
    expect(entries(d.networks).vlan100!.subnet).toBe('10.100.0.0/24');
    expect(d.note).toMatch(/vlan, qos, spoofchk, trust/);
    // The originals are untouched.
    expect(entries(cms.networks).vlan100!.vlan).toBe(100);
  });

  it('VM mode drops only min rates', () => {
    const d = withoutMinRates(cms);
    expect(entries(d.registrations)['app-a']!.qos).toEqual({ maxTxRateMbps: 300 });
    expect(entries(d.networks).vlan100!.vlan).toBe(100);
    expect(entries(d.networks).vlan100!.qos).toEqual({ maxTxRateMbps: 1000 });
    expect(d.note).toMatch(/min_tx_rate/);
  });

  it('derived ConfigMaps still resolve every demo pod, with its registered IPs', () => {
    for (const d of [withoutPfSide(cms), withoutMinRates(cms)]) {
      const idx = new RegistrationIndex();
      idx.replaceAll([d.networks, d.registrations]);
      const a = idx.lookup('demo', 'app-b');
      expect(a.kind === 'resolved' && a.settings.ips).toEqual(['10.100.0.12/24', 'fd00:100::12/64']);
      expect(idx.allRejections()).toEqual([]);
    }
  });

  it('pool selectors are renamed to this machine, ranges kept', () => {
    const p = poolsFor(cms, { pfNames: { ens1f0: 'dm1p0' }, rootDevices: { '0000:01:00.1': '0000:00:02.0#4-5' } });
    const doc = YAML.parse(p.text) as { resourceList: Array<{ resourceName: string; selectors: { pfNames?: string[]; rootDevices?: string[] } }> };
    const by = Object.fromEntries(doc.resourceList.map((r) => [r.resourceName, r.selectors]));
    expect(by['fabric-a']!.pfNames).toEqual(['dm1p0#0-3']);
    expect(by['fabric-b']!.rootDevices).toEqual(['0000:00:02.0#4-5']);
    expect(by.dpdk!.pfNames).toEqual(['dm1p0#4-7']);
    expect(p.changes).toContain('ens1f0#0-3 → dm1p0#0-3');
  });
});
