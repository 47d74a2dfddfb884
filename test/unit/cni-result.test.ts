import { describe, expect, it } from 'vitest';
import { formatResult, parseResult, versionAtLeast } from '../../cni/result';

const internal = {
  interfaces: [{ name: 'net1', mac: '02:00:00:00:00:01', mtu: 1500, sandbox: '/var/run/netns/p', pciID: '0000:81:10.0' }],
  ips: [
    { address: '10.0.0.5/24', gateway: '10.0.0.1', interface: 0 },
    { address: 'fd00::5/64', interface: 0 },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '10.0.0.1', priority: 100 }],
  dns: {},
};

describe('CNI results', () => {
  it('renders 1.1.0 with mtu, pciID and route extras', () => {
    expect(formatResult(internal, '1.1.0')).toEqual({ cniVersion: '1.1.0', ...internal });
  });
  it('renders 1.0.0 without 1.1-only fields', () => {
    const r = formatResult(internal, '1.0.0') as { interfaces: object[]; routes: object[] };
    expect(r.interfaces[0]).toEqual({ name: 'net1', mac: '02:00:00:00:00:01', sandbox: '/var/run/netns/p' });
    expect(r.routes[0]).toEqual({ dst: '0.0.0.0/0', gw: '10.0.0.1' });
  });
  it('renders 0.3.1/0.4.0 ips with a version field', () => {
    const r = formatResult(internal, '0.4.0') as { ips: Array<Record<string, unknown>> };
    expect(r.ips.map((i) => i.version)).toEqual(['4', '6']);
  });
  it('parses what it renders, for every version', () => {
    for (const v of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
      const back = parseResult(formatResult(internal, v), 'x');
      expect(back.ips.map((i) => i.address)).toEqual(['10.0.0.5/24', 'fd00::5/64']);
      expect(back.interfaces[0]?.name).toBe('net1');
    }
  });
  it('rejects malformed results with a clear message', () => {
    expect(() => parseResult({ ips: [{ gateway: '1.2.3.4' }] }, 'IPAM plugin static result')).toThrow(/IPAM plugin static result: ip without an address/);
    expect(() => parseResult('x', 'prevResult')).toThrow(/prevResult is not a JSON object/);
  });
  it('compares versions numerically', () => {
    expect(versionAtLeast('0.10.0', '0.4.0')).toBe(true);
    expect(versionAtLeast('0.3.1', '0.4.0')).toBe(false);
    expect(versionAtLeast('1.1.0', '1.1.0')).toBe(true);
  });
});
