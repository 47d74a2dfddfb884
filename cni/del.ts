/**
 * DEL: idempotent, and it succeeds whenever it can: netns gone, VF already home under another name,
 * state missing, IPAM backend down (the release is queued). It restores every recorded field, not
 * only the ones the netconf set, and removes the record last. A delayed DEL for an attachment that
 * no longer holds the VF never touches it (sriov-cni #219).
 *
 * It never deletes original state it did not restore: a VF it cannot find keeps its record (DEL
 * fails while the pod netns lives, since the VF may still be in there; once the netns is gone it
 * succeeds and GC or the next ADD on the VF restores from the kept record). A damaged record (crash
 * leftover, older release) never blocks it: whatever original state validates is restored, the file
 * is set aside for the operator, and what was lost is logged.
 */
import type { Logger } from '../src/log';
import { Rtnl } from '../src/netlink';
import type { NetConf } from '../src/schemas/netconf';
import type { VfRecord } from '../src/schemas/vf-record';
import { VfLock } from '../src/state/vf-lock';
import type { DamagedRecord } from '../src/state/vf-record-salvage';
import { netnsExists } from '../src/vf/netdev';
import { restoreOrExplain, VfNetdevNotFound } from '../src/vf/restore';
import { LOCK_TIMEOUT_MS, makeCtx, type Ctx } from './context';
import { migrateLegacyClaimReleases, queueClaimRelease, recordedAddresses } from './claim-release';
import { releaseIpam, retryPendingReleases, startQueuedRelease, type StartedRelease } from './ipam-release';
import type { Invocation } from './skel';
import { noStepTimes, type StepTimes } from './step-times';

export async function cmdDel(inv: Invocation, conf: NetConf, log: Logger, steps: StepTimes = noStepTimes): Promise<void> {
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
  steps.mark('claim-release-queue');
  await retryPendingReleases(ctx.stateDir, inv, log); // invalid entries are logged and set aside: they must not block this DEL
  steps.mark('retry-pending');
  const pci = conf.deviceID ?? ctx.records.attachmentPci(inv.containerId, inv.ifName);
  const releaseOwnIpam = async () => {
    if (conf.ipam) await releaseIpam(ctx.stateDir, inv, conf.ipam.type, inv.stdin, log);
  };
  if (!pci) {
    log.info({ container: inv.containerId }, 'DEL: no VF recorded for this attachment');
    await releaseOwnIpam();
    return;
  }
  const lock = await VfLock.acquire(ctx.stateDir, pci, LOCK_TIMEOUT_MS);
  steps.mark('lock');
  const started: { release?: StartedRelease } = {};
  let after: AfterUnlock | undefined;
  try {
    after = await delLocked(ctx, inv, conf, pci, log, steps, started);
  } finally {
    lock.release();
    // A DEL that failed after its release started still waits for it (the standalone CNI exits
    // after answering); the release keeps its own queue entry when it fails.
    if (!after) await started.release?.done.catch(() => undefined);
  }
  // IPAM execs are awaited after the lock is dropped: a slow IPAM backend never holds the VF.
  if (after.releaseOwn) await releaseOwnIpam();
  await started.release?.done;
  steps.mark('ipam-release');
  // The record's removal is not waited for: a power loss before its dir fsync brings the record
  // back, and DEL, GC or the next ADD restore again from it, a no-op (docs/cni.md).
  void after.removed;
}

interface AfterUnlock {
  /** Release the IPAM of this DEL's netconf (no VF restored from a record). */
  releaseOwn?: boolean;
  /** Settles once the record's removal is durable; never rejects (a failure is logged); not waited for. */
  removed?: Promise<void>;
}

/**
 * Everything DEL does while it holds the VF lock. The IPAM release is queued and started as soon as
 * the VF is silenced (down in the pod), so its exec and the queue's fsyncs overlap the netns move
 * home, the kernel's slowest step; the record is removed only once the queued release is durable.
 * `started` carries the release out even when this throws.
 */
