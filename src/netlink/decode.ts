/**
 * Pure rtnetlink decoders. Unknown attributes are skipped, so newer kernels do not break them.
 * Offsets always refer to the datagram buffer the kernel returned (no copies).
 */
import * as C from './constants';
import { formatIp, formatMac, type Family } from './addr';
import { VF_LINK_STATES, type VfLinkState, type VlanProto } from './encode';

export interface VfInfo {
  vf: number;
  mac: string;
  vlan: number;
  qos: number;
  vlanProto: VlanProto;
  spoofchk: boolean | undefined;
  trust: boolean | undefined;
  linkState: VfLinkState | undefined;
  /** Mbps; 0 = no limit */
  minTxRate: number;
  maxTxRate: number;
}

export interface LinkInfo {
  index: number;
  name: string;
  mac: string;
  permMac?: string;
  /** The parent device (the VF's PCI address for a PCI netdev) and its bus ('pci'), from the
   * kernel (5.16+); stable across renames, MAC changes and netns moves. Absent on virtual links. */
  parentDev?: string;
  parentBus?: string;
  mtu: number;
  up: boolean;
  operUp: boolean;
  carrier: boolean;
  altnames: string[];
  kind?: string;
  /** undefined when the device reports no IFLA_VFINFO_LIST at all */
  vfs?: VfInfo[];
  /** number of VFs the device reports (IFLA_NUM_VF), when it reports it */
  numVfs?: number;
}

export interface AddrInfo {
  index: number;
  family: Family;
  /** address/prefix */
  cidr: string;
  address: string;
  prefixLen: number;
  /** IFA_F_* (full 32-bit set when the kernel sends IFA_FLAGS) */
  flags: number;
  scope: number;
  tentative: boolean;
  dadFailed: boolean;
}

export interface RouteInfo {
  family: Family;
  /** 'default' or a CIDR */
  dst: string;
  gw?: string;
  index?: number;
  table: number;
  metric?: number;
  prefsrc?: string;
  protocol: number;
  scope: number;
  type: number;
  onlink: boolean;
}

/** Header of one message inside a datagram. */
export interface NlMsg {
  len: number;
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** offset of the message (its nlmsghdr) in the buffer */
  off: number;
}

/** Split a datagram into its messages. */
export function* messages(buf: Buffer): Generator<NlMsg> {
  let off = 0;
  while (off + C.NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < C.NLMSG_HDRLEN || off + len > buf.length) return;
    yield {
      len,
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      off,
    };
    off += (len + 3) & ~3;
  }
}

/** Call fn(type, valueOffset, valueLength) for each attribute in [start, end). */
export function forEachAttr(buf: Buffer, start: number, end: number, fn: (type: number, off: number, len: number) => void): void {
  let off = start;
  while (off + 4 <= end) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > end) return;
    fn(buf.readUInt16LE(off + 2) & C.NLA_TYPE_MASK, off + 4, len - 4);
    off += (len + 3) & ~3;
  }
}

function cstring(buf: Buffer, off: number, len: number): string {
  let end = off;
  const max = off + len;
  while (end < max && buf[end] !== 0) end++;
  return buf.toString('utf8', off, end);
}

/** A u32 setting that drivers leave at -1 when they do not report it. */
function optionalBool(buf: Buffer, off: number): boolean | undefined {
  const v = buf.readUInt32LE(off);
  return v === 0xffffffff ? undefined : v !== 0;
}

