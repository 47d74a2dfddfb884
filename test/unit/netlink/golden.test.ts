import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  encodeAddr,
  encodeAltname,
  encodeRoute,
  encodeSetLink,
  encodeSetVfLinkState,
  encodeSetVfMac,
  encodeSetVfRate,
  encodeSetVfSpoofchk,
  encodeSetVfTrust,
  encodeSetVfVlan,
} from '../../../src/netlink/encode';

// Vectors made by scripts/gen-netlink-golden.sh: the exact bytes iproute2 sent.
interface Vector {
  name: string;
  command: string;
  ifindex: number;
  netnsFd?: number;
  hex: string;
}

const dir = path.join(__dirname, 'golden');
const vectors = new Map<string, Vector>(
  readdirSync(dir)
    .filter((f) => f.endsWith('.json') && !f.startsWith('reply-'))
    .map((f) => {
      const v = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Vector;
      return [v.name, v];
    }),
);

/** The message with nlmsg_seq and nlmsg_pid zeroed: the only fields that legitimately differ. */
function normalized(b: Buffer): string {
  const c = Buffer.from(b);
  c.fill(0, 8, 16);
  return c.toString('hex');
}

// name -> how our encoder builds the same request, given the vector (its ifindex, netns fd)
const cases: Record<string, (v: Vector) => Buffer> = {
  'vf-mac': (v) => encodeSetVfMac(v.ifindex, 0, '02:11:22:33:44:55'),
  'vf3-mac': (v) => encodeSetVfMac(v.ifindex, 3, '02:aa:bb:cc:dd:ee'),
  'vf-vlan': (v) => encodeSetVfVlan(v.ifindex, 0, 100),
  'vf-vlan-0': (v) => encodeSetVfVlan(v.ifindex, 0, 0),
  'vf-vlan-qos': (v) => encodeSetVfVlan(v.ifindex, 0, 100, 3),
  'vf-vlan-qos-8021ad': (v) => encodeSetVfVlan(v.ifindex, 0, 100, 3, '802.1ad'),
  'vf-vlan-8021q': (v) => encodeSetVfVlan(v.ifindex, 0, 4094, 7, '802.1Q'),
  'vf-spoofchk-on': (v) => encodeSetVfSpoofchk(v.ifindex, 0, true),
  'vf-spoofchk-off': (v) => encodeSetVfSpoofchk(v.ifindex, 0, false),
  'vf-trust-on': (v) => encodeSetVfTrust(v.ifindex, 0, true),
  'vf-trust-off': (v) => encodeSetVfTrust(v.ifindex, 0, false),
  'vf-state-auto': (v) => encodeSetVfLinkState(v.ifindex, 0, 'auto'),
  'vf-state-enable': (v) => encodeSetVfLinkState(v.ifindex, 0, 'enable'),
  'vf-state-disable': (v) => encodeSetVfLinkState(v.ifindex, 0, 'disable'),
  'vf-max-tx-rate': (v) => encodeSetVfRate(v.ifindex, 0, 0, 100),
  'vf-min-max-tx-rate': (v) => encodeSetVfRate(v.ifindex, 0, 10, 100),
  'link-mtu': (v) => encodeSetLink(v.ifindex, { mtu: 9000 }),
  'link-address': (v) => encodeSetLink(v.ifindex, { mac: '02:12:34:56:78:9a' }),
  'link-up': (v) => encodeSetLink(v.ifindex, { up: true }),
  'link-down': (v) => encodeSetLink(v.ifindex, { up: false }),
  'link-mac-mtu-up': (v) => encodeSetLink(v.ifindex, { mac: '02:12:34:56:78:9b', mtu: 1400, up: true }),
  'link-name': (v) => encodeSetLink(v.ifindex, { name: 'nlgRenamed' }),
  'link-netns': (v) => encodeSetLink(v.ifindex, { netnsFd: v.netnsFd as number }),
  'link-netns-name': (v) => encodeSetLink(v.ifindex, { netnsFd: v.netnsFd as number, name: 'eth1' }),
  'altname-add': (v) => encodeAltname('add', v.ifindex, 'nlgAlt0'),
  'altname-del': (v) => encodeAltname('del', v.ifindex, 'nlgAlt0'),
  'addr-add-v4': (v) => encodeAddr('add', v.ifindex, '10.1.2.3/24'),
  'addr-add-v6': (v) => encodeAddr('add', v.ifindex, '2001:db8::5/64'),
  'addr-add-v6-nodad': (v) => encodeAddr('add', v.ifindex, '2001:db8::6/64', { nodad: true }),
  'addr-del-v4': (v) => encodeAddr('del', v.ifindex, '10.1.2.3/24'),
  'addr-del-v6': (v) => encodeAddr('del', v.ifindex, '2001:db8::5/64'),
  'route-add-v4-gw': (v) => encodeRoute('add', { dst: '10.2.0.0/16', gw: '10.1.2.1', index: v.ifindex }),
  'route-add-v4-link': (v) => encodeRoute('add', { dst: '10.3.0.0/16', index: v.ifindex }),
  'route-add-v4-metric': (v) => encodeRoute('add', { dst: '10.5.0.0/16', gw: '10.1.2.1', metric: 100, index: v.ifindex }),
  'route-add-v4-table': (v) => encodeRoute('add', { dst: '10.6.0.0/16', gw: '10.1.2.1', table: 1000, index: v.ifindex }),
  'route-add-v4-onlink': (v) => encodeRoute('add', { dst: '10.4.0.0/16', gw: '10.9.9.9', index: v.ifindex, onlink: true }),
  'route-add-v6-gw': (v) => encodeRoute('add', { dst: '2001:db8:2::/48', gw: '2001:db8::1', index: v.ifindex }),
  'route-add-v4-default': (v) => encodeRoute('add', { dst: 'default', gw: '10.1.2.1', index: v.ifindex }),
  // `ip -6 route add default` names the family, and then iproute2 sends RTA_DST ::/0
  'route-add-v6-default': (v) => encodeRoute('add', { dst: 'default', family: 6, gw: '2001:db8::1', index: v.ifindex }),
  'route-add-v4-default-family': (v) =>
    encodeRoute('add', { dst: 'default', family: 4, gw: '10.1.2.1', index: v.ifindex }),
  'route-add-v4-zero-cidr': (v) => encodeRoute('add', { dst: '0.0.0.0/0', gw: '10.1.2.1', metric: 50, index: v.ifindex }),
  'route-del-v4-gw': (v) => encodeRoute('del', { dst: '10.2.0.0/16', gw: '10.1.2.1', index: v.ifindex }),
};

