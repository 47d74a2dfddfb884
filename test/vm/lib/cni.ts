/**
 * Drives the built CNI binary the way a container runtime does: netconf on stdin, CNI_* in the
 * environment, result or error JSON on stdout, exit code. Static IPAM comes from Debian's
 * containernetworking-plugins (/usr/lib/cni), found through CNI_PATH.
 */
import type { ChildProcess } from 'node:child_process';
import { collect, start, type RunResult } from './sh';

export const CNI_PATH = '/usr/lib/cni';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';

export interface CniError {
  cniVersion?: string;
  code: number;
  msg: string;
  details?: string;
}

export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string; mtu?: number; pciID?: string }[];
  ips?: { address: string; interface?: number; gateway?: string }[];
  routes?: { dst: string; gw?: string }[];
}

export interface CniOutcome extends RunResult {
  /** Parsed stdout when the call succeeded and printed something. */
  result?: CniResult;
  /** Parsed stdout when the call failed (the spec's error object). */
  error?: CniError;
}

export interface Attachment {
  containerId: string;
  /** Path of the pod netns, e.g. /run/netns/x (may no longer exist for DEL). */
  netns: string;
  ifname: string;
  podName?: string;
}

export type Netconf = Record<string, unknown>;

export interface NetconfOptions {
  deviceID: string;
  stateDir: string;
  logFile: string;
  address: string;
  [key: string]: unknown;
}

/** The netconf the VM scenarios use: the contract's example, with per-test overrides. */
export function netconf({ deviceID, stateDir, logFile, address, ...overrides }: NetconfOptions): Netconf {
  return {
    cniVersion: '1.0.0',
    name: 'vmnet',
    type: 'sriov-underlay',
    deviceID,
    vlan: 100,
    vlanQoS: 3,
    spoofchk: 'on',
    trust: 'on',
    max_tx_rate: 100,
    mtu: 1400,
    ipam: { type: 'static', addresses: [{ address }] },
    sysfsRoot: '/sys',
    stateDir,
    logFile,
    logLevel: 'debug',
    ...overrides,
  };
}

export class Cni {
  /** pathPrefixes: where netconf paths may point besides the defaults (SRIOV_UNDERLAY_PATH_PREFIXES). */
  /** extraEnv: e.g. the CNI server's socket (SRIOV_UNDERLAY_CNI_SOCKET), as the runtime's environment. */
  constructor(
    readonly bin: string,
    readonly pathPrefixes: string[] = [],
    readonly extraEnv: Record<string, string> = {},
  ) {}

  private env(cmd: CniCommand, a: Attachment): NodeJS.ProcessEnv {
    const pod = a.podName ?? a.containerId.slice(0, 12);
    return {
      PATH: process.env.PATH,
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: a.containerId,
      CNI_NETNS: a.netns,
      CNI_IFNAME: a.ifname,
      CNI_PATH,
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=vmtest;K8S_POD_NAME=${pod};K8S_POD_UID=${a.containerId}`,
      SRIOV_UNDERLAY_PATH_PREFIXES: this.pathPrefixes.join(':'),
      ...this.extraEnv,
    };
  }

  /** Start a call without waiting (the SIGKILL scenario kills it midway). */
  spawn(cmd: CniCommand, a: Attachment, conf: Netconf): ChildProcess {
    return start(this.bin, [], { env: this.env(cmd, a), input: JSON.stringify(conf) });
  }

  async call(cmd: CniCommand, a: Attachment, conf: Netconf, timeoutMs = 60_000): Promise<CniOutcome> {
    return parse(await collect(this.spawn(cmd, a, conf), timeoutMs));
  }

  add = (a: Attachment, conf: Netconf): Promise<CniOutcome> => this.call('ADD', a, conf);
  /** CHECK and DEL get the ADD result as prevResult, as runtimes send it. */
  check = (a: Attachment, conf: Netconf, prev?: CniResult): Promise<CniOutcome> =>
    this.call('CHECK', a, prev ? { ...conf, prevResult: prev } : conf);
  del = (a: Attachment, conf: Netconf, prev?: CniResult): Promise<CniOutcome> =>
    this.call('DEL', a, prev ? { ...conf, prevResult: prev } : conf);
}

export function parse(r: RunResult): CniOutcome {
  const out: CniOutcome = { ...r };
  const text = r.stdout.trim();
  if (!text) return out;
  try {
    const j = JSON.parse(text) as unknown;
    if (r.code === 0) out.result = j as CniResult;
    else out.error = j as CniError;
  } catch {
    // Left unparsed: a scenario asserting on result/error reports the raw stdout.
  }
  return out;
}

/** One line describing a call's outcome, for assertion messages. */
export function describe(o: CniOutcome): string {
  const how = o.signal ? `killed by ${o.signal}` : `exit ${o.code}`;
  return `${how}; stdout ${o.stdout.trim().slice(0, 400) || '(empty)'}; stderr ${o.stderr.trim().slice(0, 300) || '(empty)'}`;
}
