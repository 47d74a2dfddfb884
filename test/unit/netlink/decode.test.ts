import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as C from '../../../src/netlink/constants';
import {
  decodeAddr,
  decodeError,
  decodeLink,
  decodeRoute,
  messages,
  type AddrInfo,
  type LinkInfo,
  type NlMsg,
  type RouteInfo,
} from '../../../src/netlink/decode';
import { MsgWriter, encodeAddr, encodeRoute, encodeSetLink } from '../../../src/netlink/encode';

// Real kernel replies captured by scripts/gen-netlink-golden.sh while its scratch veth had the
// state that script gave it (mtu 1400, address 02:12:34:56:78:9b, up, addresses and routes below).
interface Reply {
  name: string;
  command: string;
  replies: string[];
}
const dir = path.join(__dirname, 'golden');
const reply = (name: string): Reply => JSON.parse(readFileSync(path.join(dir, `reply-${name}.json`), 'utf8')) as Reply;
const ifindex = (JSON.parse(readFileSync(path.join(dir, 'link-mtu.json'), 'utf8')) as { ifindex: number }).ifindex;

function all<T>(r: Reply, type: number, decode: (b: Buffer, m: NlMsg) => T | null): T[] {
  const out: T[] = [];
  for (const hex of r.replies) {
    const buf = Buffer.from(hex, 'hex');
    for (const m of messages(buf)) {
      if (m.type !== type) continue;
      const v = decode(buf, m);
      if (v) out.push(v);
    }
  }
  return out;
}

describe('decoding real kernel replies', () => {
  it('link: the veth the script configured', () => {
    const r = reply('link');
    const devName = r.command.split(' ').pop() as string;
    const links = all<LinkInfo>(r, C.RTM_NEWLINK, decodeLink);
    const dev = links.find((l) => l.name === devName);
    expect(dev).toBeDefined();
    expect(dev).toMatchObject({ index: ifindex, mtu: 1400, mac: '02:12:34:56:78:9b', up: true, kind: 'veth', altnames: [] });
    // veth has no SR-IOV: no IFLA_VFINFO_LIST, so vfs stays undefined (not [])
    expect(dev?.vfs).toBeUndefined();
    // the peer is in the same netns and up, so carrier is on
    expect(dev?.carrier).toBe(true);
  });

  it('an error reply decodes to a positive errno', () => {
    const r = reply('link');
    const errs = all(r, C.NLMSG_ERROR, decodeError);
    expect(errs.length).toBeGreaterThan(0);
    for (const e of errs) expect(e.errno).toBeGreaterThan(0);
  });

  it('addresses: v4 and v6, with flags', () => {
    const addrs = all<AddrInfo>(reply('addr'), C.RTM_NEWADDR, decodeAddr).filter((a) => a.index === ifindex);
    const cidrs = addrs.map((a) => a.cidr);
    expect(cidrs).toEqual(expect.arrayContaining(['10.1.2.3/24', '2001:db8::5/64', '2001:db8::6/64']));
    expect(cidrs.some((c) => c.startsWith('fe80::'))).toBe(true);
    const nodad = addrs.find((a) => a.cidr === '2001:db8::6/64');
    expect(nodad && nodad.flags & C.IFA_F_NODAD).toBeTruthy();
    expect(nodad?.tentative).toBe(false);
    expect(addrs.find((a) => a.address === '10.1.2.3')).toMatchObject({ family: 4, prefixLen: 24, scope: 0 });
  });

  it('IPv4 routes: gateway, link scope, metric, onlink, other table, default', () => {
    const routes = all<RouteInfo>(reply('route4'), C.RTM_NEWROUTE, decodeRoute);
    const find = (dst: string) => routes.find((r) => r.dst === dst && r.index === ifindex);
    expect(find('10.2.0.0/16')).toMatchObject({ gw: '10.1.2.1', table: 254, protocol: C.RTPROT_BOOT, scope: 0 });
    expect(find('10.3.0.0/16')).toMatchObject({ scope: C.RT_SCOPE_LINK });
    expect(find('10.3.0.0/16')?.gw).toBeUndefined();
    expect(find('10.5.0.0/16')).toMatchObject({ metric: 100 });
    expect(find('10.4.0.0/16')).toMatchObject({ gw: '10.9.9.9', onlink: true });
    expect(find('10.6.0.0/16')).toMatchObject({ table: 1000 });
    expect(find('default')).toMatchObject({ gw: '10.1.2.1', family: 4 });
    // the kernel's own routes for the address (local table, prefsrc)
    expect(routes.some((r) => r.dst === '10.1.2.3/32' && r.table === 255)).toBe(true);
    expect(find('10.1.2.0/24')).toMatchObject({ prefsrc: '10.1.2.3', scope: C.RT_SCOPE_LINK });
  });

  it('IPv6 routes: gateway and default', () => {
    const routes = all<RouteInfo>(reply('route6'), C.RTM_NEWROUTE, decodeRoute);
    const find = (dst: string) => routes.find((r) => r.dst === dst && r.index === ifindex);
    expect(find('2001:db8:2::/48')).toMatchObject({ gw: '2001:db8::1', family: 6 });
    expect(find('default')).toMatchObject({ gw: '2001:db8::1', family: 6 });
    expect(find('2001:db8::/64')).toBeDefined();
  });
});

