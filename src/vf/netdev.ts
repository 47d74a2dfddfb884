/**
 * The VF netdev's side of an attachment: record it, move it into the pod netns under its pod name
 * in ONE rtnetlink request (no temporary name, no temporary netns: sriov-cni #126/#349), configure
 * it there, and bring it home under its original name.
 */
import * as fs from 'node:fs';
import { CniCode, UnderlayError } from '../errors';
import type { LinkInfo, Rtnl } from '../netlink';
import type { NetdevState } from '../schemas/vf-record';

// Created on first use: a module-level SharedArrayBuffer cannot go into the CNI's startup snapshot.
let sleepBuf: Int32Array | undefined;
const nap = (ms: number) => Atomics.wait((sleepBuf ??= new Int32Array(new SharedArrayBuffer(4))), 0, 0, ms);

export function netdevState(l: LinkInfo): NetdevState {
  return { name: l.name, mac: l.mac.toLowerCase(), mtu: l.mtu, up: l.up, altnames: [...l.altnames] };
}

/**
 * Drop altnames that would get in the way: the kernel refuses a rename (and a move) to a name that
 * exists as an altname, even an altname of the same device (sriov-cni #445).
 */
function dropAltnames(rt: Rtnl, link: LinkInfo, names: readonly string[]): void {
  for (const a of link.altnames) if (names.includes(a)) rt.delAltname(link.index, a);
}

/** Move the host netdev into the pod netns and name it there, in one request. */
/** `during`: work for the event loop while the kernel moves the device (Rtnl.moveLink); must not throw. */
export async function moveIntoPod(host: Rtnl, link: LinkInfo, podNsFd: number, ifName: string, during?: () => void): Promise<void> {
  if (link.up) host.setLink(link.index, { up: false });
  // Altnames travel with the device and could collide inside the pod; they are restored on DEL.
  dropAltnames(host, link, link.altnames);
  try {
    // One request; if the rename half fails after the move, moveLink puts the device back.
    await host.moveLink(link.index, podNsFd, ifName, during);
  } catch (e) {
    throw new UnderlayError(
      CniCode.NetlinkFailure,
      `could not move ${link.name} into the pod netns as ${ifName}: ${(e as Error).message}`,
      undefined,
      { cause: e },
    );
  }
}

export interface PodNetdevConfig {
  mac?: string | undefined;
  mtu?: number | undefined;
}

/**
 * Set MAC and MTU; the link stays down until its addresses are in place (see pod-ip.ts). Some
 * drivers (i40e, ice) apply a MAC asynchronously after the PF has set it, so the MAC is read back
 * with a bounded retry.
 */
export function configureNetdev(pod: Rtnl, ifName: string, cfg: PodNetdevConfig): LinkInfo {
  const link = pod.getLink(ifName);
  if (!link) throw new UnderlayError(CniCode.DeviceNotFound, `${ifName} is not in the pod netns after the move`);
  if (cfg.mtu !== undefined && cfg.mtu !== link.mtu) pod.setLink(link.index, { mtu: cfg.mtu });
  if (cfg.mac !== undefined && cfg.mac.toLowerCase() !== link.mac.toLowerCase()) {
    const want = cfg.mac.toLowerCase();
    for (let attempt = 0; ; attempt++) {
      try {
        pod.setLink(link.index, { mac: want });
      } catch (e) {
        if (attempt >= 20) throw e;
      }
      const now = pod.getLink(link.index);
      if (now?.mac.toLowerCase() === want) break;
      if (attempt >= 20) {
        throw new UnderlayError(CniCode.DriverRefused, `${ifName}: MAC stays ${now?.mac} after setting ${want}`);
      }
      nap(10 * Math.min(attempt + 1, 10));
    }
  }
  const after = pod.getLink(link.index);
  if (!after) throw new UnderlayError(CniCode.DeviceNotFound, `${ifName} vanished from the pod netns`);
  return after;
}

export type Located = { where: 'pod'; rt: Rtnl; link: LinkInfo } | { where: 'host'; link: LinkInfo };

export interface NetdevIdentity {
  pciAddr: string;
  ifName: string;
  /** Its ifindex in the pod netns, recorded by ADD after the move. */
  ifindex?: number | undefined;
  sysfsNames: string[];
  original: NetdevState;
  appliedMac?: string | undefined;
}

