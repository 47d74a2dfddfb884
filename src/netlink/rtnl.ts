/**
 * Rtnl: a NETLINK_ROUTE socket and the operations the programs need. Requests are synchronous
 * (rtnetlink answers inside the sender's sendmsg), every one asks for an ACK, and a refusal throws
 * a NetlinkError naming the operation.
 */
import * as C from './constants';
import type { Family } from './addr';
import {
  MsgWriter,
  encodeAddr,
  encodeAltname,
  encodeDumpAddrs,
  encodeDumpLinks,
  encodeDumpRoutes,
  encodeGetLink,
  encodeRoute,
  encodeSetLink,
  encodeSetVfLinkState,
  encodeSetVfMac,
  encodeSetVfRate,
  encodeSetVfSpoofchk,
  encodeSetVfTrust,
  encodeSetVfVlan,
  type AddrOptions,
  type LinkPatch,
  type RouteSpec,
} from './encode';
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
  type VfInfo,
} from './decode';
import { NetlinkError } from './errors';
import { CniCode, UnderlayError } from '../errors';
import { isNativeError, native } from '../native';
import { closeSync } from 'node:fs';
import { openNetns, withNetns } from '../netns';

const ENODEV = 19;
const EOPNOTSUPP = 95;
const ETIMEDOUT = 110;
/** The kernel answers synchronously; this only bounds a broken socket. */
const REPLY_TIMEOUT_MS = 30_000;
const DUMP_RETRIES = 5;

export type VfPatch = Partial<Omit<VfInfo, 'vf'>>;

export interface ListRoutesOptions {
  /** routing table to list; default main (254); 'all' for every table */
  table?: number | 'all';
}

type OnMsg = (buf: Buffer, m: NlMsg) => void;

export class Rtnl {
  /** per-socket request counter; replies carry it back */
  private seq = 0;
  private readonly w = new MsgWriter(1024);
  private closed = false;
  /** a move's request is on a pool thread (requestAsync): no other request, and the fd stays open */
  private sending = false;

  /** the netns this socket was opened in, when opened with openIn */
  private home?: string | number;

  private constructor(readonly fd: number) {}

  /** A socket in the caller's current netns. */
  static open(): Rtnl {
    try {
      return new Rtnl(native().nlOpen(C.NETLINK_ROUTE, 0));
    } catch (err) {
      throw sysError('open rtnetlink socket', err);
    }
  }

