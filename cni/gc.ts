/**
 * GC (CNI 1.1): every VF this network holds for an attachment that is not in
 * cni.dev/valid-attachments is restored and released, then GC is passed on to the IPAM plugin.
 * One VF never stops the pass: a VF locked by a running ADD/DEL, a VF that cannot be restored, or a
 * damaged record is reported and left for the next GC, and the others are still collected.
 */
import { CniCode, UnderlayError } from '../src/errors';
import type { Logger } from '../src/log';
import { Rtnl } from '../src/netlink';
import type { NetConf } from '../src/schemas/netconf';
import type { VfRecord } from '../src/schemas/vf-record';
import { VfLock } from '../src/state/vf-lock';
import { restoreOrExplain } from '../src/vf/restore';
import { makeCtx } from './context';
import { execIpam } from './ipam';
import { queueIpamRelease, releaseQueued, retryPendingReleases } from './ipam-release';
import type { Invocation } from './skel';

/** GC is background work the runtime repeats: it never waits long on a VF another call is using. */
export const GC_LOCK_TIMEOUT_MS = 2_000;

export async function cmdGc(inv: Invocation, conf: NetConf, log: Logger): Promise<void> {
  const ctx = makeCtx(conf);
  const valid = new Set((conf['cni.dev/valid-attachments'] ?? []).map((a) => `${a.containerID}/${a.ifname}`));
  // Invalid queued releases are set aside, never run, and make this GC report failure (naming them).
  const failures: string[] = await retryPendingReleases(ctx.stateDir, inv, log);
  const { records, damaged, errors } = ctx.records.all();
  for (const e of errors) log.error(e);
  failures.push(...errors); // a record that is a symlink or over its bound is never acted on, and GC says so
  const candidates: { rec: VfRecord; damaged: boolean }[] = records.map((rec) => ({ rec, damaged: false }));
  for (const d of damaged) {
    // Only a record whose original state and holder survived can be collected here; the rest wait
    // for their DEL (which has the holder) or the next ADD on the VF.
    if (d.salvaged && d.holder.containerId && d.holder.ifName && d.salvaged.networkName) candidates.push({ rec: d.salvaged, damaged: true });
    else {
      log.error({ pci: d.pciAddr, file: d.file, reason: d.reason }, 'GC: damaged VF record left for DEL or the next ADD on this VF');
      failures.push(`${d.reason} (left for DEL or the next ADD on VF ${d.pciAddr})`);
    }
  }
  for (const { rec: stale, damaged: isDamaged } of candidates) {
    if (stale.networkName !== conf.name || valid.has(`${stale.containerId}/${stale.ifName}`)) continue;
    let lock: VfLock | undefined;
    let host: Rtnl | undefined;
    let queued: string | undefined;
    try {
      lock = await VfLock.acquire(ctx.stateDir, stale.pciAddr, GC_LOCK_TIMEOUT_MS);
      host = Rtnl.open();
      // Re-read under the lock: an ADD may have replaced it.
      const loaded = ctx.records.load(stale.pciAddr);
      const rec = isDamaged ? (loaded.damaged?.salvaged ? stale : undefined) : loaded.rec;
      if (!rec || rec.containerId !== stale.containerId || rec.ifName !== stale.ifName) continue;
      for (const w of await restoreOrExplain(rec, { host, sysfsRoot: ctx.sysfsRoot })) log.warn({ pci: rec.pciAddr }, w);
      if (rec.ipam) {
        // Queued under the lock (a SIGKILL cannot lose it), run after the lock is dropped.
        const env = { CNI_CONTAINERID: rec.containerId, CNI_IFNAME: rec.ifName, CNI_NETNS: rec.netns, CNI_PATH: inv.cniPath.join(':') };
        queued = await queueIpamRelease(ctx.stateDir, inv, rec.ipam.type, Buffer.from(JSON.stringify({ ...conf, ipam: rec.ipam })), env);
      }
      if (isDamaged && loaded.damaged) {
        ctx.records.setAsideDamaged(loaded.damaged);
        ctx.records.removeAttachment(rec.containerId, rec.ifName);
      } else {
        await ctx.records.remove(rec);
      }
      log.info({ pci: rec.pciAddr, container: rec.containerId }, 'GC: stale attachment released');
    } catch (e) {
      failures.push(`${stale.pciAddr}: ${(e as Error).message}`);
      log.warn({ pci: stale.pciAddr, err: (e as Error).message }, 'GC: VF not collected this time; the next GC retries');
    } finally {
      host?.close();
      lock?.release();
    }
    if (queued) await releaseQueued(queued, inv, log);
  }
  if (conf.ipam) await execIpam({ command: 'GC', type: conf.ipam.type, cniPath: inv.cniPath, env: inv.rawEnv, stdin: inv.stdin });
  if (failures.length) throw new UnderlayError(CniCode.RollbackFailed, `GC could not release (the next GC retries): ${failures.join('; ')}`);
}