/**
 * Find an attachment's netdev wherever it is now. In the pod netns the pod may have renamed it or
 * changed its MAC (NET_ADMIN), so it is found by stable identity first: the kernel's parent device
 * (the VF's PCI address, Linux 5.16+ on real VFs), then the ifindex ADD recorded, and only then by
 * its pod name, never taking a link whose parent is another device. On the host (the kernel returns
 * a physical netdev there when its netns dies, renamed "devN" when the name is taken): the parent
 * device, sysfs (which names the VF's current host netdev on a real system), then the recorded
 * original name and MACs.
 */
export function locateNetdev(host: Rtnl, openPod: () => Rtnl | null, id: NetdevIdentity): Located | null {
  const ours = (l: LinkInfo) => l.parentDev === undefined || l.parentDev === id.pciAddr;
  const pod = openPod();
  if (pod) {
    // Closed on every way out but the found one (a long-lived CNI server must not leak sockets).
    let found: LinkInfo | undefined;
    try {
      const links = pod.listLinks();
      found =
        links.find((x) => x.parentDev === id.pciAddr) ??
        (id.ifindex !== undefined ? links.find((x) => x.index === id.ifindex && ours(x)) : undefined) ??
        links.find((x) => x.name === id.ifName && ours(x));
    } finally {
      if (!found) pod.close();
    }
    if (found) return { where: 'pod', rt: pod, link: found };
  }
  const hostLinks = host.listLinks();
  const byParent = hostLinks.find((l) => l.parentDev === id.pciAddr);
  if (byParent) return { where: 'host', link: byParent };
  const macs = new Set([id.original.mac, id.appliedMac?.toLowerCase()].filter(Boolean));
  for (const name of id.sysfsNames) {
    const l = hostLinks.find((x) => x.name === name);
    if (l && ours(l)) return { where: 'host', link: l };
  }
  const byName = hostLinks.find((l) => l.name === id.original.name);
  if (byName && ours(byName) && macs.has(byName.mac.toLowerCase())) return { where: 'host', link: byName };
  const byMac = hostLinks.find((l) => macs.has(l.mac.toLowerCase()) && l.kind !== 'bridge' && ours(l));
  return byMac ? { where: 'host', link: byMac } : null;
}

/** Move a netdev from the pod netns back to the host under its original name, in one request. */
export async function moveHome(pod: Rtnl, host: Rtnl, link: LinkInfo, original: NetdevState, hostNsFd: number, silenced?: () => void): Promise<LinkInfo> {
  const clash = host.getLink(original.name);
  if (clash) {
    throw new UnderlayError(
      CniCode.DeviceBusy,
      `cannot bring ${link.name} home as ${original.name}: the host already has a netdev named ${original.name} (ifindex ${clash.index})`,
    );
  }
  if (link.up) pod.setLink(link.index, { up: false });
  dropAltnames(pod, link, link.altnames);
  // Down, its addresses answer nobody any more: `silenced` runs while the kernel moves it.
  await pod.moveLink(link.index, hostNsFd, original.name, silenced);
  const home = host.getLink(original.name);
  if (!home) throw new UnderlayError(CniCode.DeviceNotFound, `${original.name} did not arrive in the host netns`);
  return home;
}

/** On the host: restore name, MAC, MTU, altnames and admin state exactly as recorded. */
export function restoreOnHost(host: Rtnl, link: LinkInfo, original: NetdevState): void {
  let cur = link;
  if (cur.name !== original.name) {
    const clash = host.getLink(original.name);
    if (clash && clash.index !== cur.index) {
      throw new UnderlayError(
        CniCode.DeviceBusy,
        `cannot rename ${cur.name} back to ${original.name}: another netdev (ifindex ${clash.index}) has that name`,
      );
    }
    if (cur.up) host.setLink(cur.index, { up: false });
    dropAltnames(host, cur, [original.name]);
    host.setLink(cur.index, { name: original.name });
    cur = host.getLink(cur.index) ?? cur;
  }
  if (cur.mtu !== original.mtu) host.setLink(cur.index, { mtu: original.mtu });
  if (cur.mac.toLowerCase() !== original.mac) host.setLink(cur.index, { mac: original.mac });
  for (const a of cur.altnames) if (!original.altnames.includes(a)) host.delAltname(cur.index, a);
  for (const a of original.altnames) if (!cur.altnames.includes(a)) host.addAltname(cur.index, a);
  if (cur.up !== original.up) host.setLink(cur.index, { up: original.up });
}

const NSFS_MAGIC = 0x6e736673;

/** True when the path is a live network namespace (a bind mount of nsfs), not a leftover file. */
export function netnsExists(nsPath: string): boolean {
  try {
    return fs.statfsSync(nsPath).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}
