/**
 * The seam for per-pod settings. A pod's registration (looked up by the node agent from the
 * ConfigMaps keyed by pod name) may carry its IPs, gateway, routes, VLAN, QoS, MAC and MTU; when it
 * does, those win over the netconf. The agent lookup itself lives in the registrations work
 * (issue 5); until an agent socket is configured the plugin behaves exactly like sriov-cni.
 */
import type { NetConf } from '../src/schemas/netconf';
import type { Invocation } from './skel';

export interface PodRoute {
  dst: string;
  gw?: string;
}

export interface PodSettings {
  /** e.g. `configmap db/mysql-net key "mysql-0" @ resourceVersion 4711` — for logs and errors. */
  source: string;
  /** The VF kubelet allocated to the pod, when the netconf carries no deviceID (SR-IOV as primary CNI). */
  deviceID?: string;
  /** CIDRs; when present, delegated IPAM is not used. */
  ips?: string[];
  gateways?: string[];
  routes?: PodRoute[];
  vlan?: number;
  vlanQoS?: number;
  vlanProto?: '802.1q' | '802.1ad';
  mac?: string;
  mtu?: number;
  minTxRateMbps?: number;
  maxTxRateMbps?: number;
  spoofchk?: boolean;
  trust?: boolean;
  /** ARP probe / IPv6 DAD before ADD finishes; the network's setting. */
  duplicateDetection?: boolean;
}

export type PodSettingsSource = (conf: NetConf, inv: Invocation) => Promise<PodSettings | null>;

/** No agent configured: nothing per pod. */
export const noPodSettings: PodSettingsSource = async () => null;
