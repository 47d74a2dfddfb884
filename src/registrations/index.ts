/**
 * The in-memory registration index the node agent serves from. It is fed whole ConfigMap objects
 * (from a list+watch) and answers `lookup(namespace, podName)`.
 *
 * - Every ConfigMap key is parsed on its own: a bad key yields a Rejection for that key only. A key
 *   holds one attachment (a mapping) or several (a list, one per network).
 * - Per network, an exact pod-name key wins over a StatefulSet key (`mysql` + `ips:` serves `mysql-<n>`).
 * - The same key and network in two registration ConfigMaps of one namespace, or the same network
 *   name in two network ConfigMaps: the older one is used, the other is rejected as shadowed.
 * - A network lists the namespaces that may register on it; the agent checks the VF's pool.
 * - Sizes are bounded (./limits.ts) before anything is parsed, and every index operation costs
 *   O(addresses of the entry) or O(1) per pod, so one huge ConfigMap cannot stall the agent.
 * - Two registrations naming the same IP on the same network: the older one keeps it, the other's
 *   lookup fails naming both. "Older" is creationTimestamp, then namespace, ConfigMap name, key.
 *   Entries that are themselves invalid, or overridden by an exact pod key, hold no address.
 * Results are computed lazily per pod and cached until the next change.
 */
import { formatIp, parseIp, type Family } from '../ipam/cidr';
import { hostAddressProblem, networkSchema, NETWORK_LABEL, SYSTEM_NAMESPACE, type NetworkSpec } from '../schemas/network';
import { REGISTRATION_LABEL, registrationSchema, type RegistrationSpec } from '../schemas/registration';
import { dataBytes, MAX_ATTACHMENTS, MAX_CONFIGMAP_BYTES, MAX_KEYS_PER_CONFIGMAP } from './limits';
import { buildNetwork, networkLabel, type NetworkModel } from './network-model';
import { cmMeta, keyLabel, olderFirst, parseKey, parseRegistrationKey, rejection, type CmMeta, type Parsed } from './parse';
import type { ConfigMapObject, LookupResult, Rejection, ResolvedRoute, ResolvedSettings } from './types';

type Form = 'pod' | 'sts' | 'unknown';

/** One attachment of one ConfigMap key. */
interface RegEntry {
  meta: CmMeta;
  key: string;
  parsed: Parsed<RegistrationSpec>;
  form: Form;
  /** The network it names; '' when that cannot be told (malformed, or the ConfigMap is over a limit). */
  network: string;
  /** Field prefix of a list form's attachment ("1."), '' for the mapping form. */
  prefix: string;
}

/** One fixed address named by one pod's registration. */
interface IpUse {
  entry: RegEntry;
  pod: string;
  ordinal: number | null;
  field: string;
}

interface NetworkCm {
  meta: CmMeta;
  entries: Map<string, Parsed<NetworkSpec>>;
}

type Outcome = { ok: true; settings: ResolvedSettings } | { ok: false; rejection: Rejection };

const STS_POD_RE = /^(.+)-(0|[1-9]\d{0,5})$/;

export interface IndexOptions {
  systemNamespace?: string;
}

export class RegistrationIndex {
  readonly systemNamespace: string;
  /** Bumped on every change; lets callers tell when an edit has been taken in. */
  generation = 0;

  private networkCms = new Map<string, NetworkCm>();
  private networkByName = new Map<string, NetworkModel>();
  private networkRejections = new Map<string, Rejection[]>();
  private regCms = new Map<string, RegEntry[]>();
  /** ConfigMaps over a limit (./limits.ts): one rejection each, shared by all their keys. */
  private cmRejections = new Map<string, Rejection>();
  /** Network keys that exist but are rejected, so a registration naming one says so. */
  private rejectedNetworks = new Map<string, Rejection>();
  private byKey = new Map<string, RegEntry[]>();
  private ipUses = new Map<string, IpUse[]>();
  /**
   * Per entry and pod: null when it resolves, else its rejection; pod-form entries hold the verdict
   * itself (see verdict()). Cleared on every change.
   */
  private cache = new Map<RegEntry, Rejection | null | Map<string, Rejection | null>>();
  /** Per entry: what resolve() works out beyond the addresses (see there). Cleared on every change. */
  private rest = new Map<RegEntry, { famKey: string; out: Outcome }>();

