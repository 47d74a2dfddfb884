import { describe, expect, it } from 'vitest';
import { describeIssues } from '../../src/schemas/format';
import { netconfSchema, type NetConf } from '../../src/schemas/netconf';
import { EXTRA_PREFIXES_ENV, netconfPathIssues } from '../../cni/context';

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
    [{ stateDir: '/var/lib/cni/sriov-underlay/' }, 'stateDir'],
    [{ stateDir: '/var/lib/cni//sriov-underlay' }, 'stateDir'],
    [{ sysfsRoot: '/sys/./bus' }, 'sysfsRoot'],
    [{ logFile: '/var/log/sriov-underlay/../../../etc/passwd' }, 'logFile'],
    [{ releaseQueueDir: '/var/lib/sriov-underlay/release-queue/..' }, 'releaseQueueDir'],
    [{ ipam: { type: '/usr/bin/evil' } }, 'ipam.type'],
    [{ ipam: { type: '..' } }, 'ipam.type'],
    [{ ipam: { type: 'a..b' } }, 'ipam.type'],
    [{ ipam: { type: '.hidden' } }, 'ipam.type'],
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

describe('netconf path prefixes', () => {
  const conf = (extra: Record<string, unknown>) => netconfSchema.parse({ ...base, ...extra }) as NetConf;
  const fields = (c: NetConf, env: NodeJS.ProcessEnv = {}) => netconfPathIssues(c, env).map((i) => i.path.join('.'));

  it('accepts the defaults and paths below them with no environment', () => {
    const c = conf({
      stateDir: '/var/lib/cni/sriov-underlay',
      sysfsRoot: '/sys',
      releaseQueueDir: '/var/lib/sriov-underlay/release-queue/n1',
      logFile: '/var/log/sriov-underlay/cni.log',
    });
    expect(fields(c)).toEqual([]);
    expect(fields(conf({ logFile: '' }))).toEqual([]);
  });

  it('refuses a sibling that merely starts with the prefix, and the log dir itself as the log file', () => {
    expect(fields(conf({ stateDir: '/var/lib/cni/sriov-underlay-evil', sysfsRoot: '/sysfs', logFile: '/var/log/sriov-underlay' }))).toEqual([
      'sysfsRoot',
      'stateDir',
      'logFile',
    ]);
  });

  it('takes more prefixes only from the environment, and only well-formed ones', () => {
    const c = conf({ stateDir: '/srv/x/state', sysfsRoot: '/srv/x/sys' });
    expect(fields(c)).toEqual(['sysfsRoot', 'stateDir']);
    expect(fields(c, { [EXTRA_PREFIXES_ENV]: '/srv/x' })).toEqual([]);
    expect(fields(c, { [EXTRA_PREFIXES_ENV]: 'srv/x:/srv/x/:/srv/../srv/x:/srv/xy' })).toEqual(['sysfsRoot', 'stateDir']);
  });
});
