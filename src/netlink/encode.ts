/**
 * Pure rtnetlink request encoders. Each returns one complete message (nlmsg_seq and nlmsg_pid 0;
 * the socket stamps the sequence number). The byte layout and attribute order follow iproute2 so
 * the golden vectors in test/unit/netlink/golden compare byte for byte.
 *
 * Encoders write into a MsgWriter; Rtnl reuses one per socket so a request costs no buffer
 * allocation. Without a writer argument a fresh one is used (tests, one-off callers).
 */
import * as C from './constants';
import { parseCidr, parseIp, parseMac, type Family } from './addr';
import { CniCode, UnderlayError } from '../errors';

const U32_MAX = 0xffffffff;

/** Numbers go into fixed-width fields: refuse what would wrap, naming the field. */
function uint(field: string, v: number, max = U32_MAX): number {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new UnderlayError(CniCode.InvalidNetworkConfig, `netlink: ${field} must be an integer in 0..${max}, got ${v}`);
  }
  return v;
}

export class MsgWriter {
  buf: Buffer;
  len = 0;

  constructor(size = 512) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(bigger, 0, 0, this.len);
    this.buf = bigger;
  }

  /** Start a message: nlmsghdr with seq and pid 0; nlmsg_len is set by finish(). */
  begin(type: number, flags: number): this {
    this.len = 0;
    this.zero(C.NLMSG_HDRLEN);
    this.buf.writeUInt16LE(type, 4);
    this.buf.writeUInt16LE(flags, 6);
    return this;
  }

  zero(n: number): this {
    this.ensure(n);
    this.buf.fill(0, this.len, this.len + n);
    this.len += n;
    return this;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.len++] = v;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16LE(v, this.len);
    this.len += 2;
    return this;
  }

  u16be(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.len);
    this.len += 2;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.len);
    this.len += 4;
    return this;
  }

  i32(v: number): this {
    this.ensure(4);
    this.buf.writeInt32LE(v, this.len);
    this.len += 4;
    return this;
  }

  bytes(b: Buffer): this {
    this.ensure(b.length);
    b.copy(this.buf, this.len);
    this.len += b.length;
    return this;
  }

  private pad(): void {
    const p = (4 - (this.len & 3)) & 3;
    if (p) this.zero(p);
  }

  /** Open an attribute (or nest); close it with end(). */
  start(type: number): number {
    this.pad();
    const at = this.len;
    this.zero(4);
    this.buf.writeUInt16LE(type, at + 2);
    return at;
  }

  end(at: number): this {
    this.buf.writeUInt16LE(this.len - at, at);
    this.pad();
    return this;
  }

  attrU32(type: number, v: number): this {
    const at = this.start(type);
    this.u32(v);
    return this.end(at);
  }

  attrBytes(type: number, b: Buffer): this {
    const at = this.start(type);
    this.bytes(b);
    return this.end(at);
  }

  /** NUL-terminated string attribute (IFLA_IFNAME, IFLA_ALT_IFNAME). */
  attrString(type: number, s: string): this {
    const at = this.start(type);
    const n = Buffer.byteLength(s);
    this.ensure(n + 1);
    this.buf.write(s, this.len, 'utf8');
    this.len += n;
    this.u8(0);
    return this.end(at);
  }

  /** Set nlmsg_len and return a view of the message (valid until the writer is reused). */
  finish(): Buffer {
    this.pad();
    this.buf.writeUInt32LE(this.len, 0);
    return this.buf.subarray(0, this.len);
  }
}

const REQ_ACK = C.NLM_F_REQUEST | C.NLM_F_ACK;
const REQ_CREATE = REQ_ACK | C.NLM_F_CREATE | C.NLM_F_EXCL;

function ifinfomsg(w: MsgWriter, index: number, flags = 0, change = 0): void {
  w.u8(C.AF_UNSPEC).u8(0).u16(0).i32(index).u32(flags).u32(change);
}

// ---- links ----

