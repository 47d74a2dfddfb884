/**
 * Duplicate address detection on the wire, inside the pod netns, as part of configuring addresses:
 *
 * - IPv4: an RFC 5227 ARP probe (sender 0.0.0.0) BEFORE the address is added, so a conflicting
 *   address is never used, not even for a moment; any host answering for it, or probing for it at
 *   the same time, is a conflict.
 * - IPv6: the kernel's own DAD. The address is added without `nodad` (with DAD enabled on the
 *   interface and the initial random delay off), then we wait until it is no longer tentative, or
 *   the kernel marks it `dadfailed`. A packet socket open meanwhile captures the MAC in the
 *   defending host's neighbour advertisement.
 *
 * A conflict throws UnderlayError IpConflict naming the address and the MAC; the CNI's rollback then
 * restores the VF. Off per network (`duplicateDetection: false` in the network or the netconf).
 */
import * as fs from 'node:fs';
import { CniCode, UnderlayError } from '../errors';
import { canonicalIp } from '../ipam/cidr';
import { arpProbe, watchDad, type LinkInfo, type Rtnl } from '../netlink';
import { readSysctl, sysctlPath, withNetns, writeSysctl } from '../netns';

/**
 * How long the ARP probe listens (two probes, 150 ms apart). RFC 5227's 7 s would hold every pod
 * up; on one L2 segment a holder answers in well under a millisecond.
 */
export const ARP_PROBE_TIMEOUT_MS = 300;
export const ARP_PROBES = 2;
/** The NS retransmit timer during DAD (the kernel waits this long for a defender); restored after. */
export const DAD_RETRANS_MS = 300;
/** Longest wait for the kernel's DAD (1 NS, DAD_RETRANS_MS, no initial delay) to settle. */
export const DAD_TIMEOUT_MS = 2_000;

export class DuplicateAddressError extends UnderlayError {
  constructor(
    readonly address: string,
    readonly mac: string | null,
    how: string,
  ) {
    super(
      CniCode.IpConflict,
      `duplicate address: ${address} is already in use on the network by ${mac ? `MAC ${mac}` : 'another host (its MAC was not captured)'} (${how}); the attachment was rolled back`,
      'find the host with that MAC (switch MAC table, `ip neigh`) and remove the address there, or register another address',
    );
  }
}

const bare = (cidr: string) => cidr.split('/')[0] ?? cidr;

/** ARP-probe every IPv4 address before it is configured (all at once: each waits without blocking). */
export async function probeIpv4(link: LinkInfo, netnsPath: string, cidrs: string[]): Promise<void> {
  const v4 = cidrs.filter((c) => !c.includes(':')).map(bare);
  const macs = await Promise.all(v4.map((addr) => arpProbe(netnsPath, link.index, addr, link.mac, ARP_PROBE_TIMEOUT_MS, { probes: ARP_PROBES })));
  const i = macs.findIndex((m) => m !== null);
  if (i !== -1) throw new DuplicateAddressError(v4[i]!, macs[i]!, 'RFC 5227 ARP probe');
}

/**
 * Make the kernel run DAD on this interface promptly: on, one NS, no random start delay, a short
 * retransmit timer. Returns a function that puts the retransmit timer back (null: IPv6 is off).
 */
export function enableDad(link: LinkInfo, netnsPath: string): (() => void) | null {
  return withNetns(netnsPath, () => {
    if (!fs.existsSync(sysctlPath(['net', 'ipv6', 'conf', link.name]))) return null; // IPv6 off in the pod
    writeSysctl(['net', 'ipv6', 'conf', link.name, 'accept_dad'], 1);
    writeSysctl(['net', 'ipv6', 'conf', link.name, 'dad_transmits'], 1);
    writeSysctl(['net', 'ipv6', 'conf', link.name, 'router_solicitation_delay'], 0);
    const retrans = ['net', 'ipv6', 'neigh', link.name, 'retrans_time_ms'];
    const was = readSysctl(retrans).trim();
    writeSysctl(retrans, DAD_RETRANS_MS);
    return () => withNetns(netnsPath, () => writeSysctl(retrans, was));
  });
}

/**
 * Add an IPv6 address with the kernel's DAD and wait for the verdict. Throws
 * DuplicateAddressError (the address is removed again) on a conflict. A DAD that does not finish in
 * time (no carrier) is not a conflict: the address stays and the kernel completes DAD later.
 */
export function addIpv6WithDad(pod: Rtnl, link: LinkInfo, netnsPath: string, cidr: string): 'ok' | 'timeout' {
  const addr = canonicalIp(bare(cidr));
  const dad: { state: 'tentative' | 'ok' | 'failed' } = { state: 'tentative' };
  const poll = () => {
    const a = pod.listAddrs(link.index, 6).find((x) => x.address === addr);
    dad.state = !a ? 'failed' : a.dadFailed ? 'failed' : a.tentative ? 'tentative' : 'ok';
    return dad.state !== 'tentative';
  };
  const mac = withNetns(netnsPath, () => watchDad(link.index, addr, link.mac, () => pod.addAddr(link.index, cidr), poll, DAD_TIMEOUT_MS));
  if (mac) {
    // The NA arrived; give the kernel a moment to reach the same verdict before reading it.
    const until = Date.now() + 200;
    while (!poll() && Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
  if (dad.state === 'failed' || mac) {
    try {
      pod.delAddr(link.index, cidr);
    } catch {
      // rollback removes the whole device from the pod anyway
    }
    throw new DuplicateAddressError(addr, mac, 'IPv6 duplicate address detection');
  }
  return dad.state === 'ok' ? 'ok' : 'timeout';
}
