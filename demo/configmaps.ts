/**
 * The repo's configmaps/ as the demo loads them, and the derivations each platform needs. Every
 * derivation is computed from the files at run time (never a second copy of the examples) and
 * described in one line the demo prints, so nothing is changed silently.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import type { ConfigMapObject } from '../src/registrations/types';

export type CmFile = ConfigMapObject & { apiVersion?: string; kind?: string };

export interface DemoConfigMaps {
  networks: CmFile;
  registrations: CmFile;
  pools: CmFile;
}

function readCm(file: string): CmFile {
  const cm = YAML.parse(fs.readFileSync(file, 'utf8')) as CmFile;
  if (cm?.kind !== 'ConfigMap' || !cm.metadata?.name || !cm.data) throw new Error(`${file}: not a ConfigMap with data`);
  return cm;
}

export function loadConfigMaps(repo: string): DemoConfigMaps {
  const dir = path.join(repo, 'configmaps');
  return {
    networks: readCm(path.join(dir, 'networks.yaml')),
    registrations: readCm(path.join(dir, 'registrations.yaml')),
    pools: readCm(path.join(dir, 'device-plugin-pools.yaml')),
  };
}

type Entry = Record<string, unknown>;

/** Rewrite every YAML value of a ConfigMap's data through `edit`, which returns the names it dropped. */
function editEntries(cm: CmFile, edit: (entry: Entry) => string[]): { cm: CmFile; dropped: Set<string> } {
  const dropped = new Set<string>();
  const data: Record<string, string> = {};
  for (const [key, text] of Object.entries(cm.data ?? {})) {
    // A registration key may list one attachment per network: each is edited.
    const value = YAML.parse(text) as Entry | Entry[];
    for (const entry of Array.isArray(value) ? value : [value]) for (const d of edit(entry)) dropped.add(d);
    data[key] = YAML.stringify(value);
  }
  return { cm: { ...cm, data }, dropped };
}

const drop = (entry: Entry, fields: string[]): string[] =>
  fields.filter((f) => {
    if (!(f in entry)) return false;
    delete entry[f];
    return true;
  });

/** The PF-side fields: a veth PF has no VF table, so the CNI refuses each of them by design. */
const NETWORK_PF_SIDE = ['vlan', 'vlanQoS', 'vlanProto', 'qos', 'spoofchk', 'trust'];
const REGISTRATION_PF_SIDE = ['vlan', 'qos'];

/** Host mode: networks and registrations without their PF-side fields (IPs, MACs, MTUs kept). */
export function withoutPfSide(c: DemoConfigMaps): { networks: CmFile; registrations: CmFile; note: string } {
  const n = editEntries(c.networks, (e) => drop(e, NETWORK_PF_SIDE));
  const r = editEntries(c.registrations, (e) => drop(e, REGISTRATION_PF_SIDE));
  const fields = [...new Set([...n.dropped, ...r.dropped])].join(', ');
  return {
    networks: n.cm,
    registrations: r.cm,
    note:
      `host mode: an emulated PF (a veth) has no VF table and the CNI refuses PF-side settings by design, ` +
      `so ${fields} are left out of what is loaded; each network gets its own emulated wire instead, ` +
      `so VLAN isolation is enforced by the fabric (emulated). IPs, MACs, MTUs are as in configmaps/.`,
  };
}

/** VM mode: everything as registered, except min rates, which igb refuses (EINVAL). */
export function withoutMinRates(c: DemoConfigMaps): { networks: CmFile; registrations: CmFile; note: string | null } {
  const strip = (e: Entry): string[] => {
    const qos = e.qos as Entry | undefined;
    if (!qos || !('minTxRateMbps' in qos)) return [];
    delete qos.minTxRateMbps;
    if (Object.keys(qos).length === 0) delete e.qos;
    return ['minTxRateMbps'];
  };
  const n = editEntries(c.networks, strip);
  const r = editEntries(c.registrations, strip);
  const any = n.dropped.size + r.dropped.size > 0;
  return {
    networks: n.cm,
    registrations: r.cm,
    note: any ? 'VM mode: igb refuses min_tx_rate (EINVAL), so qos.minTxRateMbps is left out; every other setting is loaded as registered' : null,
  };
}

export interface PoolMapping {
  /** Example PF netdev names → this machine's (ens1f0 → dm3fp0). */
  pfNames: Record<string, string>;
  /** Example PF PCI addresses → this machine's selector value (may carry a #range). */
  rootDevices: Record<string, string>;
}

interface PoolsDoc {
  resourceList: Array<{ resourceName: string; selectors?: { pfNames?: string[]; rootDevices?: string[] } }>;
}

/**
 * The pools config with the examples' hardware names replaced by this machine's: a selector names
 * a real NIC (ens1f0, 0000:01:00.1), which only exists under another name here.
 */
export function poolsFor(c: DemoConfigMaps, map: PoolMapping): { text: string; changes: string[] } {
  const text = c.pools.data?.['pools.yaml'];
  if (!text) throw new Error('configmaps/device-plugin-pools.yaml: no data key "pools.yaml"');
  const doc = YAML.parse(text) as PoolsDoc;
  const changes: string[] = [];
  const rename = (v: string, table: Record<string, string>): string => {
    const [base, range] = v.split('#') as [string, string | undefined];
    const to = table[base];
    if (to === undefined) return v;
    const out = to.includes('#') || range === undefined ? to : `${to}#${range}`;
    changes.push(`${v} → ${out}`);
    return out;
  };
  for (const pool of doc.resourceList) {
    const s = pool.selectors;
    if (!s) continue;
    if (s.pfNames) s.pfNames = s.pfNames.map((v) => rename(v, map.pfNames));
    if (s.rootDevices) s.rootDevices = s.rootDevices.map((v) => rename(v, map.rootDevices));
  }
  return { text: YAML.stringify(doc), changes };
}

/** The names of the pools (full resource names) in the pools config. */
export function poolResources(poolsText: string): string[] {
  const doc = YAML.parse(poolsText) as { resourceList: Array<{ resourceName: string; resourcePrefix?: string }> };
  return doc.resourceList.map((p) => `${p.resourcePrefix ?? 'sriov-underlay.io'}/${p.resourceName}`);
}
