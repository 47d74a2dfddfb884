/**
 * The CNI's side of the agent socket. Tiny on purpose (node:net and zod/mini only): it is on the
 * pod's start-up path. The plugin holds no Kubernetes credentials; everything it knows about a pod's
 * registration comes through here. DEL never calls it.
 */
import * as net from 'node:net';
import { CniCode, UnderlayError, type CniCodeValue } from '../src/errors';
import { describeIssues } from '../src/schemas/format';
import { lookupAnswerSchema, PROTOCOL_VERSION, type LookupAnswer, type LookupRequest, type ReportRequest } from '../src/schemas/agent-protocol';
import { formatSource } from '../src/registrations/types';
import type { PodSettings, PodSettingsSource } from './pod-settings';

/**
 * How long one lookup may take. The agent may have to create the pod's IPClaim against a busy API
 * server before it answers (seconds, under its own API timeout), so a 6 s answer is still waited
 * for; past 10 s the ADD fails with code 11 and the runtime tries again (kubelet retries a failed
 * sandbox; its own CRI deadline is minutes). Nothing on the VF has changed by then: the lookup comes
 * before the lock and the record.
 */
export const AGENT_TIMEOUT_MS = 10_000;
/** An answer is one JSON line of a few hundred bytes; a bigger one is garbage, not read further. */
export const MAX_ANSWER_BYTES = 64 * 1024;

function unreachable(socketPath: string, why: string): UnderlayError {
  return new UnderlayError(
    CniCode.TryAgainLater,
    `node agent unreachable at ${socketPath} (${why}): check that the sriov-underlay-node pod is running on this node ` +
      `and that netconf "agentSocket" names the socket it serves (mounted from the host). Nothing was changed on the VF`,
  );
}

/** Send one lookup and return the validated answer. Network-level failures → code 11 (try again later). */
export function agentLookup(socketPath: string, req: Omit<LookupRequest, 'v' | 'op'>, timeoutMs = AGENT_TIMEOUT_MS): Promise<LookupAnswer> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: UnderlayError | null, a?: LookupAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(a!);
    };
    const sock = net.createConnection(socketPath);
    const timer = setTimeout(
      () => finish(unreachable(socketPath, `no answer within ${timeoutMs} ms, the bound one lookup gets before the runtime should retry`)),
      timeoutMs,
    );
    sock.on('error', (e: NodeJS.ErrnoException) => finish(unreachable(socketPath, e.code ?? e.message)));
    sock.on('connect', () => sock.write(`${JSON.stringify({ v: PROTOCOL_VERSION, op: 'lookup', ...req })}\n`));
    // Bytes, not decoded text: the bound holds whatever the peer sends, and a UTF-8 sequence split
    // across chunks is decoded only once the line is whole.
    const chunks: Buffer[] = [];
    let size = 0;
    sock.on('data', (chunk: Buffer) => {
      const nl = chunk.indexOf(0x0a);
      const part = nl === -1 ? chunk : chunk.subarray(0, nl);
      size += part.length;
      if (size > MAX_ANSWER_BYTES) return finish(badAnswer(socketPath, `more than ${MAX_ANSWER_BYTES} bytes without an end of line`));
      chunks.push(part);
      if (nl === -1) return;
      const [err, answer] = decode(socketPath, Buffer.concat(chunks).toString('utf8'));
      finish(err, answer);
    });
    sock.on('end', () => finish(unreachable(socketPath, size ? 'connection closed in the middle of an answer' : 'connection closed without an answer')));
  });
}

/** How long a failed ADD waits to tell the agent (best effort: the ADD's own error is what counts). */
export const REPORT_TIMEOUT_MS = 1_000;

/** Tell the agent about a failed ADD so it records an Event; never throws, resolves when done or timed out. */
export function agentReport(socketPath: string, req: Omit<ReportRequest, 'v' | 'op'>, timeoutMs = REPORT_TIMEOUT_MS): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const sock = net.createConnection(socketPath);
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('error', () => finish(false));
    sock.on('connect', () => sock.write(`${JSON.stringify({ v: PROTOCOL_VERSION, op: 'report', ...req })}\n`));
    sock.on('data', (chunk: string) => finish(chunk.includes('"ok":true')));
    sock.on('end', () => finish(false));
  });
}

/** Garbage from the agent is its fault, not the pod's: code 11, so the runtime retries once it is fixed or restarted. */
function badAnswer(socketPath: string, why: string): UnderlayError {
  return new UnderlayError(
    CniCode.TryAgainLater,
    `node agent at ${socketPath} sent an answer this plugin does not understand (${why}); are the agent and the plugin the same version? Nothing was changed on the VF`,
  );
}

function decode(socketPath: string, line: string): [UnderlayError | null, LookupAnswer?] {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return [badAnswer(socketPath, 'not JSON')];
  }
  const p = lookupAnswerSchema.safeParse(raw);
  if (!p.success) return [badAnswer(socketPath, describeIssues('answer', p.error.issues))];
  return [null, p.data];
}

/** The answer as the plugin's PodSettings: null when the pod has no registration and no VF from the agent. */
export function answerToPodSettings(a: LookupAnswer): PodSettings | null {
  if (!a.ok) throw new UnderlayError(a.code as CniCodeValue, a.message, a.details);
  if (!a.registered) return a.deviceID ? { source: 'node agent (PodResources)', deviceID: a.deviceID } : null;
  return { source: formatSource(a.source), ...a.settings };
}

/**
 * The PodSettingsSource used when the netconf sets `agentSocket`. Without it the plugin behaves
 * like sriov-cni (no per-pod settings): registrations are opt-in per network, and a missing agent
 * is never mistaken for "no registration".
 */
export const agentPodSettings: PodSettingsSource = async (conf, inv) => {
  if (!conf.agentSocket || !inv.pod) return null;
  const answer = await agentLookup(conf.agentSocket, {
    namespace: inv.pod.namespace,
    name: inv.pod.name,
    uid: inv.pod.uid,
    containerId: inv.containerId,
    ifName: inv.ifName,
    network: conf.name,
    ...(conf.deviceID ? { deviceID: conf.deviceID } : {}),
  });
  return answerToPodSettings(answer);
};
