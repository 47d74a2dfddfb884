/**
 * The shapes the registration index reads (Kubernetes ConfigMaps, as @kubernetes/client-node
 * returns them) and produces (resolved settings, rejections).
 */

export interface ConfigMapObject {
  metadata?: {
    namespace?: string;
    name?: string;
    resourceVersion?: string;
    uid?: string;
    /** client-node turns it into a Date; raw JSON has the RFC 3339 string. */
    creationTimestamp?: string | Date;
    labels?: Record<string, string>;
  };
  data?: Record<string, string>;
}

/** Where a setting came from: the ConfigMap key and the version that was read. */
export interface SourceRef {
  namespace: string;
  configMap: string;
  key: string;
  resourceVersion: string;
}

export function formatSource(s: SourceRef): string {
  return `configmap ${s.namespace}/${s.configMap} key "${s.key}" @ resourceVersion ${s.resourceVersion}`;
}

export interface ResolvedRoute {
  dst: string;
  gw?: string;
}

/** A pod's network, network defaults overridden by its registration. */
export interface ResolvedSettings {
  network: string;
  resourceName: string;
  /** Absent when the network leaves the VF's VLAN alone. */
  vlan?: number;
  vlanQoS?: number;
  vlanProto?: '802.1q' | '802.1ad';
  /** Interface addresses with the subnet's prefix length. Empty for a pool entry (the agent allocates). */
  ips: string[];
  gateways: string[];
  routes: ResolvedRoute[];
  mtu?: number;
  mac?: string;
  minTxRateMbps?: number;
  maxTxRateMbps?: number;
  spoofchk?: boolean;
  trust?: boolean;
  /** Set for `pool:` registrations: the address comes from the network's ranges. */
  pool?: { reserve: boolean };
  duplicateDetection: boolean;
  source: SourceRef;
}

export type RejectionReason = 'invalid' | 'conflict' | 'shadowed';

/** Why one ConfigMap key cannot be used. `message` names the ConfigMap, the key and the field. */
export interface Rejection {
  reason: RejectionReason;
  namespace: string;
  configMap: string;
  key: string;
  resourceVersion: string;
  field: string;
  message: string;
  /** For a conflict: the registration that keeps the address. */
  heldBy?: { namespace: string; configMap: string; key: string };
}

export type LookupResult =
  | { kind: 'resolved'; settings: ResolvedSettings }
  | { kind: 'rejected'; rejection: Rejection }
  | { kind: 'not-registered' };
