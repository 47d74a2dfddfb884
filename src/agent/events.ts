/**
 * Kubernetes Events for the audit trail: on the pod and on the registration ConfigMap. Recording
 * is best effort (an Event lost to an API outage must not fail a pod's ADD), and identical Events
 * are sent once per window so a resync does not repeat every rejection.
 */
import { randomBytes } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from '../log';
import { kubeFailure } from '../kube/client';

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

export class EventRecorder {
  private sent = new Map<string, number>();
  /** Events sent and failed, for tests and metrics. */
  count = 0;
  failed = 0;
  private pending = new Set<Promise<void>>();

  constructor(
    private readonly core: k8s.CoreV1Api,
    private readonly node: string,
    private readonly log: Logger,
    private readonly dedupeMs = 10 * 60_000,
  ) {}

  emit(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const key = `${target.kind}/${target.namespace}/${target.name}/${target.uid ?? ''}/${reason}/${message}`;
    const now = Date.now();
    const last = this.sent.get(key);
    if (last !== undefined && now - last < this.dedupeMs) return;
    this.sent.set(key, now);
    if (this.sent.size > 10_000) for (const [k, t] of this.sent) if (now - t >= this.dedupeMs) this.sent.delete(k);
    const ts = new Date(now);
    const body: k8s.CoreV1Event = {
      metadata: { name: `${target.name}.${now.toString(16)}${randomBytes(3).toString('hex')}`, namespace: target.namespace },
      involvedObject: { apiVersion: 'v1', kind: target.kind, namespace: target.namespace, name: target.name, uid: target.uid, resourceVersion: target.resourceVersion },
      reason,
      message: message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message,
      type,
      source: { component: 'sriov-underlay-agent', host: this.node },
      reportingComponent: 'sriov-underlay.io/agent',
      reportingInstance: this.node,
      firstTimestamp: ts,
      lastTimestamp: ts,
      count: 1,
    };
    const p = this.core
      .createNamespacedEvent({ namespace: target.namespace, body })
      .then(() => {
        this.count++;
      })
      .catch((e: unknown) => {
        this.failed++;
        this.sent.delete(key);
        this.log.warn({ reason, target: `${target.kind} ${target.namespace}/${target.name}`, err: kubeFailure(e).message }, 'event not recorded');
      })
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Wait for the Events in flight (tests, shutdown). */
  async flush(): Promise<void> {
    await Promise.all([...this.pending]);
  }
}
