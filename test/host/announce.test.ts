import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { announce, arpProbe, Rtnl } from '../../src/netlink';
import { decodeArp, ETH_P_ARP, ETH_P_IPV6, icmpv6Checksum } from '../../src/netlink/announce';
import { native, type PacketFrame } from '../../src/native';
import { netnsInode, withNetns } from '../../src/netns';
import { Scratch, ip, suffix } from './helpers/nl';

// Two netns joined by a veth: "me" announces and probes, "peer" captures and answers.
const scratch = new Scratch();
let me: { name: string; path: string };
let peer: { name: string; path: string };
let myIf: string;
let peerIf: string;
let myIndex: number;
let myMac: string;
let peerIndex: number;
let peerMac: string;
let hostIno: number;

beforeAll(() => {
  hostIno = netnsInode();
  me = scratch.addNetns('me');
  peer = scratch.addNetns('peer');
  const s = suffix();
  myIf = `nlm${s}`;
  peerIf = `nlq${s}`;
  scratch.addVeth(myIf, peerIf, me.name, peer.name);
  ip('-n', me.name, 'link', 'set', myIf, 'up');
  ip('-n', peer.name, 'link', 'set', peerIf, 'up');
  const rt = Rtnl.openIn(me.path);
  const l = rt.getLink(myIf)!;
  rt.close();
  myIndex = l.index;
  myMac = l.mac;
  const prt = Rtnl.openIn(peer.path);
  const p = prt.getLink(peerIf)!;
  prt.close();
  peerIndex = p.index;
  peerMac = p.mac;
});
afterAll(() => {
  scratch.cleanup();
  expect(netnsInode()).toBe(hostIno);
});

/** Capture on the peer: open the socket first, run send(), then read until pred matches. */
function capture(ethertype: number, send: () => void, pred: (f: PacketFrame) => boolean): PacketFrame | null {
  const n = native();
  const fd = withNetns(peer.path, () => n.packetOpen(peerIndex, ethertype));
  try {
    send();
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const f = n.packetRecv(fd, 500);
      if (f && pred(f)) return f;
    }
    return null;
  } finally {
    n.close(fd);
  }
}

describe('announcements', () => {
  it('gratuitous ARP: broadcast request with sender = target = the address', () => {
    const f = capture(
      ETH_P_ARP,
      () => withNetns(me.path, () => announce(myIndex, '192.0.2.44', myMac)),
      (fr) => decodeArp(fr.payload)?.senderIp === '192.0.2.44',
    );
    expect(f).not.toBeNull();
    expect(f!.pktType).toBe(1); // PACKET_BROADCAST
    expect(f!.srcMac.toString('hex')).toBe(myMac.replace(/:/g, ''));
    expect(decodeArp(f!.payload)).toEqual({
      op: 1,
      senderMac: myMac,
      senderIp: '192.0.2.44',
      targetMac: '00:00:00:00:00:00',
      targetIp: '192.0.2.44',
    });
  });

  it('unsolicited NA: to all-nodes, override flag, target option, valid ICMPv6 checksum', () => {
    const target = Buffer.from('20010db8000000000000000000000044', 'hex');
    const f = capture(
      ETH_P_IPV6,
      () => withNetns(me.path, () => announce(myIndex, '2001:db8::44', myMac)),
      (fr) => fr.payload.length >= 72 && fr.payload[40] === 136 && fr.payload.subarray(48, 64).equals(target),
    );
    expect(f).not.toBeNull();
    const p = f!.payload;
    expect(f!.pktType).toBe(2); // PACKET_MULTICAST
    expect(p[0]! >> 4).toBe(6);
    expect(p[6]).toBe(58);
    expect(p[7]).toBe(255);
    expect(p.subarray(8, 24).equals(target)).toBe(true); // source: the address itself
    expect(p.subarray(24, 40).toString('hex')).toBe('ff020000000000000000000000000001');
    expect(p.readUInt32BE(44) & 0xe0000000).toBe(0x20000000); // O set, R and S clear
    expect(p[64]).toBe(2); // target link-layer address option
    expect(p.subarray(66, 72).toString('hex')).toBe(myMac.replace(/:/g, ''));
    // the checksum over pseudo-header + message, computed with the received checksum in place, is 0
    expect(icmpv6Checksum(p.subarray(8, 24), p.subarray(24, 40), p.subarray(40, 40 + p.readUInt16BE(4)))).toBe(0);
  });

  it('the kernel accepts our NA: it updates the peer neighbour entry', () => {
    ip('-n', peer.name, 'address', 'add', '2001:db8::99/64', 'dev', peerIf, 'nodad');
    ip('-n', peer.name, 'neigh', 'replace', '2001:db8::45', 'lladdr', '02:00:00:00:00:99', 'dev', peerIf, 'nud', 'stale');
    withNetns(me.path, () => announce(myIndex, '2001:db8::45', myMac));
    const deadline = Date.now() + 5000;
    let entry = '';
    while (Date.now() < deadline) {
      entry = ip('-n', peer.name, 'neigh', 'show', '2001:db8::45', 'dev', peerIf);
      if (entry.includes(myMac)) break;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
    expect(entry).toContain(myMac);
  });
});

describe('ARP probe (RFC 5227)', () => {
  it('waits without blocking the event loop: timers run throughout the probe, in the host netns', async () => {
    // A blocking wait shows as one gap as long as the probe (1 s); yielding ones stay far below.
    const home = fs.statSync('/proc/thread-self/ns/net').ino;
    const ticks: Array<{ at: number; home: boolean }> = [];
    const start = Date.now();
    const timer = setInterval(() => ticks.push({ at: Date.now(), home: fs.statSync('/proc/thread-self/ns/net').ino === home }), 10);
    try {
      expect(await arpProbe(me.path, myIndex, '192.0.2.80', myMac, 1_000)).toBeNull();
    } finally {
      clearInterval(timer);
    }
    const end = Date.now();
    const times = [start, ...ticks.map((t) => t.at), end];
    const maxGap = Math.max(...times.slice(1).map((t, i) => t - times[i]!));
    expect(maxGap).toBeLessThan(850); // a blocking wait: one gap of the whole probe (1 s); room left for a loaded machine
    expect(ticks.every((t) => t.home)).toBe(true);
  });


  it('detects a peer that owns the address and returns its MAC', async () => {
    ip('-n', peer.name, 'address', 'add', '192.0.2.77/24', 'dev', peerIf);
    const conflict = await arpProbe(me.path, myIndex, '192.0.2.77', myMac, 3000);
    expect(conflict).toBe(peerMac);
  });

  it('returns null when nobody holds the address', async () => {
    const conflict = await arpProbe(me.path, myIndex, '192.0.2.78', myMac, 300);
    expect(conflict).toBeNull();
  });

  it('the probe itself has sender IP 0.0.0.0 and our MAC', async () => {
    let probing: Promise<unknown> = Promise.resolve();
    const f = capture(
      ETH_P_ARP,
      () => void (probing = arpProbe(me.path, myIndex, '192.0.2.79', myMac, 200, { probes: 1 })), // the first probe goes out at once
      (fr) => decodeArp(fr.payload)?.targetIp === '192.0.2.79',
    );
    await probing;
    expect(decodeArp(f!.payload)).toEqual({
      op: 1,
      senderMac: myMac,
      senderIp: '0.0.0.0',
      targetMac: '00:00:00:00:00:00',
      targetIp: '192.0.2.79',
    });
  });
});