  constructor(opts: IndexOptions = {}) {
    this.systemNamespace = opts.systemNamespace ?? SYSTEM_NAMESPACE;
  }

  // ---- feeding -------------------------------------------------------------------------------

  /**
   * applyConfigMap for the agent's watch: a registration ConfigMap's keys are parsed a slice at a
   * time, yielding to the event loop between slices, so a large one never holds up the CNI socket,
   * the device plugin's gRPC or /metrics for longer than one key (bounded by MAX_VALUE_BYTES). The
   * caller applies ConfigMaps one after another (the index changes only in the last, synchronous step).
   */
  async applyConfigMapAsync(cm: ConfigMapObject, sliceMs = 10): Promise<void> {
    const meta = cmMeta(cm);
    const data = cm.data ?? {};
    if (cm.metadata?.labels?.[REGISTRATION_LABEL.key] !== REGISTRATION_LABEL.value) return this.applyConfigMap(cm);
    const over = overLimit(meta, data);
    const parsed = new Map<string, Attachments>();
    let since = performance.now();
    for (const key of Object.keys(data)) {
      parsed.set(key, parseAttachments(meta, key, data[key]!, over));
      if (performance.now() - since > sliceMs) {
        await new Promise((r) => setImmediate(r));
        since = performance.now();
      }
    }
    this.applyConfigMap(cm, parsed);
  }

  /** Add or replace a ConfigMap. One that no longer carries our label is removed. */
  applyConfigMap(cm: ConfigMapObject, parsed?: Map<string, Attachments>): void {
    const meta = cmMeta(cm);
    const kind = cm.metadata?.labels?.[NETWORK_LABEL.key];
    const id = cmId(meta.namespace, meta.name);
    this.removeRegistrationCm(id);
    const hadNetwork = this.networkCms.delete(id);
    if (kind === NETWORK_LABEL.value && meta.namespace === this.systemNamespace) {
      this.networkCms.set(id, { meta, entries: this.parseNetworkCm(meta, cm.data ?? {}) });
      this.rebuildNetworks();
    } else {
      if (hadNetwork) this.rebuildNetworks();
      if (kind === REGISTRATION_LABEL.value) this.addRegistrationCm(meta, cm.data ?? {}, parsed);
    }
    this.changed();
  }

  deleteConfigMap(namespace: string, name: string): void {
    const id = cmId(namespace, name);
    this.removeRegistrationCm(id);
    if (this.networkCms.delete(id)) this.rebuildNetworks();
    this.changed();
  }

  /** Replace everything (after a relist). */
  replaceAll(cms: ConfigMapObject[]): void {
    this.networkCms.clear();
    this.regCms.clear();
    this.byKey.clear();
    this.ipUses.clear();
    this.cmRejections.clear();
    for (const cm of cms) {
      const meta = cmMeta(cm);
      const kind = cm.metadata?.labels?.[NETWORK_LABEL.key];
      if (kind === NETWORK_LABEL.value && meta.namespace === this.systemNamespace) {
        this.networkCms.set(cmId(meta.namespace, meta.name), { meta, entries: this.parseNetworkCm(meta, cm.data ?? {}) });
      } else if (kind === REGISTRATION_LABEL.value) {
        this.addRegistrationCm(meta, cm.data ?? {});
      }
    }
    this.rebuildNetworks();
    this.changed();
  }

  // ---- reading -------------------------------------------------------------------------------

  /**
   * The pod's registration on `network` (the netconf "name" the CNI was called with). Without a
   * network, or with a name that is not a defined network (a NAD of an older release), the pod's
   * only registered network is used; a pod registered on several is then rejected as ambiguous.
   */
  lookup(namespace: string, pod: string, network?: string): LookupResult {
    const nets = this.networksOf(namespace, pod);
    if (nets.size === 0) return { kind: 'not-registered' };
    const malformed = nets.delete('');
    let net: string;
    if (network !== undefined && nets.has(network)) net = network;
    else if (malformed) net = ''; // a key for this pod that names no network may have meant this one
    else if (network !== undefined && this.networkByName.has(network)) return { kind: 'not-registered' };
    else if (nets.size === 1) net = nets.values().next().value!;
    else return { kind: 'rejected', rejection: this.ambiguous(namespace, pod, nets, network) };
    const g = this.governing(namespace, pod, net);
    if (!g) return { kind: 'not-registered' };
    const out = this.outcome(g.entry, pod, g.ordinal);
    if (!out.ok) return { kind: 'rejected', rejection: this.forKey(out.rejection, g.entry) };
    const conflict = this.conflictFor(g.entry, pod, g.ordinal);
    if (conflict) return { kind: 'rejected', rejection: conflict };
    return { kind: 'resolved', settings: out.settings };
  }