function decodeVf(buf: Buffer, start: number, end: number, addrLen: number): VfInfo {
  const vf: VfInfo = {
    vf: -1,
    mac: '',
    vlan: 0,
    qos: 0,
    vlanProto: '802.1Q',
    spoofchk: undefined,
    trust: undefined,
    linkState: undefined,
    minTxRate: 0,
    maxTxRate: 0,
  };
  let haveRate = false;
  forEachAttr(buf, start, end, (type, off, len) => {
    switch (type) {
      case C.IFLA_VF_MAC:
        if (len >= 4 + addrLen) {
          vf.vf = buf.readUInt32LE(off);
          vf.mac = formatMac(buf, off + 4, addrLen);
        }
        break;
      case C.IFLA_VF_VLAN:
        if (len >= 12) {
          vf.vlan = buf.readUInt32LE(off + 4);
          vf.qos = buf.readUInt32LE(off + 8);
        }
        break;
      case C.IFLA_VF_VLAN_LIST:
        // Only the first entry: one VLAN per VF is all the netconf can express.
        forEachAttr(buf, off, off + len, (t, o, l) => {
          if (t !== C.IFLA_VF_VLAN_INFO || l < 14 || vf.vlanProto !== '802.1Q') return;
          vf.vlan = buf.readUInt32LE(o + 4);
          vf.qos = buf.readUInt32LE(o + 8);
          if (buf.readUInt16BE(o + 12) === C.ETH_P_8021AD) vf.vlanProto = '802.1ad';
        });
        break;
      case C.IFLA_VF_TX_RATE:
        if (len >= 8 && !haveRate) vf.maxTxRate = buf.readUInt32LE(off + 4);
        break;
      case C.IFLA_VF_RATE:
        if (len >= 12) {
          vf.minTxRate = buf.readUInt32LE(off + 4);
          vf.maxTxRate = buf.readUInt32LE(off + 8);
          haveRate = true;
        }
        break;
      case C.IFLA_VF_SPOOFCHK:
        if (len >= 8) vf.spoofchk = optionalBool(buf, off + 4);
        break;
      case C.IFLA_VF_TRUST:
        if (len >= 8) vf.trust = optionalBool(buf, off + 4);
        break;
      case C.IFLA_VF_LINK_STATE:
        if (len >= 8) vf.linkState = VF_LINK_STATES[buf.readUInt32LE(off + 4)];
        break;
    }
  });
  return vf;
}

/** Decode an RTM_NEWLINK / RTM_DELLINK message (null when too short to be one). */
export function decodeLink(buf: Buffer, m: NlMsg): LinkInfo | null {
  if (m.len < C.NLMSG_HDRLEN + C.IFINFOMSG_LEN) return null;
  const body = m.off + C.NLMSG_HDRLEN;
  const flags = buf.readUInt32LE(body + 8);
  const info: LinkInfo = {
    index: buf.readInt32LE(body + 4),
    name: '',
    mac: '',
    mtu: 0,
    up: (flags & C.IFF_UP) !== 0,
    operUp: false,
    carrier: (flags & C.IFF_LOWER_UP) !== 0,
    altnames: [],
  };
  let vfStart = -1;
  let vfEnd = -1;
  let addrLen = 6;
  forEachAttr(buf, body + C.IFINFOMSG_LEN, m.off + m.len, (type, off, len) => {
    switch (type) {
      case C.IFLA_IFNAME:
        info.name = cstring(buf, off, len);
        break;
      case C.IFLA_ADDRESS:
        info.mac = formatMac(buf, off, len);
        addrLen = len;
        break;
      case C.IFLA_PERM_ADDRESS:
        info.permMac = formatMac(buf, off, len);
        break;
      case C.IFLA_PARENT_DEV_NAME:
        info.parentDev = cstring(buf, off, len);
        break;
      case C.IFLA_PARENT_DEV_BUS_NAME:
        info.parentBus = cstring(buf, off, len);
        break;
      case C.IFLA_MTU:
        if (len >= 4) info.mtu = buf.readUInt32LE(off);
        break;
      case C.IFLA_OPERSTATE:
        if (len >= 1) info.operUp = buf[off] === C.IF_OPER_UP;
        break;
      case C.IFLA_CARRIER:
        if (len >= 1) info.carrier = buf[off] !== 0;
        break;
      case C.IFLA_NUM_VF:
        if (len >= 4) info.numVfs = buf.readUInt32LE(off);
        break;
      case C.IFLA_LINKINFO:
        forEachAttr(buf, off, off + len, (t, o, l) => {
          if (t === C.IFLA_INFO_KIND) info.kind = cstring(buf, o, l);
        });
        break;
      case C.IFLA_PROP_LIST:
        forEachAttr(buf, off, off + len, (t, o, l) => {
          if (t === C.IFLA_ALT_IFNAME) info.altnames.push(cstring(buf, o, l));
        });
        break;
      case C.IFLA_VFINFO_LIST:
        vfStart = off;
        vfEnd = off + len;
        break;
    }
  });
  if (vfStart >= 0) {
    // Decoded after the loop: the VF MAC length follows the device's address length.
    const vfs: VfInfo[] = [];
    forEachAttr(buf, vfStart, vfEnd, (t, o, l) => {
      if (t === C.IFLA_VF_INFO) vfs.push(decodeVf(buf, o, o + l, Math.min(addrLen || 6, C.IFLA_VF_MAC_LEN)));
    });
    info.vfs = vfs;
  }
  return info;
}

