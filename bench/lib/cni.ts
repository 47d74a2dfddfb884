/** Driving a CNI plugin the way a container runtime does: env variables, netconf on stdin. */
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as os from 'node:os';
import type { Invocation } from './process';

/** Where Debian's containernetworking-plugins installs the standard plugins. */
export const DEBIAN_CNI_PATH = '/usr/lib/cni';

export interface CniCall {
  plugin: string;
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION';
  containerId: string;
  netns: string;
  ifname: string;
  netconf: object;
  cniPath?: string;
  /** More of the runtime's environment (e.g. SRIOV_UNDERLAY_CNI_SOCKET). */
  env?: Record<string, string>;
}

export function cniInvocation(call: CniCall): Invocation {
  return {
    file: call.plugin,
    env: {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: call.command,
      CNI_CONTAINERID: call.containerId,
      CNI_NETNS: call.netns,
      CNI_IFNAME: call.ifname,
      CNI_PATH: call.cniPath ?? DEBIAN_CNI_PATH,
      // The benches keep state and emulated sysfs in temp dirs, which only the runtime's environment can allow.
      SRIOV_UNDERLAY_PATH_PREFIXES: os.tmpdir(),
      ...call.env,
    },
    stdin: JSON.stringify(call.netconf),
  };
}

/** A fresh named netns (iproute2 bind-mounts it under /var/run/netns); returns its path. */
export function createNetns(name: string): string {
  execFileSync('ip', ['netns', 'add', name], { stdio: ['ignore', 'ignore', 'pipe'] });
  return `/var/run/netns/${name}`;
}

export function deleteNetns(name: string): void {
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: ['ignore', 'ignore', 'ignore'] });
  } catch {
    // already gone
  }
}

/** IPv4 addresses (cidr) and route destinations of an interface inside a named netns. */
export function inspectNetns(name: string, ifname: string): { addrs: string[]; routes: string[] } {
  const addrs = JSON.parse(
    execFileSync('ip', ['-n', name, '-j', '-4', 'addr', 'show', 'dev', ifname], { encoding: 'utf8' }),
  ) as { addr_info: { local: string; prefixlen: number }[] }[];
  const routes = JSON.parse(
    execFileSync('ip', ['-n', name, '-j', '-4', 'route', 'show', 'dev', ifname], { encoding: 'utf8' }),
  ) as { dst: string; gateway?: string }[];
  return {
    addrs: addrs.flatMap((l) => l.addr_info.map((a) => `${a.local}/${a.prefixlen}`)),
    routes: routes.map((r) => (r.gateway ? `${r.dst} via ${r.gateway}` : r.dst)),
  };
}

export const randomSuffix = (n = 4): string => crypto.randomBytes(n).toString('hex').slice(0, n);