/** RTM_GETLINK for one link by index or name, asking for the VF table when vfs is set. */
export function encodeGetLink(key: string | number, vfs = false, w = new MsgWriter()): Buffer {
  w.begin(C.RTM_GETLINK, REQ_ACK);
  ifinfomsg(w, typeof key === 'number' ? key : 0);
  if (typeof key === 'string') {
    // Names longer than IFNAMSIZ-1 can only be altnames.
    w.attrString(key.length > 15 ? C.IFLA_ALT_IFNAME : C.IFLA_IFNAME, key);
  }
  w.attrU32(C.IFLA_EXT_MASK, (vfs ? C.RTEXT_FILTER_VF : 0) | C.RTEXT_FILTER_SKIP_STATS);
  return w.finish();
}

export function encodeDumpLinks(vfs = false, w = new MsgWriter()): Buffer {
  w.begin(C.RTM_GETLINK, C.NLM_F_REQUEST | C.NLM_F_DUMP);
  ifinfomsg(w, 0);
  w.attrU32(C.IFLA_EXT_MASK, (vfs ? C.RTEXT_FILTER_VF : 0) | C.RTEXT_FILTER_SKIP_STATS);
  return w.finish();
}

export interface LinkPatch {
  name?: string;
  mac?: string;
  mtu?: number;
  up?: boolean;
  /** move into the netns behind this fd; with `name`, moved and renamed in one request */
  netnsFd?: number;
}

/** One RTM_NEWLINK carrying every field of the patch (iproute2 order: netns, name, address, mtu). */
export function encodeSetLink(index: number, patch: LinkPatch, w = new MsgWriter()): Buffer {
  uint('ifindex', index, 0x7fffffff);
  if (patch.mtu !== undefined) uint('mtu', patch.mtu);
  if (patch.netnsFd !== undefined) uint('netnsFd', patch.netnsFd, 0x7fffffff);
  w.begin(C.RTM_NEWLINK, REQ_ACK);
  const up = patch.up === undefined ? 0 : C.IFF_UP;
  ifinfomsg(w, index, patch.up ? C.IFF_UP : 0, up);
  if (patch.netnsFd !== undefined) w.attrU32(C.IFLA_NET_NS_FD, patch.netnsFd);
  if (patch.name !== undefined) w.attrString(C.IFLA_IFNAME, patch.name);
  if (patch.mac !== undefined) w.attrBytes(C.IFLA_ADDRESS, parseMac(patch.mac));
  if (patch.mtu !== undefined) w.attrU32(C.IFLA_MTU, patch.mtu);
  return w.finish();
}

/** RTM_NEWLINKPROP / RTM_DELLINKPROP with IFLA_PROP_LIST > IFLA_ALT_IFNAME. */
export function encodeAltname(op: 'add' | 'del', index: number, name: string, w = new MsgWriter()): Buffer {
  if (op === 'add') w.begin(C.RTM_NEWLINKPROP, REQ_CREATE | C.NLM_F_APPEND);
  else w.begin(C.RTM_DELLINKPROP, REQ_ACK);
  ifinfomsg(w, index);
  const list = w.start(C.IFLA_PROP_LIST | C.NLA_F_NESTED);
  w.attrString(C.IFLA_ALT_IFNAME, name);
  w.end(list);
  return w.finish();
}

// ---- VF settings on the PF: RTM_NEWLINK > IFLA_VFINFO_LIST > IFLA_VF_INFO > one attribute ----

function vfRequest(w: MsgWriter, pfIndex: number, body: () => void): Buffer {
  uint('PF ifindex', pfIndex, 0x7fffffff);
  w.begin(C.RTM_NEWLINK, REQ_ACK);
  ifinfomsg(w, pfIndex);
  const list = w.start(C.IFLA_VFINFO_LIST);
  const info = w.start(C.IFLA_VF_INFO);
  body();
  w.end(info);
  w.end(list);
  return w.finish();
}

export function encodeSetVfMac(pfIndex: number, vf: number, mac: string, w = new MsgWriter()): Buffer {
  const bytes = parseMac(mac);
  uint('vf', vf);
  return vfRequest(w, pfIndex, () => {
    const at = w.start(C.IFLA_VF_MAC);
    w.u32(vf).bytes(bytes).zero(C.IFLA_VF_MAC_LEN - bytes.length);
    w.end(at);
  });
}

export type VlanProto = '802.1Q' | '802.1ad';

