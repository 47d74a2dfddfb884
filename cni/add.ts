/**
 * ADD, as a recipe: plan → lock → record → PF side → move → configure → result.
 * The record (allocation marker + full original state) is durable before the first change, and any
 * failure rolls the VF back to it before the error is returned.
 */
import * as fs from 'node:fs';
import { CniCode, UnderlayError } from '../src/errors';
import type { Logger } from '../src/log';
import { Rtnl } from '../src/netlink';
import type { NetConf } from '../src/schemas/netconf';
import type { VfRecord } from '../src/schemas/vf-record';
import { VfLock } from '../src/state/vf-lock';
import { readVf, type VfDevice } from '../src/sysfs/pci';
import { configureNetdev, moveIntoPod, netdevState, netnsExists } from '../src/vf/netdev';
import { applyVfSettings, readVfSettings, type VfPatch } from '../src/vf/pf-side';
import { DuplicateAddressError } from '../src/vf/duplicate-detection';
import { configureIps, type IpConfig } from '../src/vf/pod-ip';
import { agentReport } from './agent-client';
import { restoreOrExplain } from '../src/vf/restore';
import { LOCK_TIMEOUT_MS, makeCtx, type Ctx } from './context';
import { ipamAdd } from './ipam';
import { releaseIpam } from './ipam-release';
import type { AttachmentPlan } from './plan';
import { makePlan } from './plan';
import type { PodSettingsSource } from './pod-settings';
import { emptyResult, type CniResult } from './result';
import type { Invocation } from './skel';
import { noStepTimes, type StepTimes } from './step-times';

export async function cmdAdd(inv: Invocation, conf: NetConf, podSettings: PodSettingsSource, log: Logger, steps: StepTimes = noStepTimes): Promise<CniResult> {
  const ctx = makeCtx(conf);
  const settings = await podSettings(conf, inv);
  steps.mark('pod-settings');
  const plan = makePlan(conf, inv, settings);
  const vf = readVf(ctx.sysfsRoot, plan.deviceID);
  steps.mark('sysfs-vf');
  if (!vf.pfNetdev) throw new UnderlayError(CniCode.DeviceNotFound, `PF ${vf.pfPciAddr} of VF ${vf.pciAddr} has no netdev on the host`);
  if (!vf.userspace && !netnsExists(inv.netns)) {
    throw new UnderlayError(CniCode.InvalidEnv, `CNI_NETNS ${inv.netns} is not a network namespace`);
  }
  log.info({ pci: vf.pciAddr, pf: vf.pfNetdev, vf: vf.vfIndex, driver: vf.driver, source: settings?.source }, 'ADD');
  steps.mark('netns-check-and-log');

  const lock = await VfLock.acquire(ctx.stateDir, vf.pciAddr, LOCK_TIMEOUT_MS);
  steps.mark('lock');
  let host: Rtnl;
  try {
    host = Rtnl.open();
  } catch (e) {
    lock.release(); // in the CNI server a leaked lock would hold the VF until the server restarts
    throw e;
  }
  try {
    steps.mark('rtnl-open');
    const original = await takeOverOrSnapshot(host, ctx, inv, vf, log);
    steps.mark('snapshot');
    const rec: VfRecord = {
      version: 1,
      pciAddr: vf.pciAddr,
      networkName: conf.name,
      containerId: inv.containerId,
      ifName: inv.ifName,
      netns: inv.netns,
      phase: 'adding',
      createdAt: new Date().toISOString(),
      original,
      cniVersion: conf.cniVersion,
    };
    if (inv.pod) rec.pod = { namespace: inv.pod.namespace, name: inv.pod.name, uid: inv.pod.uid };
    if (plan.useIpam && conf.ipam) rec.ipam = conf.ipam;
    await ctx.records.write(rec); // the marker and the original state: durable before any change
    steps.mark('record-write');

    // Delegated IPAM starts while the kernel moves the VF (the slowest step), so that both its exec
    // here and its run overlap the move; at the latest when its addresses are needed.
    const ipamStart: IpamStart = { started: null };
    const ipam = () => (ipamStart.started ??= plan.useIpam && conf.ipam ? settle(ipamAdd({ type: conf.ipam.type, cniPath: inv.cniPath, env: inv.rawEnv, stdin: inv.stdin })) : null);
    try {
      const result = await attach(host, inv, vf, plan, rec, ipam, steps);
      rec.phase = 'ready';
      await ctx.records.update(rec);
      steps.mark('record-update');
      return result;
    } catch (err) {
      await rollback(host, ctx, inv, rec, ipamStart.started, log, err);
      if (err instanceof DuplicateAddressError && conf.agentSocket && inv.pod) {
        // The agent records the Event (the CNI holds no credentials); best effort, ADD fails anyway.
        await agentReport(conf.agentSocket, { namespace: inv.pod.namespace, name: inv.pod.name, uid: inv.pod.uid, containerId: inv.containerId, ifName: inv.ifName, reason: 'DuplicateAddress', message: err.message });
      }
      throw err;
    }
  } finally {
    host.close();
    lock.release();
    steps.mark('close-and-unlock');
  }
}