  /** A socket created inside the netns at nsPath (or fd); the caller's netns is unchanged. */
  static openIn(ns: string | number): Rtnl {
    const rt = withNetns(ns, () => Rtnl.open());
    rt.home = ns;
    return rt;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.sending) native().close(this.fd); // else requestAsync closes it when the send is back
  }

  // ---- links ----

  /** The link, or null when there is none by that index or name (or altname). */
  getLink(nameOrIndex: string | number, opts: { vfs?: boolean } = {}): LinkInfo | null {
    let out: LinkInfo | null = null;
    try {
      this.request(encodeGetLink(nameOrIndex, opts.vfs === true, this.w), () => `get link ${nameOrIndex}`, (buf, m) => {
        if (m.type === C.RTM_NEWLINK) out = decodeLink(buf, m);
      });
    } catch (err) {
      if (err instanceof NetlinkError && err.errno === ENODEV) return null;
      throw err;
    }
    return out;
  }

  listLinks(opts: { vfs?: boolean } = {}): LinkInfo[] {
    return this.dump(
      () => encodeDumpLinks(opts.vfs === true, this.w),
      'list links',
      (buf, m, out: LinkInfo[]) => {
        const l = m.type === C.RTM_NEWLINK ? decodeLink(buf, m) : null;
        if (l) out.push(l);
      },
    );
  }

  /** One RTM_NEWLINK for the whole patch; netnsFd + name move and rename atomically. */
  setLink(index: number, patch: LinkPatch): void {
    this.request(encodeSetLink(index, patch, this.w), () => `set link ${this.linkName(index)} ${describePatch(patch)}`);
  }

  /**
   * Move a link into the netns behind netnsFd, renaming it on the way, all or nothing. The kernel
   * moves first and renames after (keeping the old name when it is free in the target), so a
   * taken new name fails with EEXIST with the device already in the target under its old name.
   * Then this finds it there by its old name and MAC (its ifindex may have changed) and moves it
   * back before rethrowing. Home is this socket's netns: the one given to openIn, else the
   * caller's current netns. Costs one extra getLink before the move.
   *
   * The move itself is sent from a libuv pool thread (the kernel does it inside sendmsg and waits
   * out an RCU grace period there, 15-25 ms): the event loop goes on, and `during` runs on it while
   * the kernel moves the device, for work that does not use this socket (which refuses requests
   * until the move is done). `during` must not throw.
   */
  async moveLink(index: number, netnsFd: number, name?: string, during?: () => void): Promise<void> {
    // The device's identity before it leaves: its ifindex may change in the target (on collision).
    const before = this.getLink(index);
    if (!before) throw new NetlinkError(`move link ifindex ${index}`, ENODEV);
    const patch: LinkPatch = name === undefined ? { netnsFd } : { netnsFd, name };
    try {
      const moving = this.requestAsync(encodeSetLink(index, patch, this.w), () => `set link ${this.linkName(index)} ${describePatch(patch)}`);
      try {
        during?.();
      } catch (e) {
        await moving.catch(() => undefined); // never leave the socket with a request in flight
        throw e;
      }
      await moving;
    } catch (err) {
      if (!(err instanceof NetlinkError) || this.getLink(index) !== null) throw err;
      const there = Rtnl.openIn(netnsFd);
      try {
        const moved = there.getLink(before.name);
        if (!moved || moved.mac !== before.mac) throw err;
        const homeFd = openNetns(typeof this.home === 'string' ? this.home : '/proc/thread-self/ns/net');
        try {
          there.setLink(moved.index, { netnsFd: typeof this.home === 'number' ? this.home : homeFd });
        } finally {
          closeSync(homeFd);
        }
      } finally {
        there.close();
      }
      throw err;
    }
  }

  addAltname(index: number, name: string): void {
    this.request(encodeAltname('add', index, name, this.w), () => `add altname ${name} to ${this.linkName(index)}`);
  }

  delAltname(index: number, name: string): void {
    this.request(encodeAltname('del', index, name, this.w), () => `delete altname ${name} from ${this.linkName(index)}`);
  }

  /**
   * Apply VF settings on the PF, one request per attribute group (as iproute2 does), so a refusal
   * names the exact setting. Order: mac, vlan/qos/proto, spoofchk, trust, link state, rates.
   * With only one of the rates, the other is read back first (IFLA_VF_RATE carries both).
   */
  setVf(pfIndex: number, vf: number, patch: VfPatch): void {
    const op = (what: string) => () => `set vf ${vf} ${what} on ${this.linkName(pfIndex)}`;
    if (patch.mac !== undefined) this.request(encodeSetVfMac(pfIndex, vf, patch.mac, this.w), op('mac'));
    if (patch.vlan !== undefined) {
      this.request(encodeSetVfVlan(pfIndex, vf, patch.vlan, patch.qos ?? 0, patch.vlanProto ?? '802.1Q', this.w), op('vlan'));
    } else if (patch.qos !== undefined || patch.vlanProto !== undefined) {
      throw new UnderlayError(CniCode.InvalidNetworkConfig, `set vf ${vf}: qos and vlanProto need vlan`);
    }
    if (patch.spoofchk !== undefined) this.request(encodeSetVfSpoofchk(pfIndex, vf, patch.spoofchk, this.w), op('spoofchk'));
    if (patch.trust !== undefined) this.request(encodeSetVfTrust(pfIndex, vf, patch.trust, this.w), op('trust'));
    if (patch.linkState !== undefined) this.request(encodeSetVfLinkState(pfIndex, vf, patch.linkState, this.w), op('state'));
    if (patch.minTxRate !== undefined || patch.maxTxRate !== undefined) {
      let { minTxRate, maxTxRate } = patch;
      const what =
        minTxRate === undefined ? 'max_tx_rate' : maxTxRate === undefined ? 'min_tx_rate' : 'min_tx_rate/max_tx_rate';
      if (minTxRate === undefined || maxTxRate === undefined) {
        const cur = this.getLink(pfIndex, { vfs: true })?.vfs?.find((v) => v.vf === vf);
        if (!cur) throw new NetlinkError(op(what)(), EOPNOTSUPP, 'the device reports no VF table');
        minTxRate ??= cur.minTxRate;
        maxTxRate ??= cur.maxTxRate;
      }
      this.request(encodeSetVfRate(pfIndex, vf, minTxRate, maxTxRate, this.w), op(what));
    }
  }

  // ---- addresses ----

  addAddr(index: number, cidr: string, opts: AddrOptions = {}): void {
    this.request(encodeAddr('add', index, cidr, opts, this.w), () => `add address ${cidr} to ${this.linkName(index)}`);
  }

  delAddr(index: number, cidr: string): void {
    this.request(encodeAddr('del', index, cidr, {}, this.w), () => `delete address ${cidr} from ${this.linkName(index)}`);
  }

  listAddrs(index?: number, family?: Family): AddrInfo[] {
    return this.dump(
      () => encodeDumpAddrs(family, this.w),
      'list addresses',
      (buf, m, out: AddrInfo[]) => {
        if (m.type !== C.RTM_NEWADDR) return;
        const a = decodeAddr(buf, m);
        if (a && (index === undefined || a.index === index)) out.push(a);
      },
    );
  }

  // ---- routes ----

  addRoute(r: RouteSpec): void {
    this.request(encodeRoute('add', r, this.w), () => `add route ${describeRoute(r, this)}`);
  }

  delRoute(r: RouteSpec): void {
    this.request(encodeRoute('del', r, this.w), () => `delete route ${describeRoute(r, this)}`);
  }

  listRoutes(family?: Family, opts: ListRoutesOptions = {}): RouteInfo[] {
    const table = opts.table ?? C.RT_TABLE_MAIN;
    return this.dump(
      () => encodeDumpRoutes(family, this.w),
      'list routes',
      (buf, m, out: RouteInfo[]) => {
        if (m.type !== C.RTM_NEWROUTE) return;
        const r = decodeRoute(buf, m);
        if (r && (table === 'all' || r.table === table)) out.push(r);
      },
    );
  }

  // ---- plumbing ----

  /** Name of a link for error messages (only called when building one). */
  linkName(index: number): string {
    try {
      return this.getLink(index)?.name ?? `ifindex ${index}`;
    } catch {
      return `ifindex ${index}`;
    }
  }

  private dump<T>(encode: () => Buffer, op: string, each: (buf: Buffer, m: NlMsg, out: T[]) => void): T[] {
    for (let attempt = 1; ; attempt++) {
      const out: T[] = [];
      const interrupted = this.request(encode(), () => op, (buf, m) => each(buf, m, out));
      // The table changed during the dump; the kernel flags it and we start over.
      if (!interrupted || attempt >= DUMP_RETRIES) return out;
    }
  }

  /**
   * Send one request and read until its ACK (or NLMSG_DONE for a dump). Replies to other sequence
   * numbers are stale and skipped. Returns true when a dump was flagged as interrupted.
   */
  private request(msg: Buffer, op: () => string, onMsg?: OnMsg): boolean {
    const seq = this.stamp(msg, op);
    try {
      native().nlSend(this.fd, msg);
    } catch (err) {
      throw sysError(op(), err);
    }
    return this.readReply(seq, (msg.readUInt16LE(6) & C.NLM_F_DUMP) === C.NLM_F_DUMP, op, onMsg);
  }

  /** request() with the send on a libuv pool thread (native nlSendAsync); for one slow non-dump request. */
  private async requestAsync(msg: Buffer, op: () => string): Promise<void> {
    const seq = this.stamp(msg, op);
    this.sending = true;
    try {
      await native().nlSendAsync(this.fd, msg);
    } catch (err) {
      throw sysError(op(), err);
    } finally {
      this.sending = false;
      if (this.closed) native().close(this.fd); // close() came meanwhile and left the fd to us
    }
    this.readReply(seq, false, op);
  }

  /** A usable socket and the request's sequence number, written into it. */
  private stamp(msg: Buffer, op: () => string): number {
    if (this.closed) throw new UnderlayError(CniCode.Internal, `${op()}: rtnetlink socket is closed`);
    if (this.sending) throw new UnderlayError(CniCode.Internal, `${op()}: rtnetlink socket is busy with a move`);
    const seq = (this.seq = (this.seq + 1) >>> 0);
    msg.writeUInt32LE(seq, 8);
    return seq;
  }

  /**
   * Read until the ACK of `seq` (or NLMSG_DONE for a dump). Replies to other sequence numbers are
   * stale and skipped. Returns true when a dump was flagged as interrupted.
   */
  private readReply(seq: number, isDump: boolean, op: () => string, onMsg?: OnMsg): boolean {
    const n = native();
    let interrupted = false;
    for (;;) {
      let buf: Buffer | null;
      try {
        buf = n.nlRecv(this.fd, REPLY_TIMEOUT_MS);
      } catch (err) {
        throw sysError(op(), err);
      }
      if (buf === null) throw new NetlinkError(op(), ETIMEDOUT, 'no reply from the kernel');
      for (const m of messages(buf)) {
        if (m.seq !== seq) continue;
        if (m.flags & C.NLM_F_DUMP_INTR) interrupted = true;
        if (m.type === C.NLMSG_ERROR) {
          const e = decodeError(buf, m);
          if (e.errno !== 0) throw new NetlinkError(op(), e.errno, e.extack);
          return interrupted;
        }
        if (m.type === C.NLMSG_DONE) {
          const err = m.len >= C.NLMSG_HDRLEN + 4 ? -buf.readInt32LE(m.off + C.NLMSG_HDRLEN) : 0;
          if (err > 0) throw new NetlinkError(op(), err, decodeError(buf, m).extack);
          if (isDump) return interrupted;
          continue;
        }
        if (m.type === C.NLMSG_NOOP) continue;
        onMsg?.(buf, m);
      }
    }
  }
}

function sysError(op: string, err: unknown): UnderlayError {
  if (err instanceof UnderlayError) return err;
  if (isNativeError(err)) return new NetlinkError(op, err.errno, undefined, { cause: err });
  return new NetlinkError(op, 0, err instanceof Error ? err.message : String(err), { cause: err });
}

function describePatch(p: LinkPatch): string {
  const parts: string[] = [];
  if (p.netnsFd !== undefined) parts.push(`netns fd ${p.netnsFd}`);
  if (p.name !== undefined) parts.push(`name ${p.name}`);
  if (p.mac !== undefined) parts.push(`address ${p.mac}`);
  if (p.mtu !== undefined) parts.push(`mtu ${p.mtu}`);
  if (p.up !== undefined) parts.push(p.up ? 'up' : 'down');
  return parts.join(' ');
}

function describeRoute(r: RouteSpec, rt: Rtnl): string {
  let s = r.dst;
  if (r.gw !== undefined) s += ` via ${r.gw}`;
  if (r.index !== undefined) s += ` dev ${rt.linkName(r.index)}`;
  if (r.table !== undefined) s += ` table ${r.table}`;
  if (r.metric !== undefined) s += ` metric ${r.metric}`;
  if (r.onlink) s += ' onlink';
  return s;
}