/** 802.1Q goes as IFLA_VF_VLAN; 802.1ad needs IFLA_VF_VLAN_LIST (what iproute2 sends). */
export function encodeSetVfVlan(
  pfIndex: number,
  vf: number,
  vlan: number,
  qos = 0,
  proto: VlanProto = '802.1Q',
  w = new MsgWriter(),
): Buffer {
  uint('vf', vf);
  uint('vlan', vlan, 4095);
  uint('qos', qos, 7);
  // netconfs spell it 802.1q; accept either case, refuse anything else (never guess 802.1ad)
  const p = String(proto).toLowerCase();
  if (p !== '802.1q' && p !== '802.1ad') {
    throw new UnderlayError(CniCode.InvalidNetworkConfig, `netlink: vlan protocol must be 802.1Q or 802.1ad, got ${String(proto)}`);
  }
  return vfRequest(w, pfIndex, () => {
    if (p === '802.1q') {
      const at = w.start(C.IFLA_VF_VLAN);
      w.u32(vf).u32(vlan).u32(qos);
      w.end(at);
    } else {
      const list = w.start(C.IFLA_VF_VLAN_LIST);
      const at = w.start(C.IFLA_VF_VLAN_INFO);
      w.u32(vf).u32(vlan).u32(qos).u16be(C.ETH_P_8021AD).zero(2);
      w.end(at);
      w.end(list);
    }
  });
}

function vfFlag(type: number, pfIndex: number, vf: number, value: number, w: MsgWriter): Buffer {
  uint('vf', vf);
  return vfRequest(w, pfIndex, () => {
    const at = w.start(type);
    w.u32(vf).u32(value);
    w.end(at);
  });
}

export function encodeSetVfSpoofchk(pfIndex: number, vf: number, on: boolean, w = new MsgWriter()): Buffer {
  return vfFlag(C.IFLA_VF_SPOOFCHK, pfIndex, vf, on ? 1 : 0, w);
}

export function encodeSetVfTrust(pfIndex: number, vf: number, on: boolean, w = new MsgWriter()): Buffer {
  return vfFlag(C.IFLA_VF_TRUST, pfIndex, vf, on ? 1 : 0, w);
}

export type VfLinkState = 'auto' | 'enable' | 'disable';
export const VF_LINK_STATES: readonly VfLinkState[] = ['auto', 'enable', 'disable'];

export function encodeSetVfLinkState(pfIndex: number, vf: number, state: VfLinkState, w = new MsgWriter()): Buffer {
  if (!VF_LINK_STATES.includes(state)) {
    throw new UnderlayError(CniCode.InvalidNetworkConfig, `netlink: VF link state must be auto, enable or disable, got ${String(state)}`);
  }
  return vfFlag(C.IFLA_VF_LINK_STATE, pfIndex, vf, VF_LINK_STATES.indexOf(state), w);
}

/** IFLA_VF_RATE carries both rates (Mbps); 0 means no limit. */
export function encodeSetVfRate(pfIndex: number, vf: number, minTxRate: number, maxTxRate: number, w = new MsgWriter()): Buffer {
  uint('vf', vf);
  uint('min_tx_rate', minTxRate);
  uint('max_tx_rate', maxTxRate);
  return vfRequest(w, pfIndex, () => {
    const at = w.start(C.IFLA_VF_RATE);
    w.u32(vf).u32(minTxRate).u32(maxTxRate);
    w.end(at);
  });
}

// ---- addresses ----

export interface AddrOptions {
  /** IPv6: skip duplicate address detection (IFA_F_NODAD) */
  nodad?: boolean;
}

/** RTM_NEWADDR / RTM_DELADDR with IFA_LOCAL then IFA_ADDRESS, as iproute2 sends them. */
export function encodeAddr(op: 'add' | 'del', index: number, cidr: string, opts: AddrOptions = {}, w = new MsgWriter()): Buffer {
  const c = parseCidr(cidr);
  uint('ifindex', index, 0x7fffffff);
  w.begin(op === 'add' ? C.RTM_NEWADDR : C.RTM_DELADDR, op === 'add' ? REQ_CREATE : REQ_ACK);
  const loopback = c.family === 4 ? c.bytes[0] === 127 : c.bytes.subarray(0, 15).every((b) => b === 0) && c.bytes[15] === 1;
  w.u8(c.family === 4 ? C.AF_INET : C.AF_INET6)
    .u8(c.prefix)
    .u8(opts.nodad ? C.IFA_F_NODAD : 0)
    .u8(loopback ? C.RT_SCOPE_HOST : C.RT_SCOPE_UNIVERSE)
    .u32(index);
  w.attrBytes(C.IFA_LOCAL, c.bytes);
  w.attrBytes(C.IFA_ADDRESS, c.bytes);
  return w.finish();
}