  /** The networks a pod has a registration on ('' for a key that names none it can be told by). */
  networksOf(namespace: string, pod: string): Set<string> {
    const out = new Set<string>();
    for (const e of this.byKey.get(nsKey(namespace, pod)) ?? []) if (e.form !== 'sts') out.add(e.network);
    const m = STS_POD_RE.exec(pod);
    if (m) for (const e of this.byKey.get(nsKey(namespace, m[1]!)) ?? []) if (e.form !== 'pod') out.add(e.network);
    return out;
  }

  private ambiguous(namespace: string, pod: string, nets: Set<string>, network: string | undefined): Rejection {
    const names = [...nets].sort();
    const g = this.governing(namespace, pod, names[0]!)!;
    const asked = network === undefined ? 'the CNI named no network' : `the CNI asked for "${network}" (its netconf "name"), which is none of them`;
    return rejection(
      g.entry.meta,
      g.entry.key,
      `${g.entry.prefix}network`,
      `pod ${namespace}/${pod} is registered on networks ${names.map((n) => `"${n}"`).join(', ')} and ${asked}: set each NetworkAttachmentDefinition's netconf "name" to the network it attaches`,
    );
  }

  /** A ConfigMap-wide rejection, as the CNI error of one of its keys. */
  private forKey(r: Rejection, e: RegEntry): Rejection {
    if (r.key !== '') return r;
    return { ...r, key: e.key, message: `${keyLabel(e.meta, e.key)}: ${r.message.slice(r.message.indexOf('field "'))}` };
  }

  network(name: string): NetworkModel | undefined {
    return this.networkByName.get(name);
  }

  networks(): NetworkModel[] {
    return [...this.networkByName.values()];
  }

  /** Rejections of the network ConfigMap `namespace/name`, per key. */
  networkRejectionsOf(namespace: string, name: string): Rejection[] {
    return this.networkRejections.get(cmId(namespace, name)) ?? [];
  }

  /** Every rejected key of one registration ConfigMap, as of now (network rules and conflicts included). */
  rejectionsOf(namespace: string, name: string): Rejection[] {
    const id = cmId(namespace, name);
    const whole = this.cmRejections.get(id);
    if (whole) return [whole];
    const out: Rejection[] = [];
    for (const e of this.regCms.get(id) ?? []) out.push(...this.entryRejections(e));
    return out;
  }

  /**
   * rejectionsOf (or, without a name, allRejections) for the agent's watch: entries a slice at a
   * time with the event loop running in between, so the pass over a large ConfigMap (up to 5,000
   * keys of 1,024 ordinals) never holds up the socket. Nothing may change the index meanwhile (the
   * agent applies ConfigMaps one after another); lookups in between only read.
   */
  async rejectionsAsync(namespace?: string, name?: string, sliceMs = 10): Promise<Rejection[]> {
    const ids = namespace === undefined ? [...this.regCms.keys()] : [cmId(namespace, name ?? '')];
    const out: Rejection[] = namespace === undefined ? [...this.networkRejections.values()].flat() : [];
    let since = performance.now();
    for (const id of ids) {
      const whole = this.cmRejections.get(id);
      if (whole) {
        out.push(whole);
        continue;
      }
      for (const e of this.regCms.get(id) ?? []) {
        out.push(...this.entryRejections(e));
        if (performance.now() - since > sliceMs) {
          await new Promise((r) => setImmediate(r));
          since = performance.now();
        }
      }
    }
    return out;
  }

  allRejections(): Rejection[] {
    const out: Rejection[] = [];
    for (const rs of this.networkRejections.values()) out.push(...rs);
    for (const id of this.regCms.keys()) {
      const [ns, name] = splitCmId(id);
      out.push(...this.rejectionsOf(ns, name));
    }
    return out;
  }

  /** The valid registration entries, for pre-allocation and the CLI. */
  /** The valid attachments (one per key and network), for pre-allocation and the CLI. */
  *registrations(): Generator<{ meta: CmMeta; key: string; network: string; spec: RegistrationSpec; form: 'pod' | 'sts' }> {
    for (const entries of this.regCms.values()) {
      for (const e of entries) {
        if (e.parsed.ok && e.form !== 'unknown') yield { meta: e.meta, key: e.key, network: e.network, spec: e.parsed.spec, form: e.form };
      }
    }
  }

