/**
 * Address announcements and conflict probes on a link, over an AF_PACKET datagram socket (the
 * kernel adds the Ethernet header). Call them in the netns that holds the link (see withNetns).
 *
 * - gratuitous ARP (IPv4): an ARP request with sender = target = our address (RFC 5227 §2.3)
 * - unsolicited neighbour advertisement (IPv6, RFC 4861 §7.2.6) to all-nodes, override flag set
 * - ARP probe (RFC 5227 §2.1.1): sender IP 0.0.0.0; any host answering for the address, or
 *   probing for it at the same time, is a conflict
 */
import { formatMac, parseIp, parseMac } from './addr';
import { NetlinkError } from './errors';
import { isNativeError, native, type PacketFrame } from '../native';
import { withNetns } from '../netns';
import { CniCode, UnderlayError } from '../errors';

export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
const BROADCAST = Buffer.from('ffffffffffff', 'hex');
const ALL_NODES_MAC = Buffer.from('333300000001', 'hex');
const ALL_NODES_IP = Buffer.from('ff020000000000000000000000000001', 'hex');
const PACKET_OUTGOING = 4;
const ARPOP_REQUEST = 1;
const ARPOP_REPLY = 2;
const ICMPV6_NA = 136;
const NA_FLAG_OVERRIDE = 0x20000000;

export interface ArpPacket {
  op: number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

/** 28-byte Ethernet/IPv4 ARP payload. */
export function encodeArp(op: number, senderMac: Buffer, senderIp: Buffer, targetMac: Buffer, targetIp: Buffer): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt16BE(1, 0); // hardware: Ethernet
  b.writeUInt16BE(0x0800, 2); // protocol: IPv4
  b[4] = 6;
  b[5] = 4;
  b.writeUInt16BE(op, 6);
  senderMac.copy(b, 8);
  senderIp.copy(b, 14);
  targetMac.copy(b, 18);
  targetIp.copy(b, 24);
  return b;
}

export function decodeArp(p: Buffer): ArpPacket | null {
  if (p.length < 28 || p.readUInt16BE(0) !== 1 || p.readUInt16BE(2) !== 0x0800 || p[4] !== 6 || p[5] !== 4) return null;
  const ip = (o: number) => `${p[o]}.${p[o + 1]}.${p[o + 2]}.${p[o + 3]}`;
  return { op: p.readUInt16BE(6), senderMac: formatMac(p, 8), senderIp: ip(14), targetMac: formatMac(p, 18), targetIp: ip(24) };
}