describe('round trips through our own encoders', () => {
  // A request and the kernel's notification share the message layout, so decoding what we encode
  // must give back what we asked for.
  const first = (buf: Buffer): NlMsg => messages(buf).next().value as NlMsg;

  it('address', () => {
    for (const cidr of ['192.0.2.7/25', '2001:db8:1:2::abcd/80', 'fe80::1/64']) {
      const b = encodeAddr('add', 9, cidr);
      expect(decodeAddr(b, first(b))).toMatchObject({ index: 9, cidr });
    }
  });

  it('route', () => {
    const spec = { dst: '198.51.100.0/24', gw: '192.0.2.1', index: 4, metric: 7, table: 1234, onlink: true };
    const b = encodeRoute('add', spec);
    expect(decodeRoute(b, first(b))).toMatchObject({ dst: spec.dst, gw: spec.gw, index: 4, metric: 7, table: 1234, onlink: true });
  });

  it('link name, mac and mtu', () => {
    const b = encodeSetLink(5, { name: 'eth7', mac: '0a:00:00:00:00:01', mtu: 1280, up: true });
    expect(decodeLink(b, first(b))).toMatchObject({ index: 5, name: 'eth7', mac: '0a:00:00:00:00:01', mtu: 1280, up: true });
  });
});

/**
 * A PF's RTM_NEWLINK with a VF table, laid out as the kernel's rtnl_fill_vfinfo() writes it
 * (struct layouts from include/uapi/linux/if_link.h), plus attributes we do not know.
 */
function pfWithVfs(): Buffer {
  const w = new MsgWriter();
  w.begin(C.RTM_NEWLINK, 0);
  w.u8(0).u8(0).u16(1).i32(4).u32(C.IFF_UP | C.IFF_LOWER_UP).u32(0);
  w.attrString(C.IFLA_IFNAME, 'ens1f0');
  w.attrBytes(C.IFLA_ADDRESS, Buffer.from('b49691000001', 'hex'));
  w.attrU32(C.IFLA_MTU, 9000);
  w.attrU32(C.IFLA_NUM_VF, 2);
  // As rtnl_fill_ifinfo() writes them for a PCI netdev (Linux 5.16+): NUL-terminated strings.
  w.attrString(C.IFLA_PARENT_DEV_NAME, '0000:3b:00.0');
  w.attrString(C.IFLA_PARENT_DEV_BUS_NAME, 'pci');
  w.attrU32(999, 0xdeadbeef); // unknown attribute: must be skipped
  const list = w.start(C.IFLA_VFINFO_LIST | C.NLA_F_NESTED);
  const vf = (n: number, o: { mac: string; vlan: number; qos: number; ad: boolean; spoof: number; trust: number; state: number; min: number; max: number }) => {
    const info = w.start(C.IFLA_VF_INFO | C.NLA_F_NESTED);
    let a = w.start(C.IFLA_VF_MAC);
    w.u32(n).bytes(Buffer.from(o.mac.replace(/:/g, ''), 'hex')).zero(26);
    w.end(a);
    a = w.start(C.IFLA_VF_VLAN);
    w.u32(n).u32(o.vlan).u32(o.qos);
    w.end(a);
    const vl = w.start(C.IFLA_VF_VLAN_LIST);
    a = w.start(C.IFLA_VF_VLAN_INFO);
    w.u32(n).u32(o.vlan).u32(o.qos).u16be(o.ad ? C.ETH_P_8021AD : C.ETH_P_8021Q).zero(2);
    w.end(a);
    w.end(vl);
    a = w.start(C.IFLA_VF_TX_RATE);
    w.u32(n).u32(o.max);
    w.end(a);
    a = w.start(C.IFLA_VF_RATE);
    w.u32(n).u32(o.min).u32(o.max);
    w.end(a);
    a = w.start(C.IFLA_VF_SPOOFCHK);
    w.u32(n).u32(o.spoof);
    w.end(a);
    a = w.start(C.IFLA_VF_LINK_STATE);
    w.u32(n).u32(o.state);
    w.end(a);
    a = w.start(7); // IFLA_VF_RSS_QUERY_EN: not decoded
    w.u32(n).u32(0xffffffff);
    w.end(a);
    a = w.start(C.IFLA_VF_TRUST);
    w.u32(n).u32(o.trust);
    w.end(a);
    w.end(info);
  };
  vf(0, { mac: '02:00:00:00:00:10', vlan: 100, qos: 3, ad: true, spoof: 1, trust: 0, state: 2, min: 10, max: 1000 });
  vf(1, { mac: '00:00:00:00:00:00', vlan: 0, qos: 0, ad: false, spoof: 0xffffffff, trust: 0xffffffff, state: 0, min: 0, max: 0 });
  w.end(list);
  w.attrU32(C.IFLA_OPERSTATE, C.IF_OPER_UP);
  return Buffer.from(w.finish());
}