  /** Registration keys (a key with several attachments counts once). */
  get registrationKeyCount(): number {
    let n = 0;
    for (const entries of this.regCms.values()) for (const e of entries) if (e.prefix === '' || e.prefix === '0.') n++;
    return n;
  }

  // ---- networks ------------------------------------------------------------------------------

  private parseNetworkCm(meta: CmMeta, data: Record<string, string>): Map<string, Parsed<NetworkSpec>> {
    const entries = new Map<string, Parsed<NetworkSpec>>();
    const over = overLimit(meta, data);
    for (const key of Object.keys(data)) entries.set(key, over ? { ok: false, rejection: over } : this.parseNetworkKey(meta, key, data[key]!));
    return entries;
  }

  private parseNetworkKey(meta: CmMeta, key: string, text: string): Parsed<NetworkSpec> {
    const p = parseKey(networkSchema, meta, key, text);
    if (p.ok && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(key)) {
      return { ok: false, rejection: rejection(meta, key, '(key)', 'a network name must be a DNS label: lowercase letters, digits and "-", at most 63') };
    }
    return p;
  }

  private rebuildNetworks(): void {
    this.networkByName.clear();
    this.networkRejections.clear();
    this.rejectedNetworks.clear();
    const cms = [...this.networkCms.values()].sort((a, b) => olderFirst({ meta: a.meta, key: '' }, { meta: b.meta, key: '' }));
    for (const cm of cms) {
      const rejected: Rejection[] = [];
      for (const [key, p] of cm.entries) {
        if (!p.ok) {
          if (!rejected.includes(p.rejection)) rejected.push(p.rejection); // a ConfigMap-wide one once
          if (!this.rejectedNetworks.has(key)) this.rejectedNetworks.set(key, p.rejection);
          continue;
        }
        const held = this.networkByName.get(key);
        if (held) {
          rejected.push(
            rejection(cm.meta, key, '(key)', `network "${key}" is already defined by configmap ${held.meta.namespace}/${held.meta.name}, which is older and is used`, 'shadowed'),
          );
          continue;
        }
        this.networkByName.set(key, buildNetwork(key, p.spec, cm.meta));
      }
      if (rejected.length) this.networkRejections.set(cmId(cm.meta.namespace, cm.meta.name), rejected);
    }
  }

  // ---- registrations -------------------------------------------------------------------------

  private addRegistrationCm(meta: CmMeta, data: Record<string, string>, parsed?: Map<string, Attachments>): void {
    const entries: RegEntry[] = [];
    const id = cmId(meta.namespace, meta.name);
    const over = overLimit(meta, data);
    if (over) this.cmRejections.set(id, over);
    for (const key of Object.keys(data)) {
      const attachments = parsed?.get(key) ?? parseAttachments(meta, key, data[key]!, over);
      for (const a of attachments) {
        const form: Form = !a.parsed.ok ? 'unknown' : a.parsed.spec.ips || a.parsed.spec.ips6 ? 'sts' : 'pod';
        const e: RegEntry = { meta, key, parsed: a.parsed, form, network: a.network, prefix: a.prefix };
        entries.push(e);
        // Almost every key and address has one holder: `[x]` allocates room for one, where
        // `[]` + push would reserve 17 slots (~150 bytes each, times 20,000 lists).
        const k = nsKey(meta.namespace, key);
        const list = this.byKey.get(k);
        if (list) insertSorted(list, e, olderFirst);
        else this.byKey.set(k, [e]);
        for (const use of fixedUses(e)) {
          const uk = ipKey(use.net, use.ip);
          const ul = this.ipUses.get(uk);
          if (ul) insertSorted(ul, use.use, useOrder);
          else this.ipUses.set(uk, [use.use]);
        }
      }
    }
    this.regCms.set(id, entries);
  }

