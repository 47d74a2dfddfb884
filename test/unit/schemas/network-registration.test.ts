import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { networkSchema } from '../../../src/schemas/network';
import { registrationSchema } from '../../../src/schemas/registration';
import { describeIssues } from '../../../src/schemas/format';
import { VLAN100 } from '../registrations/fixtures';

function netIssues(yaml: string): string[] {
  const r = networkSchema.safeParse(parse(yaml));
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}
function regIssues(yaml: string): string[] {
  const r = registrationSchema.safeParse(parse(yaml));
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('network schema', () => {
  it('accepts the dual-stack example and fills defaults', () => {
    const r = networkSchema.safeParse(parse(VLAN100));
    expect(r.success).toBe(true);
    expect(r.data?.cooldownSeconds).toBe(600);
    expect(r.data?.duplicateDetection).toBe(true);
  });

  it.each([
    ['vlan: 4095\nsubnet: 10.0.0.0/24\nresourceName: a/b', 'vlan: Too big'],
    ['vlan: 1\nresourceName: a/b', 'subnet: a network needs "subnet" (IPv4), "subnet6" (IPv6) or both'],
    ['vlan: 1\nsubnet: fd00::/64\nresourceName: a/b', 'subnet: must be an IPv4 CIDR'],
    ['vlan: 1\nsubnet: 10.0.0.0/24\ngateway: 10.0.1.1\nresourceName: a/b', 'gateway: 10.0.1.1 is not inside the subnet 10.0.0.0/24'],
    ['vlan: 1\nsubnet: 10.0.0.0/24\ngateway: 10.0.0.255\nresourceName: a/b', 'gateway: 10.0.0.255 is the broadcast address'],
    ['vlan: 1\nsubnet: 10.0.0.0/24\ngateway6: fd00::1\nresourceName: a/b', 'gateway6: needs "subnet6"'],
    ['vlan: 1\nsubnet: 10.0.0.0/24\nresourceName: nope', 'resourceName: must be an extended resource name'],
    ['vlan: 1\nsubnet: 10.0.0.0/24\nresourceName: a/b\nroutes: [{dst: 10.9.0.0/16}]', 'routes.0.gw: is required when the network has no gateway'],
    ['vlan: 1\nsubnet: 10.0.0.0/24\nresourceName: a/b\nroutes: [{dst: 10.9.0.0/16, gw: 10.1.0.1}]', 'routes.0.gw: is not inside subnet'],
    ['vlan: 1\nsubnet: 10.0.0.0/24\nresourceName: a/b\nqos: {minTxRateMbps: 200, maxTxRateMbps: 100}', 'qos.minTxRateMbps: must not exceed maxTxRateMbps (100)'],
    ['vlan: 1\nsubnet: 10.0.0.0/24\nresourceName: a/b\nvlanId: 3', 'Unrecognized key: "vlanId"'],
    ['vlan: 0\nsubnet: 10.0.0.0/24\nresourceName: a/b\nvlanQoS: 3', 'vlanQoS: requires a non-zero "vlan"'],
    ['vlan: 1\nsubnet6: fd00::/64\nresourceName: a/b\nmtu: 1000', 'mtu: must be at least 1280'],
  ])('rejects %j', (yaml, want) => {
    expect(netIssues(yaml).join(' | ')).toContain(want);
  });

  describe('pools', () => {
    const base = 'vlan: 1\nsubnet: 10.0.0.0/24\ngateway: 10.0.0.1\nresourceName: a/b\n';
    it('rejects overlapping ranges, naming both', () => {
      expect(netIssues(base + 'ranges: [10.0.0.10-10.0.0.20, 10.0.0.15-10.0.0.30]')).toContain('ranges.1: overlaps ranges.0 (10.0.0.10-10.0.0.20)');
    });
    it('rejects a range outside the subnet', () => {
      expect(netIssues(base + 'ranges: [10.0.1.10-10.0.1.20]')).toContain('ranges.0: is not inside the subnet 10.0.0.0/24');
    });
    it('rejects an exclude that covers everything, and one that excludes nothing', () => {
      expect(netIssues(base + 'ranges: [10.0.0.10-10.0.0.20]\nexclude: [10.0.0.0/27]')).toContain('exclude: leaves no usable IPv4 address in "ranges"');
      expect(netIssues(base + 'ranges: [10.0.0.10-10.0.0.20]\nexclude: [10.0.0.99]')).toContain('exclude.0: excludes nothing: it is outside every range');
    });
    it('counts the gateway and broadcast as unusable', () => {
      expect(netIssues(base + 'ranges: [10.0.0.1]')).toContain('exclude: leaves no usable IPv4 address in "ranges"');
      expect(netIssues(base + 'ranges: [10.0.0.1-10.0.0.2]')).toEqual([]);
    });
    it('rejects an IPv6 range on an IPv4-only network', () => {
      expect(netIssues(base + 'ranges: [fd00::1-fd00::9]')).toContain('ranges.0: is IPv6 but the network has no IPv6 subnet');
    });
  });
});

describe('registration schema', () => {
  it.each([
    'network: vlan100\nip: 10.100.0.11',
    'network: vlan100\nip: [10.100.0.11, fd00:100::11]',
    'network: vlan100\nips: [10.100.0.21, 10.100.0.22]\nips6: [fd00:100::21, fd00:100::22]\nreplicas: 2',
    'pool: vlan100\nreserve: true',
    'network: vlan100\nip: 10.100.0.11\nmac: 02:00:00:aa:bb:cc\nqos: {maxTxRateMbps: 500}\nmtu: 1500\nroutes: [{dst: 10.9.0.0/16}]',
  ])('accepts %j', (yaml) => {
    expect(regIssues(yaml)).toEqual([]);
  });

  it.each([
    ['network: vlan100', 'ip: one of "ip", "ips"/"ips6" or "pool" is required'],
    ['ip: 10.100.0.11', 'network: is required (or name the network with "pool")'],
    ['network: vlan100\nip: 10.100.0.11\npool: vlan100', 'pool: cannot be combined with "ip"'],
    ['network: vlan100\nip: 10.100.0.300', 'ip: must be an IPv4 or IPv6 address'],
    ['network: vlan100\nip: [10.100.0.11, 10.100.0.12]', 'ip.1: is IPv4 like ip.0'],
    ['network: vlan100\nips: [10.100.0.21, 10.100.0.21]', 'ips.1: repeats ips.0'],
    ['network: vlan100\nips: [fd00::1]', 'ips.0: must be an IPv4 address'],
    ['network: vlan100\nips: [10.100.0.21]\nreplicas: 3', 'ips: lists 1 addresses but replicas is 3'],
    ['network: vlan100\nips: [10.100.0.21, 10.100.0.22]\nips6: [fd00::1]', 'ips6: lists 1 addresses but ips lists 2'],
    ['network: vlan100\nips: [10.100.0.21]\nmac: 02:00:00:00:00:01', 'mac: cannot be shared'],
    ['network: vlan100\nip: 10.100.0.11\nmac: 01:00:5e:00:00:01', 'mac: must be a unicast MAC'],
    ['network: vlan100\nip: 10.100.0.11\nmac: 0200.00aa.bbcc', 'mac: must be a MAC address'],
    ['network: vlan100\nip: 10.100.0.11\nqos: {minTxRateMbps: 9, maxTxRateMbps: 5}', 'qos.minTxRateMbps: must not exceed'],
    ['network: vlan100\nip: 10.100.0.11\nreserve: true', 'reserve: only applies with "pool"'],
    ['network: VLAN_100\nip: 10.100.0.11', 'network: must be a DNS label'],
    ['network: vlan100\npool: vlan200', 'pool: names network "vlan200" but "network" is "vlan100"'],
    ['network: vlan100\nip: 10.100.0.11\nqoss: {}', 'Unrecognized key: "qoss"'],
  ])('rejects %j', (yaml, want) => {
    expect(regIssues(yaml).join(' | ')).toContain(want);
  });

  it('reports with the object label, key and field via describeIssues', () => {
    const r = registrationSchema.safeParse(parse('network: vlan100\nip: 10.100.0.11\nvlan: 5000'));
    expect(r.success).toBe(false);
    expect(describeIssues('configmap db/mysql-net key "mysql-0"', r.error!.issues)).toMatch(
      /^configmap db\/mysql-net key "mysql-0": field "vlan": Too big/,
    );
  });
});
