/**
 * Kubernetes Events for the audit trail: on the pod and on the registration ConfigMap. Recording
 * is best effort (an Event lost to an API outage must not fail a pod's ADD).
 *
 * One Event per object, reason and series (by default the message; for rejections the key and
 * field), with a deterministic name, as kube's event series does: a repeat updates that Event's
 * count and lastTimestamp instead of creating another. The name does not depend on the node or
 * the process, so every agent, and the same agent after a restart, lands on the same Event; an
 * Event already holding the same message within the window is left alone (no write at all).
 * Rate-limited per object and overall (token buckets, as client-go's spam filter), so N bad keys
 * cannot turn into N requests per node: what is dropped is still in the agent's log.
 */
import { createHash } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from '../../src/log';
import { isAlreadyExists, isConflict, kubeFailure } from '../../src/kube/client';

export const EVENT_REASONS = {
  assigned: 'IPAssigned',
  released: 'IPReleased',
  rejected: 'RegistrationRejected',
  conflict: 'IPConflict',
  drift: 'RegistrationDrift',
  duplicate: 'DuplicateAddress',
} as const;

export interface EventTarget {
  kind: 'Pod' | 'ConfigMap' | 'Node';
  namespace: string;
  name: string;
  uid?: string;
  resourceVersion?: string;
}

const MAX_MESSAGE = 1024;

/** Per involved object: a burst, then one Event per refill period (client-go: 25, then 1 per 5 min). */
export const OBJECT_BURST = 25;
export const OBJECT_REFILL_MS = 10_000;
/** For the whole agent. */
export const TOTAL_BURST = 200;
export const TOTAL_REFILL_MS = 50;

class TokenBucket {
  private tokens: number;
  private at: number;
  constructor(
    private readonly burst: number,
    private readonly refillMs: number,
    now: number,
  ) {
    this.tokens = burst;
    this.at = now;
  }
  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + (now - this.at) / this.refillMs);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
  full(now: number): boolean {
    return this.tokens + (now - this.at) / this.refillMs >= this.burst;
  }
}

/** One Event per rejected key and field: an edit that changes the message updates it. */
export function rejectionSeries(r: { key: string; field: string }): string {
  return `${r.key}\u0000${r.field}`;
}

/** `<object name>.<16 hex>`: the same for every agent and restart, a valid object name. */
export function eventName(target: EventTarget, reason: string, series: string): string {
  const h = createHash('sha256').update([target.kind, target.namespace, target.name, target.uid ?? '', reason, series].join('\u0000')).digest('hex');
  return `${target.name.slice(0, 253 - 17)}.${h.slice(0, 16)}`;
}

export class EventRecorder {
  private sent = new Map<string, { message: string; at: number }>();
  private perObject = new Map<string, TokenBucket>();
  private total: TokenBucket;
  /** Events created or updated, left alone as already recorded, dropped by the rate limit, and failed. */
  count = 0;
  unchanged = 0;
  dropped = 0;
  failed = 0;
  private pending = new Set<Promise<void>>();

  constructor(
    private readonly core: k8s.CoreV1Api,
    private readonly node: string,
    private readonly log: Logger,
    private readonly dedupeMs = 10 * 60_000,
  ) {
    this.total = new TokenBucket(TOTAL_BURST, TOTAL_REFILL_MS, Date.now());
  }

  /** `series` names what repeats (default: the message): the same series updates one Event. */
  emit(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string, series: string = message): void {
    const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message;
    const name = eventName(target, reason, series);
    const now = Date.now();
    const last = this.sent.get(name);
    if (last && last.message === text && now - last.at < this.dedupeMs) return;
    if (!this.takeToken(target, now)) {
      this.dropped++;
      this.log.debug({ reason, target: `${target.kind} ${target.namespace}/${target.name}` }, 'event rate-limited (the log line above has it)');
      return;
    }
    this.sent.set(name, { message: text, at: now });
    if (this.sent.size > 10_000) for (const [k, v] of this.sent) if (now - v.at >= this.dedupeMs) this.sent.delete(k);
    const p = this.record(name, target, type, reason, text, new Date(now))
      .catch((e: unknown) => {
        this.failed++;
        this.sent.delete(name);
        this.log.warn({ reason, target: `${target.kind} ${target.namespace}/${target.name}`, err: kubeFailure(e).message }, 'event not recorded');
      })
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Wait for the Events in flight (tests, shutdown). */
  async flush(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }

  private takeToken(target: EventTarget, now: number): boolean {
    const key = `${target.kind}/${target.namespace}/${target.name}`;
    let b = this.perObject.get(key);
    if (!b) {
      if (this.perObject.size > 10_000) for (const [k, x] of this.perObject) if (x.full(now)) this.perObject.delete(k);
      b = new TokenBucket(OBJECT_BURST, OBJECT_REFILL_MS, now);
      this.perObject.set(key, b);
    }
    // The object's bucket first: a noisy object must not use up the tokens of the others.
    return b.take(now) && this.total.take(now);
  }

  private async record(name: string, target: EventTarget, type: string, reason: string, message: string, ts: Date): Promise<void> {
    const body: k8s.CoreV1Event = {
      metadata: { name, namespace: target.namespace },
      involvedObject: { apiVersion: 'v1', kind: target.kind, namespace: target.namespace, name: target.name, uid: target.uid, resourceVersion: target.resourceVersion },
      reason,
      message,
      type,
      source: { component: 'sriov-underlay-agent', host: this.node },
      reportingComponent: 'sriov-underlay.io/agent',
      reportingInstance: this.node,
      firstTimestamp: ts,
      lastTimestamp: ts,
      count: 1,
    };
    try {
      await this.core.createNamespacedEvent({ namespace: target.namespace, body });
      this.count++;
      return;
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
    }
    // Recorded before: by another agent, or by this one before a restart.
    const cur = await this.core.readNamespacedEvent({ namespace: target.namespace, name });
    const seen = cur.lastTimestamp ? new Date(cur.lastTimestamp).getTime() : 0;
    if (cur.message === message && ts.getTime() - seen < this.dedupeMs) {
      this.unchanged++;
      return;
    }
    // The resourceVersion read is the precondition: a concurrent update from another agent wins.
    try {
      await this.core.replaceNamespacedEvent({
        namespace: target.namespace,
        name,
        body: { ...cur, message, type, count: (cur.count ?? 1) + 1, lastTimestamp: ts, source: body.source, reportingInstance: this.node },
      });
      this.count++;
    } catch (e) {
      if (!isConflict(e)) throw e;
      this.unchanged++;
    }
  }
}