/** Internet checksum of the ICMPv6 message with the IPv6 pseudo-header (RFC 4443 §2.3). */
export function icmpv6Checksum(src: Buffer, dst: Buffer, icmp: Buffer): number {
  let sum = 0;
  const add = (b: Buffer) => {
    for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
    if (b.length & 1) sum += (b[b.length - 1] as number) << 8;
  };
  add(src);
  add(dst);
  sum += (icmp.length >>> 16) + (icmp.length & 0xffff);
  sum += 58; // next header
  add(icmp);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** IPv6 packet (header + ICMPv6 NA with a target link-layer address option), from target to ff02::1. */
export function encodeUnsolicitedNa(target: Buffer, mac: Buffer): Buffer {
  const icmp = Buffer.alloc(32);
  icmp[0] = ICMPV6_NA;
  icmp.writeUInt32BE(NA_FLAG_OVERRIDE, 4);
  target.copy(icmp, 8);
  icmp[24] = 2; // option: target link-layer address
  icmp[25] = 1; // length in units of 8 bytes
  mac.copy(icmp, 26);
  icmp.writeUInt16BE(icmpv6Checksum(target, ALL_NODES_IP, icmp), 2);
  const ip6 = Buffer.alloc(40);
  ip6.writeUInt32BE(0x60000000, 0);
  ip6.writeUInt16BE(icmp.length, 4);
  ip6[6] = 58; // ICMPv6
  ip6[7] = 255; // hop limit: ND messages must carry 255
  target.copy(ip6, 8);
  ALL_NODES_IP.copy(ip6, 24);
  return Buffer.concat([ip6, icmp]);
}

function withPacketSocket<T>(ifindex: number, ethertype: number, op: string, fn: (fd: number) => T): T {
  const n = native();
  let fd: number;
  try {
    fd = n.packetOpen(ifindex, ethertype);
  } catch (err) {
    throw new NetlinkError(op, isNativeError(err) ? err.errno : 0, undefined, { cause: err });
  }
  try {
    return fn(fd);
  } catch (err) {
    if (isNativeError(err)) throw new NetlinkError(op, err.errno, undefined, { cause: err });
    throw err;
  } finally {
    n.close(fd);
  }
}

export function sendGratuitousArp(ifindex: number, ip: string, mac: string): void {
  const a = parseIp(ip);
  if (a.family !== 4) throw new UnderlayError(CniCode.Internal, `gratuitous ARP needs an IPv4 address, got ${ip}`);
  const m = parseMac(mac);
  const pkt = encodeArp(ARPOP_REQUEST, m, a.bytes, Buffer.alloc(6), a.bytes);
  withPacketSocket(ifindex, ETH_P_ARP, `send gratuitous ARP for ${ip} on ifindex ${ifindex}`, (fd) =>
    native().packetSend(fd, ifindex, BROADCAST, ETH_P_ARP, pkt),
  );
}

export function sendUnsolicitedNa(ifindex: number, ip: string, mac: string): void {
  const a = parseIp(ip);
  if (a.family !== 6) throw new UnderlayError(CniCode.Internal, `neighbour advertisement needs an IPv6 address, got ${ip}`);
  const pkt = encodeUnsolicitedNa(a.bytes, parseMac(mac));
  withPacketSocket(ifindex, ETH_P_IPV6, `send unsolicited NA for ${ip} on ifindex ${ifindex}`, (fd) =>
    native().packetSend(fd, ifindex, ALL_NODES_MAC, ETH_P_IPV6, pkt),
  );
}

/** Gratuitous ARP or unsolicited NA, by the address family. */
export function announce(ifindex: number, ip: string, mac: string): void {
  if (parseIp(ip).family === 4) sendGratuitousArp(ifindex, ip, mac);
  else sendUnsolicitedNa(ifindex, ip, mac);
}

export interface ArpProbeOptions {
  /** probes sent, evenly spread over the timeout (default 2) */
  probes?: number;
}

/**
 * RFC 5227 probe for `ip` on the link in `netns` (a path or an open netns fd): resolves with the
 * MAC of a host that uses (or is probing for) the address, or null when nobody answered within
 * timeoutMs. The packet socket is opened inside the netns (a synchronous section) and stays bound
 * to it; the wait then yields to the event loop (a libuv watch on the socket), so a CNI server runs
 * its other calls meanwhile instead of freezing for the probe's 300 ms.
 */
export function arpProbe(netns: string | number, ifindex: number, ip: string, srcMac: string, timeoutMs: number, opts: ArpProbeOptions = {}): Promise<string | null> {
  const a = parseIp(ip);
  if (a.family !== 4) throw new UnderlayError(CniCode.Internal, `ARP probe needs an IPv4 address, got ${ip}`);
  const mine = parseMac(srcMac);
  const myMac = formatMac(mine);
  const probe = encodeArp(ARPOP_REQUEST, mine, Buffer.alloc(4), Buffer.alloc(6), a.bytes);
  const probes = Math.max(1, opts.probes ?? 2);
  const n = native();
  const op = `ARP probe for ${ip} on ifindex ${ifindex}`;
  const wrap = (err: unknown) => (isNativeError(err) ? new NetlinkError(op, err.errno, undefined, { cause: err }) : err);
  let fd: number;
  try {
    fd = withNetns(netns, () => n.packetOpen(ifindex, ETH_P_ARP));
  } catch (err) {
    return Promise.reject(wrap(err));
  }
  return new Promise((resolve, reject) => {
    let done = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (err: unknown, mac: string | null = null) => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      n.nlUnwatch(fd);
      n.close(fd);
      if (err) reject(wrap(err));
      else resolve(mac);
    };
    const send = () => {
      try {
        n.packetSend(fd, ifindex, BROADCAST, ETH_P_ARP, probe);
      } catch (err) {
        finish(err);
      }
    };
    /** Read what is queued; true when a rival was found (and the probe finished). */
    const drain = (): boolean => {
      for (;;) {
        let frame: PacketFrame | null;
        try {
          frame = n.packetRecv(fd, 0);
        } catch (err) {
          finish(err);
          return true;
        }
        if (!frame) return false;
        if (frame.pktType === PACKET_OUTGOING) continue;
        const arp = decodeArp(frame.payload);
        if (!arp || arp.senderMac === myMac) continue;
        // Someone answering for the address, announcing it, or probing for it too (§2.1.1).
        const claims = arp.senderIp === ip && (arp.op === ARPOP_REPLY || arp.op === ARPOP_REQUEST);
        const rivalProbe = arp.op === ARPOP_REQUEST && arp.senderIp === '0.0.0.0' && arp.targetIp === ip;
        if (claims || rivalProbe) {
          finish(null, arp.senderMac);
          return true;
        }
      }
    };
    try {
      n.nlWatch(fd, (status) => {
        if (status < 0) finish(new NetlinkError(op, -status));
        else drain();
      });
    } catch (err) {
      n.close(fd);
      reject(wrap(err));
      return;
    }
    send(); // the first probe at once, the others spread over the timeout
    for (let i = 1; i < probes; i++) timers.push(setTimeout(send, (i * timeoutMs) / probes));
    timers.push(
      setTimeout(() => {
        if (!drain()) finish(null, null);
      }, timeoutMs),
    );
  });
}

