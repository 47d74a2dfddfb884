/**
 * LinkMonitor: RTNLGRP_LINK notifications, delivered on the event loop through the addon's libuv
 * poll watch (no polling timer, no blocked thread).
 *
 * Events:
 *   'link'    (info: LinkInfo)  RTM_NEWLINK: a link appeared or changed (carrier, name, flags, ...)
 *   'dellink' (info: LinkInfo)  RTM_DELLINK: a link left this netns (deleted or moved away)
 *   'overrun' ()                the socket buffer overflowed (ENOBUFS) and events were lost;
 *                               re-read the state you care about with Rtnl.listLinks()
 *   'error'   (err: Error)
 */
import { EventEmitter } from 'node:events';
import * as C from './constants';
import { decodeLink, messages, type LinkInfo } from './decode';
import { NetlinkError } from './errors';
import { isNativeError, native } from '../native';
import { withNetns } from '../netns';

const ENOBUFS = 105;

export interface LinkMonitorEvents {
  link: [LinkInfo];
  dellink: [LinkInfo];
  overrun: [];
  error: [Error];
}

export class LinkMonitor extends EventEmitter<LinkMonitorEvents> {
  private fd: number;

  private constructor(fd: number) {
    super();
    this.fd = fd;
    native().nlWatch(fd, (status) => this.onReadable(status));
  }

  /** Watch links in the caller's netns, or in the netns at nsPath (path or fd). */
  static open(ns?: string | number): LinkMonitor {
    const make = () => {
      try {
        return native().nlOpen(C.NETLINK_ROUTE, C.RTMGRP_LINK);
      } catch (err) {
        throw new NetlinkError('open link monitor', isNativeError(err) ? err.errno : 0, undefined, { cause: err });
      }
    };
    const fd = ns === undefined ? make() : withNetns(ns, make);
    return new LinkMonitor(fd);
  }

  close(): void {
    if (this.fd < 0) return;
    const n = native();
    n.nlUnwatch(this.fd);
    n.close(this.fd);
    this.fd = -1;
  }

  private onReadable(status: number): void {
    if (this.fd < 0) return;
    if (status < 0) {
      this.emit('error', new NetlinkError('link monitor poll', -status));
      return;
    }
    const n = native();
    for (;;) {
      let buf: Buffer | null;
      try {
        buf = n.nlRecv(this.fd, 0);
      } catch (err) {
        if (isNativeError(err) && err.errno === ENOBUFS) {
          this.emit('overrun');
          continue;
        }
        this.emit('error', new NetlinkError('link monitor receive', isNativeError(err) ? err.errno : 0, undefined, { cause: err }));
        return;
      }
      if (buf === null) return;
      for (const m of messages(buf)) {
        if (m.type !== C.RTM_NEWLINK && m.type !== C.RTM_DELLINK) continue;
        const l = decodeLink(buf, m);
        if (l) this.emit(m.type === C.RTM_NEWLINK ? 'link' : 'dellink', l);
      }
      if (this.fd < 0) return; // a listener closed us
    }
  }
}