describe('VF table decoding', () => {
  const buf = pfWithVfs();
  const link = decodeLink(buf, messages(buf).next().value as NlMsg) as LinkInfo;

  it('decodes every VF field', () => {
    expect(link).toMatchObject({ name: 'ens1f0', mtu: 9000, numVfs: 2, up: true, carrier: true, operUp: true, parentDev: '0000:3b:00.0', parentBus: 'pci' });
    expect(link.vfs).toEqual([
      { vf: 0, mac: '02:00:00:00:00:10', vlan: 100, qos: 3, vlanProto: '802.1ad', spoofchk: true, trust: false, linkState: 'disable', minTxRate: 10, maxTxRate: 1000 },
      // -1 means the driver did not report the setting
      { vf: 1, mac: '00:00:00:00:00:00', vlan: 0, qos: 0, vlanProto: '802.1Q', spoofchk: undefined, trust: undefined, linkState: 'auto', minTxRate: 0, maxTxRate: 0 },
    ]);
  });

  it('a truncated message does not throw and keeps what it could read', () => {
    for (let cut = 40; cut < buf.length; cut += 37) {
      const t = Buffer.from(buf.subarray(0, cut));
      t.writeUInt32LE(cut, 0);
      expect(() => decodeLink(t, messages(t).next().value as NlMsg)).not.toThrow();
    }
  });
});

describe('error replies', () => {
  it('reads the extack message after a capped request header', () => {
    const w = new MsgWriter();
    w.begin(C.NLMSG_ERROR, C.NLM_F_CAPPED | C.NLM_F_ACK_TLVS);
    w.i32(-22);
    w.u32(40).u16(C.RTM_NEWROUTE).u16(5).u32(7).u32(0); // the request's nlmsghdr
    w.attrString(C.NLMSGERR_ATTR_MSG, 'Invalid prefix for given prefix length');
    w.attrU32(2, 32); // NLMSGERR_ATTR_OFFS
    const b = w.finish();
    expect(decodeError(b, messages(b).next().value as NlMsg)).toEqual({ errno: 22, extack: 'Invalid prefix for given prefix length' });
  });
});

describe('decoders on malformed input', () => {
  const decoders = [decodeLink, decodeAddr, decodeRoute, decodeError];
  const decodeAll = (buf: Buffer) => {
    for (const m of messages(buf)) for (const d of decoders) d(buf, m);
  };

  it('random bytes never make a decoder throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 400 }), (bytes) => {
        // a plausible header so the body actually reaches the decoders
        const b = Buffer.alloc(16 + bytes.length);
        b.writeUInt32LE(b.length, 0);
        Buffer.from(bytes).copy(b, 16);
        expect(() => decodeAll(b)).not.toThrow();
      }),
      { numRuns: 1000 },
    );
  });

  it('an ACK whose embedded request length is corrupt (found by the fuzz below) decodes without throwing', () => {
    const b = Buffer.from('340000000200003e00000000033e0000edffffff2000008010000500000000000000000000000000000000000000000000000000', 'hex');
    expect(decodeError(b, messages(b).next().value as NlMsg)).toEqual({ errno: 19 });
  });

  it('real kernel replies with corrupted bytes never make a decoder throw', () => {
    const datagrams = ['link', 'addr', 'route4', 'route6'].flatMap((n) => reply(n).replies.map((h) => Buffer.from(h, 'hex')));
    fc.assert(
      fc.property(
        fc.constantFrom(...datagrams),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        (orig, flips) => {
          const b = Buffer.from(orig);
          for (const [at, v] of flips) b[at % b.length] = v;
          expect(() => decodeAll(b)).not.toThrow();
        },
      ),
      { numRuns: 1000 },
    );
  });
});