/** Everything that changes the device. `rec.applied` grows as steps succeed. */
async function attach(
  host: Rtnl,
  inv: Invocation,
  vf: VfDevice,
  plan: AttachmentPlan,
  rec: VfRecord,
  ipam: () => Promise<Settled<CniResult>> | null,
  steps: StepTimes,
): Promise<CniResult> {
  const pfNetdev = vf.pfNetdev as string;
  const pf = host.getLink(pfNetdev);
  if (!pf) throw new UnderlayError(CniCode.DeviceNotFound, `PF netdev ${pfNetdev} vanished`);
  // A PF without a VF table can still take a MAC: it is applied to the netdev only.
  const pfSide = rec.original.vf === null ? withoutMac(plan.vf) : plan.vf;
  rec.applied = { vf: pfSide, netdev: null, ips: [], routes: [] };
  applyVfSettings(host, pfNetdev, pf.index, vf.vfIndex, pfSide);
  steps.mark('pf-side');

  const result = emptyResult();
  let ipCfg: IpConfig = { ips: [], gateways: [], routes: [] };
  if (vf.userspace) {
    result.interfaces.push({ name: inv.ifName, sandbox: inv.netns, pciID: vf.pciAddr });
  } else {
    const link = host.getLink(rec.original.netdev?.name ?? '');
    if (!link) throw new UnderlayError(CniCode.DeviceNotFound, `VF netdev ${rec.original.netdev?.name} vanished from the host`);
    const podFd = fs.openSync(inv.netns, 'r');
    try {
      await moveIntoPod(host, link, podFd, inv.ifName, () => {
        steps.mark('move-sent');
        ipam();
        steps.mark('ipam-spawn');
      });
    } finally {
      fs.closeSync(podFd);
    }
    steps.mark('netns-move');
    const pod = Rtnl.openIn(inv.netns);
    try {
      steps.mark('pod-rtnl-open');
      const configured = configureNetdev(pod, inv.ifName, { mac: plan.mac, mtu: plan.mtu });
      rec.applied.netdev = { name: inv.ifName, mac: configured.mac.toLowerCase(), mtu: configured.mtu, ifindex: configured.index };
      steps.mark('pod-netdev');
      ipCfg = await addressesFor(plan, ipam());
      steps.mark('ipam-wait');
      const podLink = await configureIps(pod, configured, inv.netns, ipCfg, { duplicateDetection: plan.duplicateDetection });
      steps.mark('pod-ips');
      result.interfaces.push({ name: inv.ifName, mac: podLink.mac.toLowerCase(), mtu: podLink.mtu, sandbox: inv.netns, pciID: vf.pciAddr });
    } finally {
      pod.close();
    }
  }
  if (vf.userspace) ipCfg = await addressesFor(plan, ipam());
  rec.applied.ips = ipCfg.ips;
  rec.applied.routes = ipCfg.routes.map((r) => (r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst }));
  for (const ip of ipCfg.ips) {
    const gw = ipCfg.gateways.find((g) => g.includes(':') === ip.includes(':'));
    result.ips.push(gw ? { address: ip, gateway: gw, interface: 0 } : { address: ip, interface: 0 });
  }
  result.routes = ipCfg.routes.map((r) => (r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst }));
  const started = ipam();
  if (started) result.dns = ((await started).value ?? emptyResult()).dns;
  return result;
}

function withoutMac(p: VfPatch): VfPatch {
  const { mac: _mac, ...rest } = p;
  return rest;
}

async function addressesFor(plan: AttachmentPlan, ipam: Promise<Settled<CniResult>> | null): Promise<IpConfig> {
  if (plan.staticIps) return { ips: plan.staticIps.ips, gateways: plan.staticIps.gateways, routes: plan.staticIps.routes };
  if (!ipam) return { ips: [], gateways: [], routes: [] };
  const r = await ipam;
  if (r.error) throw r.error;
  const res = r.value as CniResult;
  return {
    ips: res.ips.map((i) => i.address),
    gateways: res.ips.flatMap((i) => (i.gateway ? [i.gateway] : [])),
    routes: res.routes.map((x) => (x.gw ? { dst: x.dst, gw: x.gw } : { dst: x.dst })),
  };
}

