/**
 * The emulated 82576 seen through real sysfs and iproute2. Deliberately independent of src/ (our
 * netlink and sysfs layers): the VM tier checks the product with the kernel's own tools.
 */
import { existsSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { ip, sleep, tryIp, waitFor } from './sh';

const NET = '/sys/class/net';
const PCI = '/sys/bus/pci/devices';

const readTrim = (p: string): string => readFileSync(p, 'utf8').trim();

/** The PF: the host netdev driven by igb. */
export function findPf(): string {
  for (const n of readdirSync(NET)) {
    const drv = `${NET}/${n}/device/driver`;
    if (existsSync(drv) && basename(readlinkSync(drv)) === 'igb') return n;
  }
  throw new Error('no netdev driven by igb (is the igb device on the QEMU command line?)');
}

export const pfPci = (pf: string): string => basename(readlinkSync(`${NET}/${pf}/device`));

/** PCI address of VF `i` of the PF, from its virtfnN link. */
export const vfPci = (pf: string, i: number): string => basename(readlinkSync(`${NET}/${pf}/device/virtfn${i}`));

/** The VF's host netdev from <vf>/net/, or null when it is in another netns (or userspace-bound). */
export function vfNetdev(pci: string): string | null {
  const dir = `${PCI}/${pci}/net`;
  if (!existsSync(dir)) return null;
  return readdirSync(dir)[0] ?? null;
}

export interface NetdevState {
  name: string;
  mac: string;
  mtu: number;
}

/** Name, MAC and MTU of the VF's host netdev, found through sysfs by PCI address. */
export function vfNetdevState(pci: string): NetdevState | null {
  const name = vfNetdev(pci);
  if (!name) return null;
  return { name, mac: readTrim(`${NET}/${name}/address`), mtu: Number(readTrim(`${NET}/${name}/mtu`)) };
}

/** Set sriov_numvfs (through 0, as the kernel requires) and wait for every igbvf netdev. */
export async function setNumVfs(pf: string, n: number): Promise<string[]> {
  const f = `${NET}/${pf}/device/sriov_numvfs`;
  if (Number(readTrim(f)) !== 0) writeFileSync(f, '0');
  if (n === 0) return [];
  writeFileSync(f, String(n));
  const vfs = Array.from({ length: n }, (_, i) => vfPci(pf, i));
  await waitFor(`${n} igbvf netdevs on ${pf}`, () => vfs.every((v) => vfNetdev(v) !== null), 60_000);
  return vfs;
}

/**
 * Bring the PF up and wait for its link. igb only accepts max_tx_rate once its watchdog has seen the
 * link (it needs the link speed), which is 2-3 s after `up` under TCG.
 */
export async function pfUp(pf: string): Promise<void> {
  await ip('link', 'set', 'dev', pf, 'up');
  await waitFor(`carrier on ${pf}`, () => {
    try {
      return readTrim(`${NET}/${pf}/carrier`) === '1' && Number(readTrim(`${NET}/${pf}/speed`)) > 0;
    } catch {
      return false; // carrier/speed read EINVAL while the device is down
    }
  }, 60_000, 250);
}

/** Whole `vf N ...` lines of `ip -d link show <PF>`, as iproute2 prints them, indexed by VF. */
export async function vfLines(pf: string): Promise<string[]> {
  const out = await ip('-d', 'link', 'show', 'dev', pf);
  const lines: string[] = [];
  for (const l of out.split('\n')) {
    const m = /^\s*vf (\d+)\s+(.*)$/.exec(l);
    if (m) lines[Number(m[1])] = `vf ${m[1]} ${m[2]!.trim()}`;
  }
  return lines;
}

/** One VF's entry of iproute2's JSON `vfinfo_list`, reduced to the fields the tests compare. */
export interface VfView {
  vf: number;
  mac: string;
  vlan: number;
  qos: number;
  spoofchk: boolean | undefined;
  trust: boolean | undefined;
  linkState: string | undefined;
  maxTxRate: number;
  minTxRate: number;
}

interface IpVfJson {
  vf: number;
  address?: string;
  vlan_list?: { vlan?: number; qos?: number }[];
  vlan?: number;
  qos?: number;
  rate?: { max_tx?: number; min_tx?: number };
  spoofchk?: boolean;
  trust?: boolean;
  link_state?: string;
}

export async function vfViews(pf: string): Promise<VfView[]> {
  const [link] = JSON.parse(await ip('-j', '-d', 'link', 'show', 'dev', pf)) as { vfinfo_list?: IpVfJson[] }[];
  return (link?.vfinfo_list ?? []).map((v) => ({
    vf: v.vf,
    mac: v.address ?? '',
    vlan: v.vlan_list?.[0]?.vlan ?? v.vlan ?? 0,
    qos: v.vlan_list?.[0]?.qos ?? v.qos ?? 0,
    spoofchk: v.spoofchk,
    trust: v.trust,
    linkState: v.link_state,
    maxTxRate: v.rate?.max_tx ?? 0,
    minTxRate: v.rate?.min_tx ?? 0,
  }));
}

export async function vfView(pf: string, i: number): Promise<VfView> {
  const v = (await vfViews(pf)).find((x) => x.vf === i);
  if (!v) throw new Error(`${pf} reports no VF ${i}`);
  return v;
}

/** `ip link set PF vf N <args>`; returns iproute2's stderr on failure ('' on success). */
export async function trySetVf(pf: string, i: number, ...args: string[]): Promise<string> {
  const r = await tryIp('link', 'set', 'dev', pf, 'vf', String(i), ...args);
  return r.code === 0 ? '' : r.stderr.trim() || `exit ${r.code}`;
}

/** Wait for the VF's netdev to be back in the host netns (after its netns died), return its name. */
export const waitVfHome = (pci: string, timeoutMs = 60_000): Promise<string> =>
  waitFor(`VF ${pci} back in the host netns`, () => vfNetdev(pci), timeoutMs, 250);

export { sleep };