  private removeRegistrationCm(id: string): void {
    const old = this.regCms.get(id);
    if (!old) return;
    this.regCms.delete(id);
    this.cmRejections.delete(id);
    for (const e of old) {
      const k = nsKey(e.meta.namespace, e.key);
      const list = this.byKey.get(k)?.filter((x) => x !== e) ?? [];
      if (list.length) this.byKey.set(k, list);
      else this.byKey.delete(k);
      for (const use of fixedUses(e)) {
        const uk = ipKey(use.net, use.ip);
        const ul = this.ipUses.get(uk)?.filter((u) => u.entry !== e) ?? [];
        if (ul.length) this.ipUses.set(uk, ul);
        else this.ipUses.delete(uk);
      }
    }
  }

  private changed(): void {
    this.cache.clear();
    this.rest.clear();
    this.generation++;
  }

  /** The entry that decides a pod's attachment to a network: its exact key, else its StatefulSet key. */
  private governing(namespace: string, pod: string, network: string): { entry: RegEntry; ordinal: number | null } | null {
    const exact = firstFor(this.byKey.get(nsKey(namespace, pod)), network);
    if (exact && exact.form !== 'sts') return { entry: exact, ordinal: null };
    const m = STS_POD_RE.exec(pod);
    if (!m) return null;
    const sts = firstFor(this.byKey.get(nsKey(namespace, m[1]!)), network);
    if (sts && sts.form !== 'pod') return { entry: sts, ordinal: Number(m[2]) };
    return null;
  }

  /**
   * Resolve (cheap: microseconds), remembering only the verdict per pod: the conflict checks ask
   * "is this entry valid for that pod" often, and keeping whole settings for 10,000 pods would
   * double the index's memory.
   */
  private outcome(entry: RegEntry, pod: string, ordinal: number | null, verdictOnly = false): Outcome {
    const known = this.verdict(entry, pod);
    if (known !== undefined && known !== null) return { ok: false, rejection: known };
    const out = this.resolve(entry, ordinal, verdictOnly);
    if (known === undefined) this.remember(entry, pod, out.ok ? null : out.rejection);
    return out;
  }

  /** Whether the entry resolves for the pod, from the verdict cache when known. */
  private valid(entry: RegEntry, pod: string, ordinal: number | null): boolean {
    const known = this.verdict(entry, pod);
    if (known !== undefined) return known === null;
    return this.outcome(entry, pod, ordinal, true).ok;
  }

  /** A pod-form entry serves one pod only (its key), so its verdict is kept without a per-pod map. */
  private verdict(entry: RegEntry, pod: string): Rejection | null | undefined {
    const v = this.cache.get(entry);
    return v instanceof Map ? v.get(pod) : v;
  }

  private remember(entry: RegEntry, pod: string, verdict: Rejection | null): void {
    if (entry.form === 'pod') {
      this.cache.set(entry, verdict);
      return;
    }
    const perPod = this.cache.get(entry);
    if (perPod instanceof Map) perPod.set(pod, verdict);
    else this.cache.set(entry, new Map([[pod, verdict]]));
  }