/**
 * The VF's original state. A record already present means either this same attachment's earlier
 * ADD (undo it, keep its original) or another container's: refused while that container's netns
 * lives, taken over (restored first) once it is gone and its DEL never came.
 */
async function takeOverOrSnapshot(host: Rtnl, ctx: Ctx, inv: Invocation, vf: VfDevice, log: Logger): Promise<VfRecord['original']> {
  const loaded = ctx.records.load(vf.pciAddr);
  let prior = loaded.rec;
  if (loaded.damaged) {
    // A crash leftover or an older release's record: use the original state it still holds; if
    // none, the VF's current state is all there is (set aside, logged), unless a live holder owns it.
    const d = loaded.damaged;
    const holder = { containerId: d.holder.containerId ?? '', ifName: d.holder.ifName ?? '', netns: d.holder.netns ?? '' };
    if (holder.netns && netnsExists(holder.netns) && holder.containerId !== inv.containerId) {
      throw new UnderlayError(CniCode.DeviceBusy, `VF ${vf.pciAddr} is in use by container ${holder.containerId} (netns ${holder.netns}); its record ${d.file} is damaged: ${d.reason}`);
    }
    log.error({ pci: vf.pciAddr, file: d.file, reason: d.reason, salvaged: !!d.salvaged }, 'ADD: damaged VF record');
    if (d.salvaged) prior = { ...d.salvaged, ...holder };
    else ctx.records.setAsideDamaged(d);
  }
  if (prior) {
    const same = prior.containerId === inv.containerId && prior.ifName === inv.ifName;
    if (!same && netnsExists(prior.netns)) {
      throw new UnderlayError(
        CniCode.DeviceBusy,
        `VF ${vf.pciAddr} is in use by container ${prior.containerId} (netns ${prior.netns}, interface ${prior.ifName})`,
        'a VF serves one attachment at a time; the device plugin should not have allocated it twice',
      );
    }
    log.warn({ pci: vf.pciAddr, holder: prior.containerId, same }, 'restoring VF from an earlier attachment before ADD');
    await restoreOrExplain(prior, { host, sysfsRoot: ctx.sysfsRoot });
    if (loaded.damaged) ctx.records.setAsideDamaged(loaded.damaged);
    else if (!same) await ctx.records.remove(prior);
    return prior.original;
  }
  const fresh = readVf(ctx.sysfsRoot, vf.pciAddr);
  let netdev = null;
  if (!fresh.userspace) {
    const name = fresh.netdevs[0];
    const link = name ? host.getLink(name) : null;
    if (!link) {
      throw new UnderlayError(
        CniCode.DeviceNotFound,
        `VF ${vf.pciAddr} has no netdev in the host netns${name ? ` (sysfs names ${name})` : ''}`,
        'it may still be inside another pod netns; check `ip -all netns exec ip -br link` for it',
      );
    }
    netdev = netdevState(link);
  }
  return {
    pfNetdev: fresh.pfNetdev,
    vfIndex: fresh.vfIndex,
    userspace: fresh.userspace,
    vf: readVfSettings(host, fresh.pfNetdev as string, fresh.vfIndex),
    netdev,
  };
}

async function rollback(
  host: Rtnl,
  ctx: Ctx,
  inv: Invocation,
  rec: VfRecord,
  ipam: Promise<Settled<CniResult>> | null,
  log: Logger,
  cause: unknown,
): Promise<void> {
  log.warn({ pci: rec.pciAddr, err: (cause as Error).message }, 'ADD failed; rolling back');
  try {
    await restoreOrExplain(rec, { host, sysfsRoot: ctx.sysfsRoot });
  } catch (e) {
    // Keep the record: DEL (which the runtime calls after a failed ADD) will finish the job.
    throw new UnderlayError(
      CniCode.RollbackFailed,
      `${(cause as Error).message}; rollback also failed: ${(e as Error).message}`,
      'the VF original state is kept in the state dir; DEL will retry the restore',
    );
  }
  if (ipam && rec.ipam) {
    await ipam; // never release before the allocation has finished
    await releaseIpam(ctx.stateDir, inv, rec.ipam.type, inv.stdin, log);
  }
  await ctx.records.remove(rec);
}

type Settled<T> = { value?: T; error?: unknown };
/** The delegated IPAM ADD once started (null: not started, or none to start). */
interface IpamStart {
  started: Promise<Settled<CniResult>> | null;
}
function settle<T>(p: Promise<T>): Promise<Settled<T>> {
  return p.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

