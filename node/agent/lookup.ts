/**
 * What the agent answers the CNI: the registration index's verdict for the attachment the CNI
 * asks about (pod + the netconf's network name), with addresses claimed (and allocated, for pools)
 * by `assign`, and the VF kubelet gave the pod from `deviceFor` (PodResources) when the CNI asks
 * without a deviceID. The VF must be in one of the network's device pools (`poolOf`). Rejections
 * carry the CNI code and the message naming ConfigMap, key and field; `onRejected` records the Event.
 */
import { CniCode } from '../../src/errors';
import type { Logger } from '../../src/log';
import type { RegistrationIndex } from '../../src/registrations/index';
import { poolRefusal } from '../../src/registrations/network-model';
import { rejection } from '../../src/registrations/parse';
import type { Rejection, ResolvedSettings } from '../../src/registrations/types';
import { PROTOCOL_VERSION, type LookupAnswer, type LookupRequest, type WireSettings } from '../../src/schemas/agent-protocol';
import { fail, type LookupHandler } from './cni-socket';

export interface LookupDeps {
  index: RegistrationIndex;
  log: Logger;
  /** Claim the addresses cluster-wide (allocating for pools); returns the settings to hand out. */
  assign?: (req: LookupRequest, settings: ResolvedSettings) => Promise<ResolvedSettings>;
  /** The PCI address of the VF kubelet allocated to the pod, if known. */
  deviceFor?: (req: LookupRequest, resourceName: string | undefined) => Promise<string | undefined>;
  onRejected?: (req: LookupRequest, rejection: Rejection) => void;
  /**
   * The device pool (extended resource name) a VF belongs to on this node, null when it is in none;
   * absent when this agent cannot tell (then the VF's pool is not checked).
   */
  poolOf?: (pciAddr: string) => string | null;
}

export function toWire(s: ResolvedSettings): WireSettings {
  const w: WireSettings = { ips: s.ips, gateways: s.gateways, routes: s.routes };
  if (s.vlan !== undefined) w.vlan = s.vlan;
  if (s.vlanQoS !== undefined) w.vlanQoS = s.vlanQoS;
  if (s.vlanProto !== undefined) w.vlanProto = s.vlanProto;
  if (s.mac !== undefined) w.mac = s.mac;
  if (s.mtu !== undefined) w.mtu = s.mtu;
  if (s.minTxRateMbps !== undefined) w.minTxRateMbps = s.minTxRateMbps;
  if (s.maxTxRateMbps !== undefined) w.maxTxRateMbps = s.maxTxRateMbps;
  if (s.spoofchk !== undefined) w.spoofchk = s.spoofchk;
  if (s.trust !== undefined) w.trust = s.trust;
  w.duplicateDetection = s.duplicateDetection;
  return w;
}

export function lookupHandler(deps: LookupDeps): LookupHandler {
  const reject = (req: LookupRequest, rej: Rejection, fields: Record<string, unknown>) => {
    deps.log.warn({ ...fields, configMap: `${rej.namespace}/${rej.configMap}`, key: rej.key, field: rej.field, reason: rej.reason }, rej.message);
    deps.onRejected?.(req, rej);
    return fail(rej.reason === 'conflict' ? CniCode.IpConflict : CniCode.RegistrationInvalid, rej.message);
  };
  return async (req) => {
    const r = deps.index.lookup(req.namespace, req.name, req.network);
    const fields = { namespace: req.namespace, pod: req.name, uid: req.uid, containerId: req.containerId, ifName: req.ifName, network: req.network };
    if (r.kind === 'not-registered') {
      const deviceID = deps.deviceFor ? await deps.deviceFor(req, undefined) : undefined;
      deps.log.info({ ...fields, registered: false, deviceID }, 'pod has no registration');
      const a: LookupAnswer = { v: PROTOCOL_VERSION, ok: true, registered: false };
      if (deviceID) a.deviceID = deviceID;
      return a;
    }
    if (r.kind === 'rejected') return reject(req, r.rejection, fields);
    let settings = r.settings;
    // The VF first, so the claim and the assigned Event can name it.
    const deviceID = deps.deviceFor ? await deps.deviceFor(req, settings.resourceName) : undefined;
    const vf = req.deviceID ?? deviceID;
    const net = deps.index.network(settings.network);
    if (vf && net && deps.poolOf) {
      // Before any claim: a VF of another pool must not carry this network's VLAN and addresses.
      const why = poolRefusal(net, vf, deps.poolOf(vf));
      if (why) {
        const s = settings.source;
        const meta = { namespace: s.namespace, name: s.configMap, resourceVersion: s.resourceVersion, uid: '', created: 0 };
        return reject(req, rejection(meta, s.key, 'network', why), { ...fields, vf });
      }
    }
    if (deps.assign) settings = await deps.assign(deviceID ? { ...req, deviceID } : req, settings);
    else if (settings.pool) {
      return fail(CniCode.TryAgainLater, `pod ${req.namespace}/${req.name}: pool registrations need the claims store, which this agent has not started`);
    }
    const settingsOut = toWire(settings);
    if (deviceID) settingsOut.deviceID = deviceID;
    return { v: PROTOCOL_VERSION, ok: true, registered: true, settings: settingsOut, source: settings.source };
  };
}
