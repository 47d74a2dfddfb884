/**
 * sriov-underlay CNI plugin: stdin + CNI_* env in; a result or a CNI error JSON on stdout, and
 * nothing else there: logs go to a file. The process entry is cni/entry.ts.
 */
import * as fs from 'node:fs';
import { asUnderlayError, CniCode, UnderlayError } from '../src/errors';
import { fileLogger, silentLogger, type Logger } from '../src/log';
import { describeIssues } from '../src/schemas/format';
import { netconfSchema, type NetConf } from '../src/schemas/netconf';
import { cmdAdd } from './add';
import { cmdCheck } from './check';
import { DEFAULT_LOG_FILE, netconfPathIssues } from './context';
import { cmdDel } from './del';
import { cmdGc } from './gc';
import { agentPodSettings } from './agent-client';
import { assertSupported, formatResult, parseResult, SUPPORTED_VERSIONS, versionAtLeast, type CniResult } from './result';
import { parseInvocation, type Command } from './skel';
import { cmdStatus } from './status';

function readStdin(): Buffer {
  try {
    return fs.readFileSync(0);
  } catch {
    return Buffer.alloc(0);
  }
}

function print(obj: unknown): void {
  fs.writeSync(1, `${JSON.stringify(obj)}\n`);
}

const MIN_VERSION: Partial<Record<Command, string>> = { CHECK: '0.4.0', STATUS: '1.1.0', GC: '1.1.0' };

export function parseNetconf(stdin: Buffer, env: NodeJS.ProcessEnv = process.env): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin.toString('utf8'));
  } catch (e) {
    throw new UnderlayError(CniCode.DecodeFailure, `netconf on stdin is not valid JSON: ${(e as Error).message}`);
  }
  const name = typeof raw === 'object' && raw !== null && typeof (raw as { name?: unknown }).name === 'string' ? (raw as { name: string }).name : '?';
  const parsed = netconfSchema.safeParse(raw);
  if (!parsed.success) throw new UnderlayError(CniCode.InvalidNetworkConfig, describeIssues(`netconf "${name}"`, parsed.error.issues));
  const pathIssues = netconfPathIssues(parsed.data, env);
  if (pathIssues.length) throw new UnderlayError(CniCode.InvalidNetworkConfig, describeIssues(`netconf "${name}"`, pathIssues));
  return parsed.data;
}

/** Chained after another plugin: keep its interfaces and IPs, append ours. */
function mergeWithPrev(prev: CniResult | null, ours: CniResult): CniResult {
  if (!prev) return ours;
  const offset = prev.interfaces.length;
  return {
    interfaces: [...prev.interfaces, ...ours.interfaces],
    ips: [...prev.ips, ...ours.ips.map((ip) => ({ ...ip, interface: (ip.interface ?? 0) + offset }))],
    routes: [...prev.routes, ...ours.routes],
    dns: Object.keys(ours.dns).length ? ours.dns : prev.dns,
  };
}

function makeLogger(conf: NetConf, containerId: string, command: string): Logger {
  const file = conf.logFile ?? DEFAULT_LOG_FILE;
  if (file === '') return silentLogger();
  try {
    return fileLogger(file, conf.logLevel ?? 'info', { plugin: 'sriov-underlay', net: conf.name, container: containerId, cmd: command });
  } catch {
    return silentLogger(); // an unwritable log file must not fail the pod
  }
}

export async function run(): Promise<number> {
  const stdin = readStdin();
  let version = '1.1.0';
  let log: Logger | null = null;
  try {
    const inv = parseInvocation(process.env, stdin);
    if (inv.command === 'VERSION') {
      let asked = '1.1.0';
      try {
        const v = (JSON.parse(stdin.toString('utf8') || '{}') as { cniVersion?: unknown }).cniVersion;
        if (typeof v === 'string') asked = v;
      } catch {
        /* VERSION tolerates an empty or odd stdin */
      }
      print({ cniVersion: asked, supportedVersions: SUPPORTED_VERSIONS });
      return 0;
    }
    const conf = parseNetconf(stdin);
    version = conf.cniVersion;
    assertSupported(conf.cniVersion);
    const min = MIN_VERSION[inv.command];
    if (min && !versionAtLeast(conf.cniVersion, min)) {
      throw new UnderlayError(CniCode.IncompatibleVersion, `${inv.command} needs cniVersion ${min} or later, netconf says ${conf.cniVersion}`);
    }
    log = makeLogger(conf, inv.containerId, inv.command);
    const prev = conf.prevResult === undefined ? null : parseResult(conf.prevResult, 'prevResult');
    switch (inv.command) {
      case 'ADD': {
        const ours = await cmdAdd(inv, conf, agentPodSettings, log);
        print(formatResult(mergeWithPrev(prev, ours), conf.cniVersion));
        break;
      }
      case 'DEL':
        await cmdDel(inv, conf, log);
        break;
      case 'CHECK':
        await cmdCheck(inv, conf, prev);
        break;
      case 'GC':
        await cmdGc(inv, conf, log);
        break;
      case 'STATUS':
        await cmdStatus(inv, conf);
        break;
    }
    return 0;
  } catch (e) {
    const err = asUnderlayError(e);
    log?.error({ code: err.code, err: err.message, details: err.details }, 'failed');
    print(err.toCni(version));
    return 1;
  }
}

