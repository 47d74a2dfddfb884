/**
 * The agent's ADD: turning a resolved registration into claimed addresses, recording the pod as
 * running on this node, and telling (log + Events on the pod and the ConfigMap). Fixed IPs are
 * claimed as named; pool entries go through the pool allocator (src/ipam/pool-allocator.ts, via
 * the agent's IpamService), whose claims withClaimedIps turns into the settings handed to the CNI.
 */
import { CniCode, UnderlayError } from '../../src/errors';
import { formatIp, parseIp } from '../../src/ipam/cidr';
import { claimIp, type ClaimDeps, type ClaimPod, type IPClaim } from '../../src/ipam/claims';
import type { PoolRequest } from '../../src/ipam/pool-allocator';
import { releaseClaim } from '../../src/ipam/pool-release';
import type { Logger } from '../../src/log';
import type { RegistrationIndex } from '../../src/registrations/index';
import type { NetworkModel } from '../../src/registrations/network-model';
import { formatSource, type ResolvedSettings } from '../../src/registrations/types';
import type { LookupRequest } from '../../src/schemas/agent-protocol';
import { readVf } from '../../src/sysfs/pci';
import { EVENT_REASONS, type EventRecorder, type EventTarget } from './events';

/** Pods this node serves and the settings they got (namespace/name → settings), for drift reports. */
export type RunningPods = Map<string, ResolvedSettings>;
export const podKey = (ns: string, name: string) => `${ns}/${name}`;
/** RunningPods is keyed per attachment: a pod on two networks has two entries. */
export const attachmentKey = (ns: string, name: string, network: string) => `${ns}/${name}/${network}`;

export const cmTarget = (r: { namespace: string; configMap: string }): EventTarget => ({ kind: 'ConfigMap', namespace: r.namespace, name: r.configMap });
export const podTarget = (req: { namespace: string; name: string; uid?: string | undefined }): EventTarget => {
  const t: EventTarget = { kind: 'Pod', namespace: req.namespace, name: req.name };
  if (req.uid) t.uid = req.uid;
  return t;
};

export interface AssignDeps {
  nodeName: string;
  index: RegistrationIndex;
  /** The pool allocator (IpamService.allocate). */
  allocate: (net: NetworkModel, req: PoolRequest) => Promise<IPClaim[]>;
  claimDeps: ClaimDeps;
  events: EventRecorder;
  log: Logger;
  running: RunningPods;
  /** For the PF name in Events. */
  sysfsRoot: string;
}

/** The lookup handler's `assign`: claim, record, tell. Throws UnderlayError (105 conflict, 11 retry). */
export function assigner(d: AssignDeps): (req: LookupRequest, s: ResolvedSettings) => Promise<ResolvedSettings> {
  const pfOf = (pci: string | undefined): string | undefined => {
    if (!pci) return undefined;
    try {
      return readVf(d.sysfsRoot, pci).pfNetdev ?? undefined;
    } catch {
      return undefined;
    }
  };
  return async (req, s) => {
    const a: Attachment = { pod: { namespace: req.namespace, name: req.name, uid: req.uid }, node: d.nodeName, containerID: req.containerId ?? '', interface: req.ifName ?? '' };
    if (req.deviceID) a.vf = req.deviceID;
    let out = s;
    try {
      if (s.pool) {
        const net = d.index.network(s.network)!;
        out = withClaimedIps(s, net, await d.allocate(net, { ...a, source: s.source, settings: settingsRecord(s), kind: 'pool' }));
      } else {
        await claimFixed(d.claimDeps, s, a);
      }
    } catch (e) {
      if (e instanceof UnderlayError && e.code === CniCode.IpConflict) {
        d.log.warn({ namespace: req.namespace, pod: req.name, uid: req.uid, source: formatSource(s.source), err: e.message }, 'IP conflict');
        d.events.emit(podTarget(req), 'Warning', EVENT_REASONS.conflict, e.message);
        d.events.emit(cmTarget(s.source), 'Warning', EVENT_REASONS.conflict, e.message);
      }
      throw e;
    }
    d.running.set(attachmentKey(req.namespace, req.name, out.network), out);
    const vf = req.deviceID;
    const pf = pfOf(vf);
    const fields = {
      namespace: req.namespace,
      pod: req.name,
      uid: req.uid,
      ips: out.ips,
      network: out.network,
      vlan: out.vlan,
      maxTxRateMbps: out.maxTxRateMbps,
      minTxRateMbps: out.minTxRateMbps,
      vf,
      pf,
      source: formatSource(out.source),
    };
    d.log.info(fields, 'IP assigned');
    const qos = `max ${out.maxTxRateMbps ?? 'unlimited'} Mbps, min ${out.minTxRateMbps ?? 0} Mbps`;
    const msg =
      `assigned ${out.ips.join(', ')} on network ${out.network} (VLAN ${out.vlan ?? 'unmanaged'}, ${qos})` +
      `${vf ? ` on VF ${vf}${pf ? ` of PF ${pf}` : ''}` : ''} to pod ${req.namespace}/${req.name} on node ${d.nodeName}, from ${formatSource(out.source)}`;
    d.events.emit(podTarget(req), 'Normal', EVENT_REASONS.assigned, msg);
    d.events.emit(cmTarget(out.source), 'Normal', EVENT_REASONS.assigned, msg);
    return out;
  };
}

export interface Attachment {
  pod: ClaimPod;
  node: string;
  containerID: string;
  interface: string;
  vf?: string;
}

/** Addresses without their prefix length, for claims. */
function bare(cidr: string): string {
  return cidr.slice(0, cidr.indexOf('/'));
}

/**
 * Claim every fixed address of the registration, all or nothing: when one family fails (another
 * holder, a conflict), the claims this call got for the other families are released again, so a
 * dual-stack pod never runs, nor holds an address, with only half of its registration.
 */
export async function claimFixed(deps: ClaimDeps, s: ResolvedSettings, a: Attachment): Promise<IPClaim[]> {
  const done: IPClaim[] = [];
  try {
    for (const cidr of s.ips) {
      done.push(await claimIp(deps, { ...a, network: s.network, ip: bare(cidr), kind: 'fixed', source: s.source, settings: settingsRecord(s) }));
    }
  } catch (err) {
    const now = deps.now?.() ?? new Date();
    for (const c of done) {
      // The precondition makes this release only what this call holds; a changed claim stays.
      await releaseClaim(deps.claims, c, now).catch(() => undefined);
    }
    throw err;
  }
  return done;
}

export function settingsRecord(s: ResolvedSettings): Record<string, unknown> {
  return JSON.parse(JSON.stringify(s)) as Record<string, unknown>;
}

/** The settings with the pool's addresses filled in (prefix from the network's subnet). */
export function withClaimedIps(s: ResolvedSettings, net: NetworkModel, claims: IPClaim[]): ResolvedSettings {
  const ips = claims.map((c) => {
    const ip = parseIp(c.spec.ip);
    return `${formatIp(ip.family, ip.value)}/${net.subnets[ip.family]!.prefix}`;
  });
  return { ...s, ips };
}
