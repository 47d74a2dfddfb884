/**
 * sriov-underlay CNI plugin as one function: (environment, stdin) → (stdout bytes, exit code).
 * It reads no process-global state (no process.env, no fd 0 or 1, no process.exitCode), so two
 * entry points run the same code: cni/entry.ts (the standalone executable, one call per process)
 * and the CNI server (node/cni-server/, many concurrent calls in one process). Logs go to the
 * netconf's log file through a logger opened and closed per call, never to stdout.
 */
import { asUnderlayError, CniCode, UnderlayError } from '../src/errors';
import { fileLogger, silentLogger, type FileLogger } from '../src/log';
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
import { noStepTimes, stepClockMs, stepTimes, type StepTimes } from './step-times';

const MIN_VERSION: Partial<Record<Command, string>> = { CHECK: '0.4.0', STATUS: '1.1.0', GC: '1.1.0' };

export function parseNetconf(stdin: Buffer, env: NodeJS.ProcessEnv): NetConf {
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

/** Who served a call, on every log line: "server", or what the shim said when it fell back. */
const SERVED_BY_ENV = 'SRIOV_UNDERLAY_SERVED_BY';
const SERVED_BY_RE = /^[a-z][a-z0-9:-]{0,63}$/;

export function servedByOf(env: NodeJS.ProcessEnv): string {
  const v = env[SERVED_BY_ENV];
  if (v === undefined || v === '') return 'direct';
  return SERVED_BY_RE.test(v) ? v : 'invalid-marker';
}

function makeLogger(conf: NetConf, containerId: string, command: string, servedBy: string): FileLogger {
  const file = conf.logFile ?? DEFAULT_LOG_FILE;
  const silent = { log: silentLogger(), close() {} };
  if (file === '') return silent;
  try {
    return fileLogger(file, conf.logLevel ?? 'info', { plugin: 'sriov-underlay', net: conf.name, container: containerId, cmd: command, servedBy });
  } catch {
    return silent; // an unwritable log file must not fail the pod
  }
}

/** One CNI call: what a runtime passes to a plugin process. */
export interface CniCall {
  /** The call's environment: CNI_* and SRIOV_UNDERLAY_* are read from it, IPAM plugins get it. */
  env: NodeJS.ProcessEnv;
  stdin: Buffer;
}

/** What the plugin process would write to stdout and exit with. */
export interface CniOutcome {
  stdout: Buffer;
  exitCode: number;
  /** The command, once the environment named a valid one (for the server's metrics). */
  command?: Command;
}

export interface RunOptions {
  /** Logged on every line; default: the call's SRIOV_UNDERLAY_SERVED_BY, else "direct". */
  servedBy?: string;
  /** More STATUS readiness checks of the entry point (the server's own); throw a CNI error when not ready. */
  statusChecks?: (conf: NetConf) => Promise<void>;
}

const line = (obj: unknown) => Buffer.from(`${JSON.stringify(obj)}\n`);

export async function runCni(call: CniCall, opts: RunOptions = {}): Promise<CniOutcome> {
  const startMs = stepClockMs();
  const { env, stdin } = call;
  let steps: StepTimes = noStepTimes;
  let version = '1.1.0';
  let command: Command | undefined;
  let logger: FileLogger | null = null;
  try {
    const inv = parseInvocation(env, stdin);
    command = inv.command;
    if (inv.command === 'VERSION') {
      let asked = '1.1.0';
      try {
        const v = (JSON.parse(stdin.toString('utf8') || '{}') as { cniVersion?: unknown }).cniVersion;
        if (typeof v === 'string') asked = v;
      } catch {
        /* VERSION tolerates an empty or odd stdin */
      }
      return { stdout: line({ cniVersion: asked, supportedVersions: SUPPORTED_VERSIONS }), exitCode: 0, command };
    }
    const conf = parseNetconf(stdin, env);
    version = conf.cniVersion;
    assertSupported(conf.cniVersion);
    const min = MIN_VERSION[inv.command];
    if (min && !versionAtLeast(conf.cniVersion, min)) {
      throw new UnderlayError(CniCode.IncompatibleVersion, `${inv.command} needs cniVersion ${min} or later, netconf says ${conf.cniVersion}`);
    }
    logger = makeLogger(conf, inv.containerId, inv.command, opts.servedBy ?? servedByOf(env));
    const log = logger.log;
    steps = stepTimes(log, inv.command, startMs);
    steps.mark('parse-and-open-log');
    const prev = conf.prevResult === undefined ? null : parseResult(conf.prevResult, 'prevResult');
    let stdout = Buffer.alloc(0);
    switch (inv.command) {
      case 'ADD': {
        const ours = await cmdAdd(inv, conf, agentPodSettings, log, steps);
        stdout = line(formatResult(mergeWithPrev(prev, ours), conf.cniVersion));
        break;
      }
      case 'DEL':
        await cmdDel(inv, conf, log, steps);
        break;
      case 'CHECK':
        await cmdCheck(inv, conf, prev);
        break;
      case 'GC':
        await cmdGc(inv, conf, log);
        break;
      case 'STATUS':
        await cmdStatus(inv, conf);
        if (opts.statusChecks) await opts.statusChecks(conf);
        break;
    }
    return { stdout, exitCode: 0, command };
  } catch (e) {
    const err = asUnderlayError(e);
    logger?.log.error({ code: err.code, err: err.message, details: err.details }, 'failed');
    return { stdout: line(err.toCni(version)), exitCode: 1, ...(command ? { command } : {}) };
  } finally {
    steps.mark('result');
    steps.done();
    logger?.close();
  }
}
