/**
 * GC (CNI 1.1): every VF this network holds for an attachment that is not in
 * cni.dev/valid-attachments is restored and released, then GC is passed on to the IPAM plugin.
 */
import { CniCode, UnderlayError } from '../src/errors';
import type { Logger } from '../src/log';
import { Rtnl } from '../src/netlink';
import type { NetConf } from '../src/schemas/netconf';
import { VfLock } from '../src/state/vf-lock';
import { restoreOrExplain } from '../src/vf/restore';
import { LOCK_TIMEOUT_MS, makeCtx } from './context';
import { execIpam } from './ipam';
import { releaseIpam, retryPendingReleases } from './ipam-release';
import type { Invocation } from './skel';

export async function cmdGc(inv: Invocation, conf: NetConf, log: Logger): Promise<void> {
  const ctx = makeCtx(conf);
  const valid = new Set((conf['cni.dev/valid-attachments'] ?? []).map((a) => `${a.containerID}/${a.ifname}`));
  const failures: string[] = await retryPendingReleases(ctx.stateDir, inv, log);
  const { records, errors } = ctx.records.all();
  for (const e of errors) log.error(e);
  failures.push(...errors); // an invalid record is never acted on, and GC says so, naming file and field
  for (const stale of records) {
    if (stale.networkName !== conf.name || valid.has(`${stale.containerId}/${stale.ifName}`)) continue;
    const lock = VfLock.acquire(ctx.stateDir, stale.pciAddr, LOCK_TIMEOUT_MS);
    const host = Rtnl.open();
    try {
      const rec = ctx.records.read(stale.pciAddr); // re-read under the lock: an ADD may have replaced it
      if (!rec || rec.containerId !== stale.containerId || rec.ifName !== stale.ifName) continue;
      for (const w of restoreOrExplain(rec, { host, sysfsRoot: ctx.sysfsRoot })) log.warn({ pci: rec.pciAddr }, w);
      if (rec.ipam) {
        const env = { CNI_CONTAINERID: rec.containerId, CNI_IFNAME: rec.ifName, CNI_NETNS: rec.netns, CNI_PATH: inv.cniPath.join(':') };
        await releaseIpam(ctx.stateDir, inv, rec.ipam.type, Buffer.from(JSON.stringify({ ...conf, ipam: rec.ipam })), log, env);
      }
      ctx.records.remove(rec);
      log.info({ pci: rec.pciAddr, container: rec.containerId }, 'GC: stale attachment released');
    } catch (e) {
      failures.push(`${stale.pciAddr}: ${(e as Error).message}`);
    } finally {
      host.close();
      lock.release();
    }
  }
  if (conf.ipam) await execIpam({ command: 'GC', type: conf.ipam.type, cniPath: inv.cniPath, env: process.env, stdin: inv.stdin });
  if (failures.length) throw new UnderlayError(CniCode.RollbackFailed, `GC could not release: ${failures.join('; ')}`);
}
