/**
 * Layer 3 inside the pod netns: addresses, routes, neighbour-notify sysctls and the announcement
 * (gratuitous ARP / unsolicited NA) that lets switches and peers learn the VF's MAC at once.
 */
import * as fs from 'node:fs';
import { announce, type LinkInfo, type Rtnl } from '../netlink';
import { sysctlPath, withNetns, writeSysctl } from '../netns';
import { addIpv6WithDad, enableDad, probeIpv4 } from './duplicate-detection';

export interface IpConfig {
  /** CIDRs, v4 and/or v6. */
  ips: string[];
  /** Default gateways (one per family at most) used for routes without their own gw. */
  gateways: string[];
  routes: Array<{ dst: string; gw?: string | undefined }>;
}

const isV6 = (addr: string) => addr.includes(':');

export interface IpOptions {
  /** ARP probe (IPv4, before adding) and kernel DAD (IPv6, awaited); see duplicate-detection.ts. */
  duplicateDetection?: boolean;
}

export function configureIps(pod: Rtnl, link: LinkInfo, netnsPath: string, cfg: IpConfig, opts: IpOptions = {}): void {
  withNetns(netnsPath, () => {
    // Before the addresses exist, so the kernel announces on its own too when the MAC changes later.
    writeSysctl(['net', 'ipv4', 'conf', link.name, 'arp_notify'], 1);
    // IPv6 may be disabled in the pod: then there is no conf dir and nothing to set.
    if (fs.existsSync(sysctlPath(['net', 'ipv6', 'conf', link.name]))) writeSysctl(['net', 'ipv6', 'conf', link.name, 'ndisc_notify'], 1);
  });
  if (opts.duplicateDetection) {
    probeIpv4(link, netnsPath, cfg.ips);
    const dad = cfg.ips.some(isV6) && enableDad(link, netnsPath);
    for (const cidr of cfg.ips) {
      if (isV6(cidr) && dad) addIpv6WithDad(pod, link, netnsPath, cidr);
      else pod.addAddr(link.index, cidr);
    }
  } else {
    // Without detection IPv6 addresses skip DAD too, so they are usable at once.
    for (const cidr of cfg.ips) pod.addAddr(link.index, cidr, isV6(cidr) ? { nodad: true } : {});
  }
  for (const r of cfg.routes) {
    const family = isV6(r.dst) ? 6 : 4;
    const gw = r.gw ?? cfg.gateways.find((g) => isV6(g) === (family === 6));
    pod.addRoute({ dst: r.dst, ...(gw ? { gw } : {}), index: link.index, family });
  }
  if (cfg.ips.length) {
    withNetns(netnsPath, () => {
      for (const cidr of cfg.ips) announce(link.index, cidr.split('/')[0] ?? cidr, link.mac);
    });
  }
}
