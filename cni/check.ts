/**
 * CHECK compares the live state with what ADD applied, PF side and inside the pod, and names the
 * first thing that drifted (sriov-cni #146: its CHECK does nothing).
 */
import { CniCode, UnderlayError } from '../src/errors';
import { Rtnl } from '../src/netlink';
import type { NetConf } from '../src/schemas/netconf';
import { diffSettings, readVfSettings } from '../src/vf/pf-side';
import { makeCtx } from './context';
import { execIpam } from './ipam';
import type { CniResult } from './result';
import type { Invocation } from './skel';

const mismatch = (what: string) => new UnderlayError(CniCode.CheckMismatch, `CHECK: ${what}`);

export async function cmdCheck(inv: Invocation, conf: NetConf, prev: CniResult | null): Promise<void> {
  if (!prev) throw new UnderlayError(CniCode.InvalidNetworkConfig, 'CHECK: prevResult is required');
  const ctx = makeCtx(conf);
  const pci = conf.deviceID ?? ctx.records.attachmentPci(inv.containerId, inv.ifName);
  const rec = pci ? ctx.records.read(pci) : undefined;
  if (!rec || rec.containerId !== inv.containerId || rec.ifName !== inv.ifName || rec.phase !== 'ready' || !rec.applied) {
    throw mismatch(`no completed attachment of container ${inv.containerId} interface ${inv.ifName}${pci ? ` on VF ${pci}` : ''}`);
  }
  const applied = rec.applied;
  const host = Rtnl.open();
  try {
    if (rec.original.pfNetdev && rec.original.vf) {
      const live = readVfSettings(host, rec.original.pfNetdev, rec.original.vfIndex);
      const diff = live ? diffSettings(live, applied.vf) : [];
      if (diff.length) {
        const f = diff[0] as keyof typeof applied.vf;
        throw mismatch(`VF ${rec.original.vfIndex} on ${rec.original.pfNetdev}: ${f} is ${String(live?.[f])}, expected ${String(applied.vf[f])}`);
      }
    }
  } finally {
    host.close();
  }
  if (applied.netdev) {
    const pod = Rtnl.openIn(inv.netns);
    try {
      const link = pod.getLink(inv.ifName);
      if (!link) throw mismatch(`interface ${inv.ifName} is missing from ${inv.netns}`);
      if (link.mac.toLowerCase() !== applied.netdev.mac) throw mismatch(`${inv.ifName} MAC is ${link.mac}, expected ${applied.netdev.mac}`);
      if (link.mtu !== applied.netdev.mtu) throw mismatch(`${inv.ifName} MTU is ${link.mtu}, expected ${applied.netdev.mtu}`);
      if (!link.up) throw mismatch(`${inv.ifName} is down`);
      const have = new Set(pod.listAddrs(link.index).map((a) => a.cidr));
      const ours = prev.interfaces.findIndex((i) => i.name === inv.ifName && (i.sandbox ?? inv.netns) === inv.netns);
      const want = prev.ips.filter((ip) => ip.interface === undefined || ip.interface === ours).map((ip) => ip.address);
      for (const ip of new Set([...applied.ips, ...want])) if (!have.has(ip)) throw mismatch(`${inv.ifName} lacks address ${ip}`);
      const routes = pod.listRoutes();
      for (const r of applied.routes) {
        const found = routes.some((x) => x.dst === r.dst && (r.gw === undefined || x.gw === r.gw));
        if (!found) throw mismatch(`route ${r.dst}${r.gw ? ` via ${r.gw}` : ''} is missing in ${inv.netns}`);
      }
    } finally {
      pod.close();
    }
  }
  if (conf.ipam) await execIpam({ command: 'CHECK', type: conf.ipam.type, cniPath: inv.cniPath, env: inv.rawEnv, stdin: inv.stdin });
}
