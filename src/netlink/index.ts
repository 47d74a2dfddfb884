/** The one rtnetlink layer. See docs/netlink.md. */
export { Rtnl, type VfPatch, type ListRoutesOptions } from './rtnl';
export { LinkMonitor } from './monitor';
export { NetlinkError, errnoName } from './errors';
export type { LinkInfo, VfInfo, AddrInfo, RouteInfo } from './decode';
export type { LinkPatch, RouteSpec, AddrOptions, VlanProto, VfLinkState } from './encode';
export { parseIp, parseCidr, parseMac, formatIp, formatMac, type Family } from './addr';
export { announce, sendGratuitousArp, sendUnsolicitedNa, arpProbe, watchDad } from './announce';
