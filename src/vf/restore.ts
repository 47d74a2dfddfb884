/**
 * Bring a VF back to exactly the state recorded before ADD touched it: every PF-side VF field, and
 * the netdev's name, MAC, MTU, altnames and admin state. Used by DEL, by ADD's rollback, by GC and
 * when a dead holder's VF is taken over. Whatever went wrong in between (netns gone, VF already home
 * under a kernel-chosen name, half-applied settings), it converges or says precisely why not.
 */
import * as fs from 'node:fs';
import { CniCode, UnderlayError } from '../errors';
import { Rtnl } from '../netlink';
import type { VfRecord } from '../schemas/vf-record';
import { readVf } from '../sysfs/pci';
import { locateNetdev, moveHome, netnsExists, restoreOnHost } from './netdev';
import { applyVfSettings } from './pf-side';

export interface RestoreContext {
  host: Rtnl;
  sysfsRoot: string;
  /**
   * Called once the VF can no longer carry the pod's traffic (down in the pod netns, already home,
   * gone, or a userspace VF); when it is in the pod, while the kernel moves it home (the slowest
   * step): DEL starts the IPAM release here so that it overlaps the move. At most once; never when
   * the VF is not found. Must not throw.
   */
  vfSilenced?: () => void;
}

/** Returns warnings for things that could not be restored because they no longer exist. */
export async function restoreVf(rec: VfRecord, ctx: RestoreContext): Promise<string[]> {
  const warnings: string[] = [];
  const { original } = rec;
  // PF side before the netdev: clearing an administratively set MAC lets the VF take its own MAC
  // back (igb refuses a VF's own MAC change while the PF has set one) ...
  restorePfSide(rec, ctx, warnings);
  if (!original.netdev) {
    ctx.vfSilenced?.(); // userspace VF: nothing was moved
    return warnings;
  }
  await restoreNetdev(rec, ctx, warnings);
  // ... and again after it: opening the VF or changing its MAC makes igbvf write its netdev MAC
  // into the PF's VF table, which must end exactly as recorded (00:00:00:00:00:00 on igb).
  restorePfSide(rec, ctx, []);
  return warnings;
}

function restorePfSide(rec: VfRecord, ctx: RestoreContext, warnings: string[]): void {
  const { original } = rec;
  if (!original.vf || !original.pfNetdev) return;
  const pf = ctx.host.getLink(original.pfNetdev);
  if (!pf) {
    warnings.push(`PF ${original.pfNetdev} not found; PF-side settings of VF ${original.vfIndex} not restored`);
    return;
  }
  applyVfSettings(ctx.host, original.pfNetdev, pf.index, original.vfIndex, original.vf);
}

/**
 * The VF exists but its netdev is nowhere this plugin can see: still in a netns the pod moved it to,
 * or in a pod netns under an identity it cannot prove. The record must be kept: deleting it would
 * lose the original state for good, and the next ADD would take the pod's name and MAC as original.
 */
export class VfNetdevNotFound extends UnderlayError {
  constructor(readonly pciAddr: string, where: string) {
    super(
      CniCode.DeviceNotFound,
      `netdev of VF ${pciAddr} not found ${where}; its record (original state) is kept`,
      'the pod may have moved it into another netns; it comes back to the host when that netns dies, and DEL, GC or the next ADD on this VF restores it from the kept record',
    );
  }
}

async function restoreNetdev(rec: VfRecord, ctx: RestoreContext, warnings: string[]): Promise<void> {
  const netdev = rec.original.netdev;
  if (!netdev) return;
  let sysfsNames: string[] = [];
  try {
    sysfsNames = readVf(ctx.sysfsRoot, rec.pciAddr).netdevs;
  } catch (e) {
    // The VF itself is gone (sriov_numvfs lowered, device removed): there is nothing to restore.
    warnings.push(`VF ${rec.pciAddr} not in sysfs any more (${(e as Error).message}); nothing to restore`);
    ctx.vfSilenced?.();
    return;
  }
  const ifindex = rec.applied?.netdev?.ifindex;
  const podAlive = netnsExists(rec.netns);
  const found = locateNetdev(ctx.host, () => (podAlive ? Rtnl.openIn(rec.netns) : null), {
    pciAddr: rec.pciAddr,
    ifName: rec.ifName,
    ifindex,
    sysfsNames,
    original: netdev,
    appliedMac: rec.applied?.netdev?.mac,
  });
  if (!found) {
    const pod = podAlive ? `in ${rec.netns} (by PCI parent, ifindex ${ifindex ?? 'unrecorded'} or name ${rec.ifName})` : `in its pod netns (${rec.netns || 'none'} is gone)`;
    throw new VfNetdevNotFound(rec.pciAddr, `${pod} nor on the host (as ${[...sysfsNames, netdev.name].join('/')} or MAC ${netdev.mac})`);
  }
  if (found.where === 'pod') {
    const hostFd = fs.openSync('/proc/self/ns/net', 'r');
    try {
      const home = await moveHome(found.rt, ctx.host, found.link, netdev, hostFd, ctx.vfSilenced);
      restoreOnHost(ctx.host, home, netdev);
    } finally {
      fs.closeSync(hostFd);
      found.rt.close();
    }
  } else {
    ctx.vfSilenced?.();
    restoreOnHost(ctx.host, found.link, netdev);
  }
}

/** restoreVf, with any failure turned into one error that says a retry of DEL is safe. */
export async function restoreOrExplain(rec: VfRecord, ctx: RestoreContext): Promise<string[]> {
  try {
    return await restoreVf(rec, ctx);
  } catch (e) {
    if (e instanceof VfNetdevNotFound) throw e; // already says what is kept and what comes next
    throw new UnderlayError(
      e instanceof UnderlayError ? e.code : CniCode.RollbackFailed,
      `could not restore VF ${rec.pciAddr}: ${(e as Error).message}`,
      'the original state is kept in the state dir; DEL can be retried',
      { cause: e },
    );
  }
}
