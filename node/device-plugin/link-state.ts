/**
 * PF carrier for health, behind a small seam so the daemon does not care where it comes from.
 * The real source is src/netlink (Rtnl.getLink for the current state, LinkMonitor for changes);
 * see netlinkLinkState below.
 */
import type { Logger } from '../../src/log';
import { LinkMonitor, Rtnl, type LinkInfo } from '../../src/netlink';

export interface LinkStateSource {
  /** Carrier of a host netdev; undefined when unknown (no such link, or no source). */
  carrier(ifname: string): boolean | undefined;
  /** Called on any link change in the host netns (ifname when known). Returns an unsubscribe. */
  subscribe(cb: (ifname: string | null) => void): () => void;
  close(): void;
}

/** No link information: every PF counts as up. Used when netlink is unavailable. */
export function unknownLinkState(): LinkStateSource {
  return { carrier: () => undefined, subscribe: () => () => undefined, close: () => undefined };
}

/**
 * PF carrier from src/netlink: the current state by Rtnl.getLink on first ask, then kept current
 * by LinkMonitor events (RTNLGRP_LINK), so a carrier change reaches the daemon as an event, not on
 * the next rescan. A link counts as up only when it is admin-up and has carrier. On an overrun
 * (events lost) the cache is dropped and re-read.
 */
export function netlinkLinkState(log: Logger): LinkStateSource {
  const rt = Rtnl.open();
  const mon = LinkMonitor.open();
  // null: asked the kernel, no such link (until a 'link' event names it)
  const byName = new Map<string, { index: number; up: boolean } | null>();
  const subs = new Set<(ifname: string | null) => void>();
  const notify = (n: string | null) => {
    for (const cb of subs) cb(n);
  };
  const learn = (l: LinkInfo) => {
    // A rename leaves the old name behind: drop any entry for the same index first.
    for (const [name, v] of byName) if (v && v.index === l.index && name !== l.name) byName.delete(name);
    byName.set(l.name, { index: l.index, up: l.up && l.carrier });
  };
  mon.on('link', (l) => {
    learn(l);
    notify(l.name);
  });
  mon.on('dellink', (l) => {
    byName.delete(l.name);
    notify(l.name);
  });
  mon.on('overrun', () => {
    log.warn({}, 'link monitor overrun; re-reading link state');
    byName.clear();
    notify(null);
  });
  mon.on('error', (e) => log.error({ err: e.message }, 'link monitor error'));
  return {
    carrier(ifname) {
      if (!byName.has(ifname)) {
        const l = rt.getLink(ifname);
        if (l) learn(l);
        else byName.set(ifname, null);
        // getLink also answers to an altname; remember the answer under the name asked for.
        if (l && l.name !== ifname) byName.set(ifname, { index: l.index, up: l.up && l.carrier });
      }
      return byName.get(ifname)?.up;
    },
    subscribe(cb) {
      subs.add(cb);
      return () => subs.delete(cb);
    },
    close() {
      mon.close();
      rt.close();
    },
  };
}

/** The daemon's link source: netlink, or (if the netlink socket cannot be opened) none, said loudly. */
export function openLinkState(log: Logger): LinkStateSource {
  try {
    return netlinkLinkState(log);
  } catch (e) {
    log.error({ err: (e as Error).message }, 'PF carrier health disabled: cannot open netlink');
    return unknownLinkState();
  }
}
