/**
 * What one ADD will do, decided before anything is touched: the VF, its PF-side settings, the
 * netdev's MAC and MTU, and where the IPs come from. Precedence, highest first: the pod's
 * registration, then CNI_ARGS MAC= / runtimeConfig.mac, then the netconf.
 */
import { CniCode, UnderlayError } from '../src/errors';
import type { NetConf } from '../src/schemas/netconf';
import type { VfPatch } from '../src/vf/pf-side';
import type { PodRoute, PodSettings } from './pod-settings';
import type { Invocation } from './skel';

export interface AttachmentPlan {
  deviceID: string;
  vf: VfPatch;
  mac?: string;
  mtu?: number;
  /** Addresses fixed by the pod's registration; otherwise delegated IPAM (if any) provides them. */
  staticIps?: { ips: string[]; gateways: string[]; routes: PodRoute[]; source: string };
  useIpam: boolean;
  /** Probe the wire for each address before ADD finishes (registration's network, else netconf, else on). */
  duplicateDetection: boolean;
}

const onOff = (v: 'on' | 'off' | undefined) => (v === undefined ? undefined : v === 'on');

export function makePlan(conf: NetConf, inv: Invocation, pod: PodSettings | null): AttachmentPlan {
  const deviceID = pod?.deviceID ?? conf.deviceID;
  if (!deviceID) {
    throw new UnderlayError(
      CniCode.InvalidNetworkConfig,
      `netconf "${conf.name}": field "deviceID" is required (no device plugin allocation was found for this pod)`,
      'with Multus the device plugin fills deviceID; as primary CNI the node agent must know the pod',
    );
  }
  let mac = conf.mac;
  const argMac = inv.args.get('MAC');
  if (argMac !== undefined) mac = argMac;
  if (conf.runtimeConfig?.mac) mac = conf.runtimeConfig.mac;
  if (pod?.mac) mac = pod.mac;
  if (mac !== undefined && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(mac)) {
    throw new UnderlayError(CniCode.InvalidNetworkConfig, `CNI_ARGS: field "MAC": "${mac}" is not a MAC address`);
  }

  const vlan = pod?.vlan ?? conf.vlan;
  const qos = pod?.vlanQoS ?? conf.vlanQoS;
  const proto = pod?.vlanProto ?? conf.vlanProto;
  const vf: VfPatch = {};
  if (vlan !== undefined) {
    vf.vlan = vlan;
    vf.qos = qos ?? 0;
    if (proto !== undefined) vf.vlanProto = proto === '802.1ad' ? '802.1ad' : '802.1Q';
  }
  if (mac !== undefined) vf.mac = mac.toLowerCase();
  const spoof = pod?.spoofchk ?? onOff(conf.spoofchk);
  if (spoof !== undefined) vf.spoofchk = spoof;
  const trust = pod?.trust ?? onOff(conf.trust);
  if (trust !== undefined) vf.trust = trust;
  if (conf.link_state !== undefined) vf.linkState = conf.link_state;
  const minRate = pod?.minTxRateMbps ?? conf.min_tx_rate;
  const maxRate = pod?.maxTxRateMbps ?? conf.max_tx_rate;
  if (minRate !== undefined) vf.minTxRate = minRate;
  if (maxRate !== undefined) vf.maxTxRate = maxRate;

  const plan: AttachmentPlan = { deviceID, vf, useIpam: false, duplicateDetection: pod?.duplicateDetection ?? conf.duplicateDetection ?? true };
  if (mac !== undefined) plan.mac = mac.toLowerCase();
  const mtu = pod?.mtu ?? conf.mtu;
  if (mtu !== undefined) plan.mtu = mtu;
  if (pod?.ips?.length) {
    plan.staticIps = { ips: pod.ips, gateways: pod.gateways ?? [], routes: pod.routes ?? [], source: pod.source };
  } else {
    plan.useIpam = conf.ipam !== undefined;
  }
  return plan;
}
