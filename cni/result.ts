/**
 * CNI results: one internal shape (the 1.1.0 one) and conversion to and from every version we
 * speak. IPAM plugins answer in the version we ask, so parsing accepts all of them.
 */
import { CniCode, UnderlayError } from '../src/errors';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  pciID?: string;
}
export interface CniIp {
  address: string; // CIDR
  gateway?: string;
  interface?: number;
}
export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}
export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}
export interface CniResult {
  interfaces: CniInterface[];
  ips: CniIp[];
  routes: CniRoute[];
  dns: CniDns;
}

export function emptyResult(): CniResult {
  return { interfaces: [], ips: [], routes: [], dns: {} };
}

export function versionAtLeast(v: string, min: string): boolean {
  const a = v.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

export function assertSupported(v: string): void {
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(v)) {
    throw new UnderlayError(
      CniCode.IncompatibleVersion,
      `CNI version ${v} is not supported`,
      `supported versions: ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Parse a result of any supported version (a prevResult or an IPAM plugin's answer). */
export function parseResult(raw: unknown, what: string): CniResult {
  if (!isObj(raw)) throw new UnderlayError(CniCode.DecodeFailure, `${what} is not a JSON object`);
  const out = emptyResult();
  if (Array.isArray(raw.interfaces)) {
    for (const i of raw.interfaces) {
      if (!isObj(i) || typeof i.name !== 'string') throw new UnderlayError(CniCode.DecodeFailure, `${what}: interface without a name`);
      const iface: CniInterface = { name: i.name };
      if (typeof i.mac === 'string') iface.mac = i.mac;
      if (typeof i.mtu === 'number') iface.mtu = i.mtu;
      if (typeof i.sandbox === 'string') iface.sandbox = i.sandbox;
      if (typeof i.pciID === 'string') iface.pciID = i.pciID;
      out.interfaces.push(iface);
    }
  }
  if (Array.isArray(raw.ips)) {
    for (const ip of raw.ips) {
      if (!isObj(ip) || typeof ip.address !== 'string') throw new UnderlayError(CniCode.DecodeFailure, `${what}: ip without an address`);
      const e: CniIp = { address: ip.address };
      if (typeof ip.gateway === 'string') e.gateway = ip.gateway;
      if (typeof ip.interface === 'number') e.interface = ip.interface;
      out.ips.push(e);
    }
  }
  if (Array.isArray(raw.routes)) {
    for (const r of raw.routes) {
      if (!isObj(r) || typeof r.dst !== 'string') throw new UnderlayError(CniCode.DecodeFailure, `${what}: route without a dst`);
      const e: CniRoute = { dst: r.dst };
      for (const k of ['gw'] as const) if (typeof r[k] === 'string') e[k] = r[k] as string;
      for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) if (typeof r[k] === 'number') e[k] = r[k] as number;
      out.routes.push(e);
    }
  }
  if (isObj(raw.dns)) out.dns = raw.dns as CniDns;
  return out;
}

/** Render for the version the runtime asked for. */
export function formatResult(r: CniResult, version: string): Record<string, unknown> {
  const legacy = !versionAtLeast(version, '1.0.0');
  const v11 = versionAtLeast(version, '1.1.0');
  const interfaces = r.interfaces.map((i) => {
    const o: Record<string, unknown> = { name: i.name };
    if (i.mac !== undefined) o.mac = i.mac;
    if (v11 && i.mtu !== undefined) o.mtu = i.mtu;
    if (i.sandbox !== undefined) o.sandbox = i.sandbox;
    if (v11 && i.pciID !== undefined) o.pciID = i.pciID;
    return o;
  });
  const ips = r.ips.map((ip) => {
    const o: Record<string, unknown> = {};
    if (legacy) o.version = ip.address.includes(':') ? '6' : '4';
    o.address = ip.address;
    if (ip.gateway !== undefined) o.gateway = ip.gateway;
    if (ip.interface !== undefined) o.interface = ip.interface;
    return o;
  });
  const routes = r.routes.map((rt) => {
    if (v11) return { ...rt };
    const o: Record<string, unknown> = { dst: rt.dst };
    if (rt.gw !== undefined) o.gw = rt.gw;
    return o;
  });
  const out: Record<string, unknown> = { cniVersion: version, interfaces, ips };
  if (routes.length) out.routes = routes;
  out.dns = r.dns;
  return out;
}