async function delLocked(ctx: Ctx, inv: Invocation, conf: NetConf, pci: string, log: Logger, steps: StepTimes, started: { release?: StartedRelease }): Promise<AfterUnlock> {
  const loaded = ctx.records.load(pci);
  steps.mark('record-load');
  // A damaged record's holder is what its text still says; unknown fields count as the caller's.
  const holder = loaded.rec ?? loaded.damaged?.holder;
  const mine = !!holder && (holder.containerId ?? inv.containerId) === inv.containerId && (holder.ifName ?? inv.ifName) === inv.ifName;
  const rec = !mine ? undefined : loaded.damaged ? fromDamaged(ctx, inv, loaded.damaged, log) : loaded.rec;
  if (!rec) {
    if (holder && !mine) log.warn({ pci, holder: holder.containerId, caller: inv.containerId }, 'DEL for an attachment that no longer holds this VF; VF left alone');
    if (ctx.records.attachmentPci(inv.containerId, inv.ifName) === pci) ctx.records.removeAttachment(inv.containerId, inv.ifName);
    return { releaseOwn: true };
  }
  const startRelease = () => {
    if (started.release) return;
    steps.mark('restore-until-silenced');
    started.release = startIpamRelease(ctx, inv, conf, rec, log) ?? undefined;
    steps.mark('ipam-start');
  };
  const host = Rtnl.open();
  steps.mark('rtnl-open');
  try {
    const warnings = await restoreOrExplain(rec, { host, sysfsRoot: ctx.sysfsRoot, vfSilenced: startRelease });
    steps.mark('restore');
    for (const w of warnings) log.warn({ pci }, w);
  } catch (e) {
    // Not found while the pod netns lives: fail, the runtime retries. Netns gone: the pod is gone,
    // so let it go, but keep the record for GC and the next ADD on this VF.
    if (!(e instanceof VfNetdevNotFound) || netnsExists(rec.netns)) throw e;
    log.error({ pci, err: e.message }, 'DEL: VF netdev not found and the pod netns is gone; record kept');
    return { releaseOwn: true };
  } finally {
    host.close();
  }
  startRelease();
  // A SIGKILL (or a power loss, once this settles) before the record is gone leaves the record and
  // the queued release; the DEL that follows restores (a no-op) and runs the release again (IPAM
  // DEL is idempotent by the CNI spec).
  await started.release?.durable;
  steps.mark('ipam-durable');
  let removed: Promise<void>;
  try {
    if (loaded.damaged) {
      log.warn({ pci, setAside: ctx.records.setAsideDamaged(loaded.damaged) }, 'DEL: damaged VF record set aside after restoring what it held');
      ctx.records.removeAttachment(inv.containerId, inv.ifName);
      removed = Promise.resolve();
    } else {
      removed = ctx.records.remove(rec); // gone when this returns; durable when it settles
    }
  } catch (e) {
    removed = Promise.reject(e as Error);
  }
  steps.mark('record-remove');
  log.info({ pci }, 'DEL done; VF restored');
  return {
    removed: removed.catch((e: unknown) => {
      // The VF is restored; a record left behind only makes a later DEL restore it again (a no-op)
      // and the next ADD take the same original state from it.
      log.error({ pci, err: (e as Error).message }, 'DEL: VF restored, but its record could not be removed from the state dir');
    }),
  };
}

/**
 * Queue and start the release of the attachment's IPAM (this DEL's netconf's, else the one ADD
 * recorded). A full or read-only state dir cannot queue it: it is run directly then, and the
 * record stays unless that succeeds (its `durable` is the release itself).
 */
function startIpamRelease(ctx: Ctx, inv: Invocation, conf: NetConf, rec: VfRecord, log: Logger): StartedRelease | null {
  const ipam = conf.ipam ?? rec.ipam;
  if (!ipam) return null;
  const stdin = conf.ipam ? inv.stdin : Buffer.from(JSON.stringify({ ...conf, ipam }));
  try {
    return startQueuedRelease(ctx.stateDir, inv, ipam.type, stdin, log);
  } catch (e) {
    log.error({ pci: rec.pciAddr, err: (e as Error).message }, 'DEL: could not queue the IPAM release; releasing it now');
    const done = releaseIpam(ctx.stateDir, inv, ipam.type, stdin, log);
    return { durable: done, done };
  }
}

/**
 * A damaged record of this caller as DEL can use it: the salvaged original state, or, when the
 * original is lost, undefined after setting the file aside (nothing left to restore from).
 */
function fromDamaged(ctx: Ctx, inv: Invocation, d: DamagedRecord, log: Logger): VfRecord | undefined {
  if (!d.salvaged) {
    const aside = ctx.records.setAsideDamaged(d);
    log.error(
      { pci: d.pciAddr, file: d.file, setAside: aside, reason: d.reason },
      'DEL: VF record damaged and its original state lost; VF left as the pod had it (a physical VF returns to the host when the pod netns dies); check its name, MAC and PF-side settings before reuse',
    );
    return undefined;
  }
  log.warn({ pci: d.pciAddr, file: d.file, reason: d.reason }, 'DEL: VF record damaged; restoring the original state it still holds');
  return { ...d.salvaged, containerId: inv.containerId, ifName: inv.ifName, netns: d.holder.netns ?? inv.netns };
}
