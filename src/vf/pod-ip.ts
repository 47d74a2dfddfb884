/**
 * Layer 3 inside the pod netns: addresses, routes, and the announcement (gratuitous ARP /
 * unsolicited NA) that lets switches and peers learn the VF's MAC at once.
 */
import * as fs from 'node:fs';
import { CniCode, UnderlayError } from '../errors';
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
  /** ARP probe (IPv4, before adding) and awaited kernel DAD (IPv6); see duplicate-detection.ts. */
  duplicateDetection?: boolean;
}

/**
 * Addresses go on while the link is still down, with arp_notify/ndisc_notify set; bringing the link
 * up then makes the kernel itself send a gratuitous ARP for every IPv4 address, and an unsolicited
 * NA for every IPv6 address once DAD completes. No packet socket is needed: opening and closing one
 * costs an RCU grace period (~20 ms) on every ADD.
 *
 * With duplicate detection the wire must be checked first, which needs the link up: up, ARP-probe
 * the IPv4 addresses, add them, add IPv6 ones through the kernel's DAD (awaited), then announce each
 * address explicitly (the kernel announces only on the up, which came before the addresses).
 */
export async function configureIps(pod: Rtnl, link: LinkInfo, netnsPath: string, cfg: IpConfig, opts: IpOptions = {}): Promise<LinkInfo> {
  withNetns(netnsPath, () => {
    writeSysctl(['net', 'ipv4', 'conf', link.name, 'arp_notify'], 1);
    // IPv6 may be disabled in the pod: then there is no conf dir and nothing to set.
    if (fs.existsSync(sysctlPath(['net', 'ipv6', 'conf', link.name]))) writeSysctl(['net', 'ipv6', 'conf', link.name, 'ndisc_notify'], 1);
  });
  if (opts.duplicateDetection && cfg.ips.length) {
    pod.setLink(link.index, { up: true });
    await probeIpv4(link, netnsPath, cfg.ips);
    const restore = cfg.ips.some(isV6) ? enableDad(link, netnsPath) : null;
    try {
      for (const cidr of cfg.ips) {
        if (isV6(cidr) && restore) addIpv6WithDad(pod, link, netnsPath, cidr);
        else pod.addAddr(link.index, cidr);
      }
    } finally {
      restore?.();
    }
    withNetns(netnsPath, () => {
      for (const cidr of cfg.ips) announce(link.index, cidr.split('/')[0] ?? cidr, link.mac);
    });
  } else {
    for (const cidr of cfg.ips) pod.addAddr(link.index, cidr);
    pod.setLink(link.index, { up: true });
  }
  // Routes through a gateway need the link up.
  for (const r of cfg.routes) {
    const family = isV6(r.dst) ? 6 : 4;
    const gw = r.gw ?? cfg.gateways.find((g) => isV6(g) === (family === 6));
    pod.addRoute({ dst: r.dst, ...(gw ? { gw } : {}), index: link.index, family });
  }
  const up = pod.getLink(link.index);
  if (!up) throw new UnderlayError(CniCode.DeviceNotFound, `${link.name} vanished from the pod netns`);
  return up;
}
