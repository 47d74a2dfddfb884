import { RegistrationIndex } from '../../../src/registrations/index';
import type { ConfigMapObject, LookupResult } from '../../../src/registrations/types';

let rv = 100;

/** A ConfigMap as the API server returns it; resourceVersion increases like the server's. */
export function configMap(
  namespace: string,
  name: string,
  kind: 'network' | 'registration' | null,
  data: Record<string, string>,
  opts: { created?: string; resourceVersion?: string } = {},
): ConfigMapObject {
  return {
    metadata: {
      namespace,
      name,
      uid: `uid-${namespace}-${name}`,
      resourceVersion: opts.resourceVersion ?? String(++rv),
      creationTimestamp: opts.created ?? '2026-01-01T00:00:00Z',
      labels: kind ? { 'sriov-underlay.io/kind': kind } : {},
    },
    data,
  };
}

export const VLAN100 = `
vlan: 100
subnet: 10.100.0.0/24
gateway: 10.100.0.1
subnet6: fd00:100::/64
gateway6: fd00:100::1
routes:
  - dst: 10.200.0.0/16
  - dst: fd00:200::/64
mtu: 9000
qos: {maxTxRateMbps: 1000, minTxRateMbps: 100}
resourceName: sriov-underlay.io/vf-pool-a
spoofchk: true
trust: false
ranges: [10.100.0.100-10.100.0.199, fd00:100::100-fd00:100::1ff]
exclude: [10.100.0.150]
`;

export const VLAN200 = `
vlan: 200
subnet: 10.200.0.0/24
gateway: 10.200.0.1
resourceName: sriov-underlay.io/vf-pool-a
`;

export function networksCm(extra: Record<string, string> = {}, created?: string): ConfigMapObject {
  return configMap('sriov-underlay', 'networks', 'network', { vlan100: VLAN100, vlan200: VLAN200, ...extra }, created ? { created } : {});
}

/** The settings of a resolved lookup; throws (failing the test) on anything else. */
export function resolved(r: LookupResult) {
  if (r.kind !== 'resolved') throw new Error(`expected resolved, got ${JSON.stringify(r).slice(0, 300)}`);
  return r.settings;
}

/** The rejection of a rejected lookup; throws (failing the test) on anything else. */
export function rejected(r: LookupResult) {
  if (r.kind !== 'rejected') throw new Error(`expected rejected, got ${JSON.stringify(r).slice(0, 300)}`);
  return r.rejection;
}

/** An index holding networksCm() and the given ConfigMaps. */
export function indexWith(...cms: ConfigMapObject[]): RegistrationIndex {
  const idx = new RegistrationIndex();
  idx.applyConfigMap(networksCm());
  for (const c of cms) idx.applyConfigMap(c);
  return idx;
}
