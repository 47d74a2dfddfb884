import { describe, expect, it } from 'vitest';
import { describeIssues } from '../../src/schemas/format';
import { netconfSchema } from '../../src/schemas/netconf';

const base = { cniVersion: '1.0.0', name: 'sriov-net', type: 'sriov-underlay' };

function errorOf(conf: Record<string, unknown>): string {
  const r = netconfSchema.safeParse(conf);
  if (r.success) throw new Error(`expected ${JSON.stringify(conf)} to be rejected`);
  return describeIssues('netconf "sriov-net"', r.error.issues);
}

describe('netconf schema', () => {
  it('accepts every sriov-cni field and keeps unknown keys', () => {
    const conf = {
      ...base,
      deviceID: '0000:81:10.2',
      vlan: 100,
      vlanQoS: 3,
      vlanProto: '802.1AD',
      mac: '02:00:00:aa:bb:cc',
      spoofchk: 'on',
      trust: 'off',
      link_state: 'auto',
      min_tx_rate: 10,
      max_tx_rate: 100,
      logLevel: 'debug',
      logFile: '/tmp/x.log',
      mtu: 9000,
      ipam: { type: 'host-local', subnet: '10.0.0.0/24' },
      runtimeConfig: { mac: '02:00:00:00:00:01' },
      somethingNew: { x: 1 },
    };
    const r = netconfSchema.parse(conf);
    expect(r.vlanProto).toBe('802.1ad');
    expect((r as Record<string, unknown>).somethingNew).toEqual({ x: 1 });
    expect(r.ipam).toEqual({ type: 'host-local', subnet: '10.0.0.0/24' });
  });

  it.each([
    [{ vlan: 4095 }, 'vlan'],
    [{ vlan: -1 }, 'vlan'],
    [{ vlan: 1.5 }, 'vlan'],
    [{ vlan: 10, vlanQoS: 8 }, 'vlanQoS'],
    [{ vlanQoS: 2 }, 'vlanQoS'],
    [{ vlan: 0, vlanQoS: 2 }, 'vlanQoS'],
    [{ vlan: 10, vlanProto: '802.1x' }, 'vlanProto'],
    [{ vlanProto: '802.1ad' }, 'vlanProto'],
    [{ min_tx_rate: 200, max_tx_rate: 100 }, 'min_tx_rate'],
    [{ mac: '02:00:00:aa:bb' }, 'mac'],
    [{ spoofchk: true }, 'spoofchk'],
    [{ deviceID: '81:10.2' }, 'deviceID'],
    [{ mtu: 10 }, 'mtu'],
    [{ stateDir: 'relative/dir' }, 'stateDir'],
    [{ ipam: { subnet: 'x' } }, 'ipam.type'],
    [{ runtimeConfig: { mac: 'nope' } }, 'runtimeConfig.mac'],
  ])('rejects %j naming the field', (extra, field) => {
    expect(errorOf({ ...base, ...extra })).toContain(`field "${field}"`);
  });

  it('allows min_tx_rate with max_tx_rate 0 (0 means no limit) and 802.1q without a vlan', () => {
    expect(netconfSchema.safeParse({ ...base, min_tx_rate: 50, max_tx_rate: 0 }).success).toBe(true);
    expect(netconfSchema.safeParse({ ...base, vlanProto: '802.1Q' }).success).toBe(true);
  });
});