describe('encoders match iproute2 byte for byte', () => {
  it('every recorded vector has an encoder case and every case a vector', () => {
    expect([...vectors.keys()].sort()).toEqual(Object.keys(cases).sort());
  });

  for (const [name, build] of Object.entries(cases)) {
    it(name, () => {
      const v = vectors.get(name);
      expect(v, `missing golden vector ${name}`).toBeDefined();
      const golden = Buffer.from((v as Vector).hex, 'hex');
      expect(normalized(build(v as Vector))).toBe(normalized(golden));
    });
  }

  it('the move vectors carry the fd iproute2 opened', () => {
    expect(vectors.get('link-netns')?.netnsFd).toBeGreaterThan(2);
    expect(vectors.get('link-netns-name')?.netnsFd).toBeGreaterThan(2);
  });
});

describe('encoders refuse values that do not fit, naming the field', () => {
  const cases: [string, () => unknown, RegExp][] = [
    ['vlan 4096', () => encodeSetVfVlan(3, 0, 4096), /vlan must be an integer in 0\.\.4095, got 4096/],
    ['qos 8', () => encodeSetVfVlan(3, 0, 10, 8), /qos must be an integer in 0\.\.7/],
    ['bad proto', () => encodeSetVfVlan(3, 0, 10, 0, '802.1x' as never), /vlan protocol must be 802\.1Q or 802\.1ad, got 802\.1x/],
    ['negative vf', () => encodeSetVfSpoofchk(3, -1, true), /vf must be an integer/],
    ['fractional rate', () => encodeSetVfRate(3, 0, 1.5, 10), /min_tx_rate must be an integer/],
    ['rate too big', () => encodeSetVfRate(3, 0, 0, 2 ** 32), /max_tx_rate must be an integer/],
    ['bad state', () => encodeSetVfLinkState(3, 0, 'on' as never), /link state must be auto, enable or disable, got on/],
    ['mtu', () => encodeSetLink(3, { mtu: -1 }), /mtu must be an integer/],
    ['mac', () => encodeSetLink(3, { mac: '02:00:00:00:00' }), /invalid MAC address "02:00:00:00:00"/],
    ['metric', () => encodeRoute('add', { dst: '10.0.0.0/8', metric: NaN }), /metric must be an integer/],
    ['cidr', () => encodeAddr('add', 3, '10.0.0.1'), /invalid CIDR/],
  ];
  for (const [name, fn, msg] of cases) {
    it(name, () => expect(fn).toThrow(msg));
  }

  it('accepts the netconf spelling 802.1q as 802.1Q', () => {
    expect(encodeSetVfVlan(3, 0, 10, 1, '802.1q' as never).equals(encodeSetVfVlan(3, 0, 10, 1, '802.1Q'))).toBe(true);
  });
});
