/**
 * PF carrier for health, behind a small seam so the daemon does not care where it comes from.
 * The real source is src/netlink (Rtnl.getLink for the current state, LinkMonitor for changes);
 * see netlinkLinkState below.
 */
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
 * The link source for the daemon. src/netlink is not on this branch yet, so this is the
 * no-information source for now (PFs count as up), and says so in the log.
 */
export function openLinkState(log: { warn(obj: object, msg: string): void }): LinkStateSource {
  log.warn({}, 'PF carrier health disabled: netlink link source not built into this binary');
  return unknownLinkState();
}