  private resolve(entry: RegEntry, ordinal: number | null, verdictOnly = false): Outcome {
    if (!entry.parsed.ok) return { ok: false, rejection: entry.parsed.rejection };
    const spec = entry.parsed.spec;
    const fail = (field: string, why: string): Outcome => ({ ok: false, rejection: rejection(entry.meta, entry.key, entry.prefix + field, why) });
    const netName = (spec.network ?? spec.pool)!;
    const netField = spec.network !== undefined ? 'network' : 'pool';
    const net = this.networkByName.get(netName);
    if (!net) {
      const bad = this.rejectedNetworks.get(netName);
      if (bad) return fail(netField, `network "${netName}" is itself rejected: ${bad.message}`);
      const known = [...this.networkByName.keys()].sort();
      const shown = known.length > 20 ? `${known.slice(0, 20).join(', ')}, … ${known.length - 20} more` : known.join(', ');
      return fail(netField, `unknown network "${netName}" (known: ${known.length ? shown : 'none'})`);
    }
    if (net.allowedNamespaces && !net.allowedNamespaces.has(entry.meta.namespace)) {
      return fail(netField, `namespace "${entry.meta.namespace}" may not register on network "${netName}": it is not in allowedNamespaces of ${networkLabel(net)}`);
    }
    if (spec.vlan !== undefined && spec.vlan !== (net.spec.vlan ?? 0)) {
      return fail('vlan', `is ${spec.vlan} but network "${netName}" has ${net.spec.vlan === undefined ? 'no vlan' : `vlan ${net.spec.vlan}`}`);
    }

    // Addresses: [field, text] pairs for this pod.
    const addrs: Array<[string, string]> = [];
    if (spec.ip !== undefined) {
      if (typeof spec.ip === 'string') addrs.push(['ip', spec.ip]);
      else spec.ip.forEach((s, i) => addrs.push([`ip.${i}`, s]));
    }
    for (const f of ['ips', 'ips6'] as const) {
      const list = spec[f];
      if (!list) continue;
      const n = ordinal ?? 0;
      if (n >= list.length) return fail(f, `lists ${list.length} addresses; pod "${entry.key}-${n}" needs ordinal ${n}`);
      addrs.push([`${f}.${n}`, list[n]!]);
    }
    const ips: string[] = [];
    const families = new Set<Family>();
    for (const [field, text] of addrs) {
      const ip = parseIp(text);
      const subnet = net.subnets[ip.family];
      if (!subnet) return fail(field, `${text} is IPv${ip.family} but network "${netName}" has no ${ip.family === 4 ? 'subnet' : 'subnet6'}`);
      const why = hostAddressProblem(subnet, text);
      if (why) return fail(field, `${why} of network "${netName}"`);
      if (net.gateways[ip.family] === ip.value) return fail(field, `${text} is the gateway of network "${netName}"`);
      ips.push(`${formatIp(ip.family, ip.value)}/${subnet.prefix}`);
      families.add(ip.family);
    }
    if (spec.pool !== undefined) {
      if (!net.pool.length) return fail('pool', `network "${netName}" has no "ranges" to allocate from`);
      for (const r of net.pool) families.add(r.family);
    }
    // The rest depends on the entry and the pod's families only, which are the same for every
    // ordinal of a StatefulSet entry: worked out once per entry, not once per pod.
    const famKey = [...families].sort().join();
    const known = this.rest.get(entry);
    if (known && known.famKey === famKey) return known.out.ok && !verdictOnly ? { ok: true, settings: { ...known.out.settings, ips } } : known.out;
    const out = this.resolveRest(entry, net, families, ips);
    this.rest.set(entry, { famKey, out });
    return out;
  }

  private resolveRest(entry: RegEntry, net: NetworkModel, families: Set<Family>, ips: string[]): Outcome {
    const spec = (entry.parsed as { ok: true; spec: RegistrationSpec }).spec;
    const fail = (field: string, why: string): Outcome => ({ ok: false, rejection: rejection(entry.meta, entry.key, entry.prefix + field, why) });
    const netName = net.name;

    const gateways: string[] = [];
    for (const fam of [4, 6] as const) {
      const gw = net.gateways[fam];
      if (families.has(fam) && gw !== undefined) gateways.push(formatIp(fam, gw));
    }

    const routes: ResolvedRoute[] = [];
    const ownRoutes = spec.routes !== undefined;
    const routeList = spec.routes ?? net.spec.routes ?? [];
    for (let i = 0; i < routeList.length; i++) {
      const r = routeList[i]!;
      const fam = r.dst.includes(':') ? 6 : 4;
      if (!families.has(fam)) {
        if (ownRoutes) return fail(`routes.${i}.dst`, `is IPv${fam} but the pod has no IPv${fam} address`);
        continue; // a network route for a family this pod does not use
      }
      const gwText = r.gw ?? (net.gateways[fam] !== undefined ? formatIp(fam, net.gateways[fam]!) : undefined);
      if (ownRoutes) {
        if (gwText === undefined) return fail(`routes.${i}.gw`, `is required: network "${netName}" has no ${fam === 4 ? 'gateway' : 'gateway6'}`);
        const gw = parseIp(gwText);
        if (gw.family !== fam) return fail(`routes.${i}.gw`, `is not IPv${fam} like its dst`);
        if (hostAddressProblem(net.subnets[fam]!, gwText)) return fail(`routes.${i}.gw`, `${gwText} is not an on-link address of network "${netName}"`);
      }
      routes.push(gwText === undefined ? { dst: r.dst } : { dst: r.dst, gw: gwText });
    }

    const mtu = spec.mtu ?? net.spec.mtu;
    if (mtu !== undefined && families.has(6) && mtu < 1280) return fail('mtu', `is ${mtu}; IPv6 needs at least 1280`);
    const minTx = spec.qos?.minTxRateMbps ?? net.spec.qos?.minTxRateMbps;
    const maxTx = spec.qos?.maxTxRateMbps ?? net.spec.qos?.maxTxRateMbps;
    if (minTx !== undefined && maxTx && minTx > maxTx) {
      return fail(spec.qos?.minTxRateMbps !== undefined ? 'qos.minTxRateMbps' : 'qos.maxTxRateMbps', `minTxRateMbps ${minTx} exceeds maxTxRateMbps ${maxTx} (network "${netName}" defaults included)`);
    }

    const settings: ResolvedSettings = {
      network: netName,
      resourceName: net.spec.resourceName,
      ips,
      gateways,
      routes,
      duplicateDetection: net.spec.duplicateDetection,
      source: { namespace: entry.meta.namespace, configMap: entry.meta.name, key: entry.key, resourceVersion: entry.meta.resourceVersion },
    };
    if (net.spec.vlan !== undefined) settings.vlan = net.spec.vlan;
    if (net.spec.vlanQoS !== undefined) settings.vlanQoS = net.spec.vlanQoS;
    if (net.spec.vlanProto !== undefined) settings.vlanProto = net.spec.vlanProto;
    if (mtu !== undefined) settings.mtu = mtu;
    if (spec.mac !== undefined) settings.mac = spec.mac.toLowerCase();
    if (minTx !== undefined) settings.minTxRateMbps = minTx;
    if (maxTx !== undefined) settings.maxTxRateMbps = maxTx;
    if (net.spec.spoofchk !== undefined) settings.spoofchk = net.spec.spoofchk;
    if (net.spec.trust !== undefined) settings.trust = net.spec.trust;
    if (spec.pool !== undefined) settings.pool = { reserve: spec.reserve ?? false };
    return { ok: true, settings };
  }

