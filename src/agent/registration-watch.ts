/**
 * The registration watch: a list+watch of the network and registration ConfigMaps (every
 * namespace) feeding the registration index, and what follows each change: rejection Events,
 * drift reports for the pods this node runs, and a reservation pass (`onChange`).
 *
 * The informer (src/kube/informer.ts) relists on 410, backs off, pages and has a watchdog. No
 * periodic re-delivery: the index only changes when a ConfigMap does. Its cache keeps only what
 * telling changes and deletions apart needs, not the raw data, managedFields and the rest.
 */
import type * as k8s from '@kubernetes/client-node';
import type { KubeClients } from '../kube/client';
import { configMapInformer, type Informer } from '../kube/informer';
import type { Logger } from '../log';
import { detectDrift } from '../registrations/drift';
import type { RegistrationIndex } from '../registrations/index';
import { formatSource, type Rejection } from '../registrations/types';
import { cmTarget, type RunningPods } from './assign';
import { EVENT_REASONS, type EventRecorder } from './events';

/** Networks and registrations, in every namespace (networks only count in the system namespace). */
export const CONFIGMAP_SELECTOR = 'sriov-underlay.io/kind in (network,registration)';

export interface RegistrationWatchDeps {
  clients: Pick<KubeClients, 'core' | 'watch'>;
  index: RegistrationIndex;
  events: EventRecorder;
  log: Logger;
  running: RunningPods;
  /** After each change once listed (the agent: a reservation pass). */
  onChange?: () => void;
  /** The watch's connect deadline (default API_TIMEOUT_MS). */
  watchConnectMs?: number;
}

export class RegistrationWatch {
  private readonly informer: Informer<k8s.V1ConfigMap>;

  constructor(private readonly d: RegistrationWatchDeps) {
    const retain = (cm: k8s.V1ConfigMap): k8s.V1ConfigMap => {
      const m = cm.metadata ?? {};
      return { metadata: { namespace: m.namespace, name: m.name, resourceVersion: m.resourceVersion, labels: m.labels } };
    };
    this.informer = configMapInformer(d.clients, undefined, { name: 'registrations', labelSelector: CONFIGMAP_SELECTOR, resyncMs: 0, log: d.log, retain, ...(d.watchConnectMs ? { watchConnectMs: d.watchConnectMs } : {}) });
    this.informer.on('add', (cm) => {
      d.index.applyConfigMap(cm);
      this.changed(cm);
    });
    this.informer.on('update', (cm) => {
      d.index.applyConfigMap(cm);
      this.changed(cm);
    });
    this.informer.on('delete', (cm) => {
      d.index.deleteConfigMap(cm.metadata?.namespace ?? '', cm.metadata?.name ?? '');
      this.changed(cm);
    });
  }

  /** Lists (resolves once listed), reports the rejections found, then watches. */
  async start(): Promise<void> {
    await this.informer.start();
    this.report(this.d.index.allRejections());
  }

  stop(): Promise<void> {
    return this.informer.stop();
  }

  get configMaps(): number {
    return this.informer.size;
  }

  private changed(cm: { metadata?: { namespace?: string; name?: string; labels?: Record<string, string> } }): void {
    // The first list arrives one ConfigMap at a time, registrations possibly before the networks
    // they name: reporting then would send a false rejection Event per key (10,000 concurrent
    // requests and ~400 MB at start for 10,000 registrations). Reported once after the list instead.
    if (!this.informer.hasSynced) return;
    const { index } = this.d;
    const ref = { namespace: cm.metadata?.namespace ?? '', name: cm.metadata?.name ?? '' };
    // A network edit can make any registration valid or not: look at all of them.
    if (cm.metadata?.labels?.['sriov-underlay.io/kind'] === 'network') this.report(index.allRejections());
    else this.report([...index.rejectionsOf(ref.namespace, ref.name), ...index.networkRejectionsOf(ref.namespace, ref.name)]);
    this.reportDrift();
    this.d.onChange?.();
  }

  private report(list: Rejection[]): void {
    for (const r of list) {
      this.d.log.warn({ configMap: `${r.namespace}/${r.configMap}`, key: r.key, field: r.field, reason: r.reason, resourceVersion: r.resourceVersion }, r.message);
      this.d.events.emit(cmTarget(r), 'Warning', r.reason === 'conflict' ? EVENT_REASONS.conflict : EVENT_REASONS.rejected, r.message);
    }
  }

  private reportDrift(): void {
    for (const [key, was] of this.d.running) {
      const [ns, name] = key.split('/') as [string, string];
      const drift = detectDrift(key, was, this.d.index.lookup(ns, name));
      if (!drift) continue;
      this.d.log.warn({ namespace: ns, pod: name, drift: drift.kind, source: formatSource(was.source) }, drift.message);
      this.d.events.emit({ kind: 'Pod', namespace: ns, name }, 'Warning', EVENT_REASONS.drift, drift.message);
      this.d.events.emit(cmTarget(was.source), 'Warning', EVENT_REASONS.drift, drift.message);
    }
  }
}