export function encodeDumpAddrs(family: Family | undefined, w = new MsgWriter()): Buffer {
  w.begin(C.RTM_GETADDR, C.NLM_F_REQUEST | C.NLM_F_DUMP);
  w.u8(family === 4 ? C.AF_INET : family === 6 ? C.AF_INET6 : C.AF_UNSPEC).zero(7);
  return w.finish();
}

// ---- routes ----

export interface RouteSpec {
  /** 'default' or a CIDR */
  dst: string;
  gw?: string;
  /** output interface */
  index?: number;
  /** needed only for dst 'default' without gw */
  family?: Family;
  table?: number;
  metric?: number;
  /** gateway is on the link even if no address covers it */
  onlink?: boolean;
}

/**
 * Destination bytes as iproute2 sends them: a CIDR always goes as RTA_DST (0.0.0.0/0 included);
 * 'default' goes without RTA_DST unless the family was given (`ip -6 route add default` sends ::/0).
 */
function routeDst(r: RouteSpec): { family: Family; dst: Buffer | null; prefix: number } {
  if (r.dst === 'default') {
    if (r.family !== undefined) return { family: r.family, dst: Buffer.alloc(r.family === 4 ? 4 : 16), prefix: 0 };
    const family = r.gw !== undefined ? parseIp(r.gw).family : 4;
    return { family, dst: null, prefix: 0 };
  }
  const c = parseCidr(r.dst);
  return { family: c.family, dst: c.bytes, prefix: c.prefix };
}

/**
 * RTM_NEWROUTE / RTM_DELROUTE, laid out as `ip route add DST via GW metric M table T dev IF
 * [onlink]`: attributes DST, GATEWAY, PRIORITY, TABLE, then OIF.
 */
export function encodeRoute(op: 'add' | 'del', r: RouteSpec, w = new MsgWriter()): Buffer {
  const { family, dst, prefix } = routeDst(r);
  const gw = r.gw !== undefined ? parseIp(r.gw) : undefined;
  const table = uint('table', r.table ?? C.RT_TABLE_MAIN);
  if (r.metric !== undefined) uint('metric', r.metric);
  if (r.index !== undefined) uint('ifindex', r.index, 0x7fffffff);
  const add = op === 'add';
  let scope: number;
  if (!add) scope = C.RT_SCOPE_NOWHERE;
  else scope = gw ? C.RT_SCOPE_UNIVERSE : C.RT_SCOPE_LINK;
  w.begin(add ? C.RTM_NEWROUTE : C.RTM_DELROUTE, add ? REQ_CREATE : REQ_ACK);
  w.u8(family === 4 ? C.AF_INET : C.AF_INET6)
    .u8(prefix)
    .u8(0) // src_len
    .u8(0) // tos
    .u8(table < 256 ? table : C.RT_TABLE_UNSPEC)
    .u8(add ? C.RTPROT_BOOT : 0)
    .u8(scope)
    .u8(add ? C.RTN_UNICAST : C.RTN_UNSPEC)
    .u32(r.onlink ? C.RTNH_F_ONLINK : 0);
  if (dst) w.attrBytes(C.RTA_DST, dst);
  if (gw) w.attrBytes(C.RTA_GATEWAY, gw.bytes);
  if (r.metric !== undefined) w.attrU32(C.RTA_PRIORITY, r.metric);
  if (table >= 256) w.attrU32(C.RTA_TABLE, table);
  if (r.index !== undefined) w.attrU32(C.RTA_OIF, r.index);
  return w.finish();
}

export function encodeDumpRoutes(family: Family | undefined, w = new MsgWriter()): Buffer {
  w.begin(C.RTM_GETROUTE, C.NLM_F_REQUEST | C.NLM_F_DUMP);
  w.u8(family === 4 ? C.AF_INET : family === 6 ? C.AF_INET6 : C.AF_UNSPEC).zero(11);
  return w.finish();
}