  /** A use holds its address only if its entry governs that pod and resolves cleanly. */
  private effective(use: IpUse): boolean {
    const g = this.governing(use.entry.meta.namespace, use.pod, use.entry.network);
    if (!g || g.entry !== use.entry) return false;
    return this.valid(use.entry, use.pod, use.ordinal);
  }

  /** O(addresses of this pod): only the pod's own uses are looked at, never the whole entry's. */
  private conflictFor(entry: RegEntry, pod: string, ordinal: number | null): Rejection | null {
    for (const u of podUses(entry, pod, ordinal)) {
      const holder = this.ipUses.get(ipKey(u.net, u.ip))?.find((x) => this.effective(x));
      if (!holder || (holder.entry === entry && holder.pod === pod)) continue;
      const r = rejection(
        entry.meta,
        entry.key,
        u.use.field,
        `${u.ip} on network "${u.net}" is already registered by ${keyLabel(holder.entry.meta, holder.entry.key)}` +
          ` (pod ${holder.entry.meta.namespace}/${holder.pod}), which is older and keeps it`,
        'conflict',
      );
      r.heldBy = { namespace: holder.entry.meta.namespace, configMap: holder.entry.meta.name, key: holder.entry.key };
      return r;
    }
    return null;
  }

  /**
   * An entry's rejection, once: a StatefulSet entry whose pods are rejected for different reasons
   * (a conflict per ordinal) gives the first and how many more, not one message (and Event) each.
   */
  private entryRejections(e: RegEntry): Rejection[] {
    if (!e.parsed.ok) return [e.parsed.rejection];
    const winner = firstFor(this.byKey.get(nsKey(e.meta.namespace, e.key)), e.network);
    if (winner && winner !== e) {
      const where = keyLabel(winner.meta, winner.key).replace(/ key ".*"$/, '');
      return [rejection(e.meta, e.key, `${e.prefix}(key)`, `the same key and network "${e.network}" are in ${where}, which is older and is used`, 'shadowed')];
    }
    const count = e.form === 'sts' ? Math.max(e.parsed.spec.ips?.length ?? 0, e.parsed.spec.ips6?.length ?? 0) : 1;
    let first: Rejection | null = null;
    let more = 0;
    for (let i = 0; i < count; i++) {
      const [pod, ordinal] = e.form === 'sts' ? [`${e.key}-${i}`, i] : [e.key, null];
      const g = this.governing(e.meta.namespace, pod, e.network);
      if (!g || g.entry !== e) continue; // overridden by an exact pod key
      const o = this.outcome(e, pod, ordinal, true);
      const r = o.ok ? this.conflictFor(e, pod, ordinal) : o.rejection;
      if (!r) continue;
      if (!first) first = r;
      else if (r.message !== first.message) more++;
    }
    if (!first) return [];
    return more ? [{ ...first, message: `${first.message} (and ${more} more pods of this entry are rejected)` }] : [first];
  }
}