const ICMPV6_NS = 135;

/**
 * While IPv6 DAD runs for `ip` (started by `begin`, e.g. adding the address), reads neighbour
 * discovery on the link and returns the MAC of another host that advertises the address (an NA for
 * it) or probes for it too (a DAD NS from ::), or null. Ends when `stop()` is true (checked every
 * sliceMs), a conflicting MAC is seen, or timeoutMs passes. The socket is open before `begin`, so an
 * early answer is not missed. Call it in the link's netns.
 */
export function watchDad(ifindex: number, ip: string, ownMac: string, begin: () => void, stop: () => boolean, timeoutMs: number, sliceMs = 20): string | null {
  const a = parseIp(ip);
  if (a.family !== 6) throw new UnderlayError(CniCode.Internal, `DAD needs an IPv6 address, got ${ip}`);
  const mine = formatMac(parseMac(ownMac));
  const n = native();
  return withPacketSocket(ifindex, ETH_P_IPV6, `watch DAD for ${ip} on ifindex ${ifindex}`, (fd) => {
    const conflict = (wait: number): string | null | undefined => {
      const frame = n.packetRecv(fd, wait);
      if (!frame) return undefined;
      if (frame.pktType === PACKET_OUTGOING) return null;
      const mac = ndConflict(frame.payload, a.bytes, formatMac(frame.srcMac, 0));
      return mac && mac !== mine ? mac : null;
    };
    begin();
    const start = Date.now();
    while (Date.now() - start < timeoutMs) {
      const mac = conflict(sliceMs);
      if (mac) return mac;
      if (stop()) {
        // The kernel's IPv6 input may see the defending NA before this socket does: drain what is queued.
        for (let m = conflict(sliceMs); m !== undefined; m = conflict(sliceMs)) if (m) return m;
        return null;
      }
    }
    return null;
  });
}

/** The MAC claiming `target` in an IPv6 ND packet (NA for it, or a DAD NS from ::), else null. */
export function ndConflict(p: Buffer, target: Buffer, srcMac: string): string | null {
  if (p.length < 40 + 24 || p[6] !== 58) return null; // no extension headers in ND
  const icmp = p.subarray(40);
  const type = icmp[0];
  if ((type !== ICMPV6_NA && type !== ICMPV6_NS) || !icmp.subarray(8, 24).equals(target)) return null;
  if (type === ICMPV6_NS && !p.subarray(8, 24).equals(Buffer.alloc(16))) return null; // an ordinary resolution, not DAD
  // Prefer the target link-layer address option (type 2) of an NA.
  for (let o = 24; type === ICMPV6_NA && o + 8 <= icmp.length; ) {
    const len = (icmp[o + 1] ?? 0) * 8;
    if (len === 0) break;
    if (icmp[o] === 2 && len >= 8) return formatMac(icmp, o + 2);
    o += len;
  }
  return srcMac;
}
