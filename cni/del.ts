/**
 * DEL: idempotent, and it succeeds whenever it can: netns gone, VF already home under another name,
 * state missing, IPAM backend down (the release is queued). It restores every recorded field, not
 * only the ones the netconf set, and removes the record last. A delayed DEL for an attachment that
 * no longer holds the VF never touches it (sriov-cni #219).
 */
import type { Logger } from '../src/log';
import { Rtnl } from '../src/netlink';
import type { NetConf } from '../src/schemas/netconf';
import { VfLock } from '../src/state/vf-lock';
import { restoreOrExplain } from '../src/vf/restore';
import { LOCK_TIMEOUT_MS, makeCtx } from './context';
import { migrateLegacyClaimReleases, queueClaimRelease, recordedAddresses } from './claim-release';
import { releaseIpam, retryPendingReleases } from './ipam-release';
import type { Invocation } from './skel';

export async function cmdDel(inv: Invocation, conf: NetConf, log: Logger): Promise<void> {
  const ctx = makeCtx(conf);
  // Registrations in use: leave the IP-claim release to the node agent (never waited for here).
  if (conf.agentSocket) {
    try {
      migrateLegacyClaimReleases(ctx.stateDir, ctx.releaseQueueDir, log);
      queueClaimRelease(ctx.releaseQueueDir, inv, { network: conf.name, addresses: recordedAddresses(ctx, conf, inv) });
    } catch (e) {
      log.error({ err: (e as Error).message }, 'DEL: could not queue the IP-claim release; the agent reconcile will find it');
    }
  }
  await retryPendingReleases(ctx.stateDir, inv, log); // invalid entries are logged and set aside: they must not block this DEL
  const pci = conf.deviceID ?? ctx.records.attachmentPci(inv.containerId, inv.ifName);
  if (!pci) {
    log.info({ container: inv.containerId }, 'DEL: no VF recorded for this attachment');
    if (conf.ipam) await releaseIpam(ctx.stateDir, inv, conf.ipam.type, inv.stdin, log);
    return;
  }
  const lock = VfLock.acquire(ctx.stateDir, pci, LOCK_TIMEOUT_MS);
  try {
    const rec = ctx.records.read(pci);
    if (!rec || rec.containerId !== inv.containerId || rec.ifName !== inv.ifName) {
      if (rec) log.warn({ pci, holder: rec.containerId, caller: inv.containerId }, 'DEL for an attachment that no longer holds this VF; VF left alone');
      if (ctx.records.attachmentPci(inv.containerId, inv.ifName) === pci) ctx.records.removeAttachment(inv.containerId, inv.ifName);
      if (conf.ipam) await releaseIpam(ctx.stateDir, inv, conf.ipam.type, inv.stdin, log);
      return;
    }
    const host = Rtnl.open();
    try {
      const warnings = restoreOrExplain(rec, { host, sysfsRoot: ctx.sysfsRoot });
      for (const w of warnings) log.warn({ pci }, w);
    } finally {
      host.close();
    }
    const ipam = conf.ipam ?? rec.ipam;
    if (ipam) {
      const stdin = conf.ipam ? inv.stdin : Buffer.from(JSON.stringify({ ...conf, ipam }));
      await releaseIpam(ctx.stateDir, inv, ipam.type, stdin, log);
    }
    ctx.records.remove(rec);
    log.info({ pci }, 'DEL done; VF restored');
  } finally {
    lock.release();
  }
}