function cmId(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}
function splitCmId(id: string): [string, string] {
  const i = id.indexOf('/');
  return [id.slice(0, i), id.slice(i + 1)];
}
function nsKey(namespace: string, key: string): string {
  return `${namespace}\u0000${key}`;
}
function ipKey(network: string, ip: string): string {
  return `${network}|${ip}`;
}

/** The oldest entry of a key for a network; a malformed entry ('': it names none) stands for every network. */
function firstFor(list: RegEntry[] | undefined, network: string): RegEntry | undefined {
  return list?.find((e) => e.network === network || e.network === '');
}

function useOrder(a: IpUse, b: IpUse): number {
  return olderFirst(a.entry, b.entry) || (a.pod < b.pod ? -1 : a.pod > b.pod ? 1 : 0);
}

/** Insert keeping the order: O(log n) to find the place, where push + sort was O(n log n) per insert. */
function insertSorted<T>(list: T[], item: T, order: (a: T, b: T) => number): void {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (order(list[mid]!, item) <= 0) lo = mid + 1;
    else hi = mid;
  }
  list.splice(lo, 0, item);
}

type Attachments = ReturnType<typeof parseRegistrationKey<typeof registrationSchema>>;

/** One key's attachments; over a limit, every key is rejected unparsed, so its pod fails rather than going unregistered. */
function parseAttachments(meta: CmMeta, key: string, text: string, over: Rejection | null): Attachments {
  if (over) return [{ parsed: { ok: false, rejection: over }, network: '', prefix: '' }];
  return parseRegistrationKey(registrationSchema, meta, key, text, MAX_ATTACHMENTS);
}

/** A rejection for the whole ConfigMap when it is over a size or key-count limit, else null. */
function overLimit(meta: CmMeta, data: Record<string, string>): Rejection | null {
  const keys = Object.keys(data).length;
  let why: string | null = null;
  if (keys > MAX_KEYS_PER_CONFIGMAP) why = `has ${keys} keys; the limit is ${MAX_KEYS_PER_CONFIGMAP} per ConfigMap`;
  else {
    const bytes = dataBytes(data);
    if (bytes > MAX_CONFIGMAP_BYTES) why = `holds ${bytes} bytes; the limit is ${MAX_CONFIGMAP_BYTES} per ConfigMap`;
  }
  if (!why) return null;
  const r = rejection(meta, '', 'data', `${why}: none of its keys is used (split it)`);
  return { ...r, message: `configmap ${meta.namespace}/${meta.name}: field "data": ${why}: none of its keys is used (split it)` };
}

type Use = { net: string; ip: string; use: IpUse };

/** Every fixed address an entry names, with the pod each is for (canonical text). */
function fixedUses(e: RegEntry): Use[] {
  if (!e.parsed.ok) return [];
  const spec = e.parsed.spec;
  const out: Use[] = [];
  if (spec.ip !== undefined) out.push(...podUses(e, e.key, null));
  const n = Math.max(spec.ips?.length ?? 0, spec.ips6?.length ?? 0);
  for (let i = 0; i < n; i++) out.push(...podUses(e, `${e.key}-${i}`, i));
  return out;
}

/** The fixed addresses one pod gets from an entry: its `ip`, or its ordinal's `ips`/`ips6`. */
function podUses(e: RegEntry, pod: string, ordinal: number | null): Use[] {
  if (!e.parsed.ok) return [];
  const spec = e.parsed.spec;
  const net = (spec.network ?? spec.pool)!;
  const out: Use[] = [];
  const add = (text: string, field: string) => {
    const ip = parseIp(text);
    out.push({ net, ip: formatIp(ip.family, ip.value), use: { entry: e, pod, ordinal, field: e.prefix + field } });
  };
  if (ordinal === null) {
    if (typeof spec.ip === 'string') add(spec.ip, 'ip');
    else spec.ip?.forEach((s, i) => add(s, `ip.${i}`));
  } else {
    const v4 = spec.ips?.[ordinal];
    const v6 = spec.ips6?.[ordinal];
    if (v4 !== undefined) add(v4, `ips.${ordinal}`);
    if (v6 !== undefined) add(v6, `ips6.${ordinal}`);
  }
  return out;
}
