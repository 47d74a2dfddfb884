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
import type { KubeClients } from '../../src/kube/client';
import { configMapInformer, type Informer } from '../../src/kube/informer';
import type { Logger } from '../../src/log';
import { detectDrift } from '../../src/registrations/drift';
import type { RegistrationIndex } from '../../src/registrations/index';
import { formatSource, type Rejection } from '../../src/registrations/types';
import { cmTarget, podKey, type RunningPods } from './assign';
import { EVENT_REASONS, rejectionSeries, type EventRecorder } from './events';

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
    // ConfigMaps are taken in one after another, each parsed in slices (applyConfigMapAsync) so a
    // large one never stalls the socket, gRPC or /metrics; `listed` is set once the first list is in.
    this.informer.on('add', (cm) => this.inOrder(async () => {
      await d.index.applyConfigMapAsync(cm);
      await this.changed(cm);
    }));
    this.informer.on('update', (cm) => this.inOrder(async () => {
      await d.index.applyConfigMapAsync(cm);
      await this.changed(cm);
    }));
    this.informer.on('delete', (cm) => this.inOrder(async () => {
      d.index.deleteConfigMap(cm.metadata?.namespace ?? '', cm.metadata?.name ?? '');
      await this.changed(cm);
    }));
  }

  private listed = false;
  private applying: Promise<void> = Promise.resolve();

  private inOrder(step: () => Promise<void>): void {
    this.applying = this.applying.then(step).catch((e: unknown) => this.d.log.error({ err: (e as Error).message }, 'registration ConfigMap not applied'));
  }

  /** Lists (resolves once listed), reports the rejections found, then watches. */
  async start(): Promise<void> {
    await this.informer.start();
    await this.applying;
    this.listed = true;
    this.report(this.d.index.allRejections());
  }

  stop(): Promise<void> {
    return this.informer.stop();
  }

  get configMaps(): number {
    return this.informer.size;
  }

  private async changed(cm: { metadata?: { namespace?: string; name?: string; labels?: Record<string, string> } }): Promise<void> {
    // The first list arrives one ConfigMap at a time, registrations possibly before the networks
    // they name: reporting then would send a false rejection Event per key (10,000 concurrent
    // requests and ~400 MB at start for 10,000 registrations). Reported once after the list instead.
    if (!this.listed) return;
    const { index } = this.d;
    const ref = { namespace: cm.metadata?.namespace ?? '', name: cm.metadata?.name ?? '' };
    // A network edit can make any registration valid or not: look at all of them.
    // Sliced like parsing: the pass over a large ConfigMap's ordinals must not stall the socket either.
    if (cm.metadata?.labels?.['sriov-underlay.io/kind'] === 'network') this.report(await index.rejectionsAsync());
    else this.report([...(await index.rejectionsAsync(ref.namespace, ref.name)), ...index.networkRejectionsOf(ref.namespace, ref.name)]);
    this.reportDrift();
    this.d.onChange?.();
  }

  private report(list: Rejection[]): void {
    for (const r of list) {
      this.d.log.warn({ configMap: `${r.namespace}/${r.configMap}`, key: r.key, field: r.field, reason: r.reason, resourceVersion: r.resourceVersion }, r.message);
      this.d.events.emit(cmTarget(r), 'Warning', r.reason === 'conflict' ? EVENT_REASONS.conflict : EVENT_REASONS.rejected, r.message, rejectionSeries(r));
    }
  }

  private reportDrift(): void {
    for (const [key, was] of this.d.running) {
      const [ns, name] = key.split('/') as [string, string];
      const drift = detectDrift(podKey(ns, name), was, this.d.index.lookup(ns, name, was.network));
      if (!drift) continue;
      this.d.log.warn({ namespace: ns, pod: name, drift: drift.kind, source: formatSource(was.source) }, drift.message);
      this.d.events.emit({ kind: 'Pod', namespace: ns, name }, 'Warning', EVENT_REASONS.drift, drift.message);
      this.d.events.emit(cmTarget(was.source), 'Warning', EVENT_REASONS.drift, drift.message);
    }
  }
}