export function decodeAddr(buf: Buffer, m: NlMsg): AddrInfo | null {
  if (m.len < C.NLMSG_HDRLEN + C.IFADDRMSG_LEN) return null;
  const body = m.off + C.NLMSG_HDRLEN;
  const fam = buf[body];
  if (fam !== C.AF_INET && fam !== C.AF_INET6) return null;
  const prefixLen = buf[body + 1] as number;
  let flags = buf[body + 2] as number;
  const scope = buf[body + 3] as number;
  const index = buf.readUInt32LE(body + 4);
  const family: Family = fam === C.AF_INET ? 4 : 6;
  const alen = family === 4 ? 4 : 16;
  let local = -1;
  let address = -1;
  forEachAttr(buf, body + C.IFADDRMSG_LEN, m.off + m.len, (type, off, len) => {
    if (type === C.IFA_LOCAL && len >= alen) local = off;
    else if (type === C.IFA_ADDRESS && len >= alen) address = off;
    else if (type === C.IFA_FLAGS && len >= 4) flags = buf.readUInt32LE(off);
  });
  // IPv4 reports its own address in IFA_LOCAL (IFA_ADDRESS is the peer on point-to-point links).
  const at = local >= 0 ? local : address;
  if (at < 0) return null;
  const ip = formatIp(buf, at, alen);
  return {
    index,
    family,
    cidr: `${ip}/${prefixLen}`,
    address: ip,
    prefixLen,
    flags,
    scope,
    tentative: (flags & C.IFA_F_TENTATIVE) !== 0,
    dadFailed: (flags & C.IFA_F_DADFAILED) !== 0,
  };
}

export function decodeRoute(buf: Buffer, m: NlMsg): RouteInfo | null {
  if (m.len < C.NLMSG_HDRLEN + C.RTMSG_LEN) return null;
  const body = m.off + C.NLMSG_HDRLEN;
  const fam = buf[body];
  if (fam !== C.AF_INET && fam !== C.AF_INET6) return null;
  const family: Family = fam === C.AF_INET ? 4 : 6;
  const alen = family === 4 ? 4 : 16;
  const dstLen = buf[body + 1] as number;
  const r: RouteInfo = {
    family,
    dst: 'default',
    table: buf[body + 4] as number,
    protocol: buf[body + 5] as number,
    scope: buf[body + 6] as number,
    type: buf[body + 7] as number,
    onlink: (buf.readUInt32LE(body + 8) & C.RTNH_F_ONLINK) !== 0,
  };
  forEachAttr(buf, body + C.RTMSG_LEN, m.off + m.len, (type, off, len) => {
    switch (type) {
      case C.RTA_DST:
        if (len >= alen) r.dst = `${formatIp(buf, off, alen)}/${dstLen}`;
        break;
      case C.RTA_GATEWAY:
        if (len >= alen) r.gw = formatIp(buf, off, alen);
        break;
      case C.RTA_PREFSRC:
        if (len >= alen) r.prefsrc = formatIp(buf, off, alen);
        break;
      case C.RTA_OIF:
        if (len >= 4) r.index = buf.readUInt32LE(off);
        break;
      case C.RTA_PRIORITY:
        if (len >= 4) r.metric = buf.readUInt32LE(off);
        break;
      case C.RTA_TABLE:
        if (len >= 4) r.table = buf.readUInt32LE(off);
        break;
    }
  });
  return r;
}

/** NLMSG_ERROR payload: errno (positive; 0 for an ACK) and the extack message when present. */
export function decodeError(buf: Buffer, m: NlMsg): { errno: number; extack?: string } {
  const body = m.off + C.NLMSG_HDRLEN;
  if (m.len < C.NLMSG_HDRLEN + 4) return { errno: 0 };
  const errno = -buf.readInt32LE(body);
  const out: { errno: number; extack?: string } = { errno };
  if (m.flags & C.NLM_F_ACK_TLVS) {
    // After the error code comes the request's header (capped) or the whole request.
    const reqLen = m.flags & C.NLM_F_CAPPED || m.len < C.NLMSG_HDRLEN + 8 ? C.NLMSG_HDRLEN : buf.readUInt32LE(body + 4);
    // A corrupt length past the message would wrap the 32-bit alignment below: nothing to read then.
    if (reqLen > m.len) return out;
    const tlvs = body + 4 + ((reqLen + 3) & ~3);
    forEachAttr(buf, tlvs, m.off + m.len, (type, off, len) => {
      if (type === C.NLMSGERR_ATTR_MSG) out.extack = cstring(buf, off, len);
    });
  }
  return out;
}
