/**
 * List + watch with an in-memory index, for the node agent. Differences from client-node's own
 * ListWatch, each one needed by the agent:
 * - it restarts itself after any failure, with exponential backoff and jitter (client-node stops
 *   and leaves that to the caller);
 * - it lists in pages, and starts over when a page's continue token has expired (410);
 * - a watch that ends with 410 Gone triggers a relist whose diff is delivered as add/update/delete;
 * - it asks for bookmarks and a server-side watch timeout so idle watches cycle and keep a fresh
 *   resourceVersion;
 * - `resync` re-delivers every cached object periodically without calling the API.
 */
import type * as k8s from '@kubernetes/client-node';
import { EventEmitter } from 'node:events';
import {
  API_TIMEOUT_MS, type ClusterObjects, type CustomObject, type ListOptions, type ObjectList, collectionPath, kubeFailure,
} from './client';

export interface InformerObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface Backoff {
  initialMs: number;
  maxMs: number;
  /** Fraction of each delay that is random: 0 = none, 1 = anywhere in [0, delay]. */
  jitter: number;
}

export const DEFAULT_BACKOFF: Backoff = { initialMs: 200, maxMs: 30_000, jitter: 0.5 };

/** Delay before retry number `attempt` (0-based): doubling, capped, the top `jitter` part random. */
export function backoffDelay(attempt: number, b: Backoff = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const base = Math.min(b.maxMs, b.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base * (1 - b.jitter) + base * b.jitter * random());
}

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface InformerOptions<T extends InformerObject> {
  /** Shown in logs and errors, e.g. "registrations". */
  name: string;
  /** Collection path used for the watch, e.g. /api/v1/namespaces/ns/configmaps. */
  path: string;
  /** One list call (a page); typically a CoreV1Api or ClusterObjects list bound to the same collection. */
  list: (opts: ListOptions) => Promise<ObjectList<T>>;
  watch: k8s.Watch;
  /** Turns a raw watch object into T, so watch and list deliver the same shape (see configMapInformer). */
  fromWatch?: (raw: unknown) => T;
  labelSelector?: string;
  fieldSelector?: string;
  pageSize?: number;
  /**
   * What the cache keeps of each object (default: all of it). Events still carry the whole object
   * as received; `old` in update/delete, `resync`, get() and list() give the kept part.
   */
  retain?(obj: T): T;
  /** Re-deliver every cached object as a `resync` event this often; 0 turns it off. */
  resyncMs?: number;
  /** Server-side watch timeout; the informer then resumes from its last resourceVersion. */
  watchTimeoutSeconds?: number;
  /**
   * Client-side watchdog: a watch whose response has not started after `watchConnectMs`, or that
   * delivered nothing (not even a bookmark) for `watchIdleMs`, is abandoned and opened again (an
   * apiserver that hangs, or a connection cut without a FIN, would otherwise stall the informer
   * for good). Defaults: API_TIMEOUT_MS, and the server-side timeout plus 30 s.
   */
  watchConnectMs?: number;
  watchIdleMs?: number;
  backoff?: Backoff;
  log?: Logger;
}

export interface InformerStats {
  lists: number;
  watches: number;
  /** Relists forced by 410 Gone (expired watch or continue token). */
  expired: number;
  errors: number;
}

export interface InformerEvents<T> {
  add: [obj: T];
  update: [obj: T, old: T];
  delete: [obj: T];
  resync: [obj: T];
  /** After every successful (re)list, with the list's resourceVersion. */
  synced: [resourceVersion: string];
  error: [err: unknown];
}

const keyOf = (o: InformerObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

class Expired extends Error {}

export class Informer<T extends InformerObject> extends EventEmitter<InformerEvents<T>> {
  private readonly index = new Map<string, T>();
  private rv = '';
  private synced = false;
  private stopped = true;
  private attempt = 0;
  private current: AbortController | undefined;
  private wake: (() => void) | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  private firstSync: { resolve: () => void; promise: Promise<void> } | undefined;
  readonly stats: InformerStats = { lists: 0, watches: 0, expired: 0, errors: 0 };

  constructor(private readonly opts: InformerOptions<T>) {
    super();
  }

  /** Starts the loop; resolves after the first successful list. */
  start(): Promise<void> {
    if (!this.stopped) return this.firstSync!.promise;
    this.stopped = false;
    this.synced = false;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.firstSync = { resolve, promise };
    this.loop = this.run();
    if (this.opts.resyncMs) {
      this.resyncTimer = setInterval(() => {
        for (const o of this.index.values()) this.emit('resync', o);
      }, this.opts.resyncMs);
    }
    return promise;
  }

  /** Stops the loop; a start() still waiting for its first list resolves (check hasSynced). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.firstSync?.resolve();
    clearInterval(this.resyncTimer);
    this.current?.abort();
    this.wake?.();
    await this.loop;
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.index.get(`${namespace ?? ''}/${name}`);
  }

  list(namespace?: string): T[] {
    const all = [...this.index.values()];
    return namespace === undefined ? all : all.filter((o) => (o.metadata?.namespace ?? '') === namespace);
  }

  /** True once a list has completed since start(). */
  get hasSynced(): boolean {
    return this.synced;
  }

  get size(): number {
    return this.index.size;
  }

  /** The resourceVersion the informer is up to date with ('' before the first list or after a 410). */
  get resourceVersion(): string {
    return this.rv;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (!this.rv) await this.relist();
        await this.watchOnce();
      } catch (err) {
        if (this.stopped) break;
        if (err instanceof Expired) {
          this.stats.expired++;
          this.rv = '';
          this.opts.log?.info({ informer: this.opts.name }, 'resourceVersion expired (410), relisting');
          continue;
        }
        this.stats.errors++;
        const f = kubeFailure(err);
        const delay = backoffDelay(this.attempt++, this.opts.backoff);
        this.opts.log?.warn({ informer: this.opts.name, code: f.code, reason: f.reason, err: f.message, retryInMs: delay }, 'list/watch failed');
        if (this.listenerCount('error') > 0) this.emit('error', err);
        await this.sleep(delay);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  private async relist(): Promise<void> {
    const items: T[] = [];
    let cont: string | undefined;
    let rv = '';
    do {
      const opts: ListOptions = { limit: this.opts.pageSize ?? 500 };
      if (this.opts.labelSelector) opts.labelSelector = this.opts.labelSelector;
      if (this.opts.fieldSelector) opts.fieldSelector = this.opts.fieldSelector;
      if (cont) opts._continue = cont;
      let page: ObjectList<T>;
      try {
        this.stats.lists++;
        page = await this.opts.list(opts);
      } catch (err) {
        // An expired continue token: the whole list starts over at a new snapshot.
        if (cont && kubeFailure(err).code === 410) throw new Expired();
        throw err;
      }
      items.push(...page.items);
      rv = page.metadata?.resourceVersion ?? '';
      cont = page.metadata?._continue ?? page.metadata?.continue ?? undefined;
    } while (cont && !this.stopped);
    if (this.stopped) return;
    this.replace(items);
    this.rv = rv;
    this.attempt = 0;
    this.opts.log?.debug({ informer: this.opts.name, objects: this.index.size, resourceVersion: rv }, 'listed');
    this.synced = true;
    this.emit('synced', rv);
    this.firstSync?.resolve();
  }

  /** Swaps the index for a fresh list and reports the difference. */
  private replace(items: T[]): void {
    const fresh = new Map(items.map((o) => [keyOf(o), o]));
    for (const [k, old] of this.index) {
      if (!fresh.has(k)) {
        this.index.delete(k);
        this.emit('delete', old);
      }
    }
    for (const o of fresh.values()) this.upsert(o);
  }

  private upsert(o: T): void {
    const k = keyOf(o);
    const old = this.index.get(k);
    this.index.set(k, this.opts.retain ? this.opts.retain(o) : o);
    if (!old) this.emit('add', o);
    else if (old.metadata?.resourceVersion !== o.metadata?.resourceVersion) this.emit('update', o, old);
  }

  private watchOnce(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let watchdog: NodeJS.Timeout | undefined;
      const timeoutSeconds = this.opts.watchTimeoutSeconds ?? 300;
      const idleMs = this.opts.watchIdleMs ?? (timeoutSeconds + 30) * 1000;
      const arm = (ms: number, what: string) => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => {
          this.current?.abort();
          finish(Object.assign(new Error(`watch ${what} for ${ms} ms; opening it again`), { watchdog: true }));
        }, ms);
      };
      const finish = (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(watchdog);
        if (err && !this.stopped) reject(err);
        else resolve();
      };
      const params: Record<string, string | number | boolean> = {
        resourceVersion: this.rv,
        allowWatchBookmarks: true,
        timeoutSeconds,
      };
      if (this.opts.labelSelector) params.labelSelector = this.opts.labelSelector;
      if (this.opts.fieldSelector) params.fieldSelector = this.opts.fieldSelector;
      this.stats.watches++;
      arm(this.opts.watchConnectMs ?? API_TIMEOUT_MS, 'had no answer');
      const onEvent = (type: string, raw: unknown) => {
        if (settled) return;
        arm(idleMs, 'was silent');
        if (type === 'ERROR') {
          const status = raw as { code?: number; message?: string };
          finish(status.code === 410 ? new Expired() : Object.assign(new Error(status.message ?? 'watch error'), { statusCode: status.code }));
          this.current?.abort();
          return;
        }
        const obj = this.opts.fromWatch ? this.opts.fromWatch(raw) : (raw as T);
        const rv = obj.metadata?.resourceVersion;
        if (type === 'ADDED' || type === 'MODIFIED') this.upsert(obj);
        else if (type === 'DELETED') {
          const k = keyOf(obj);
          if (this.index.delete(k)) this.emit('delete', obj);
        }
        if (rv) this.rv = rv;
        // Events flowing again means the connection is healthy: reset the backoff.
        this.attempt = 0;
      };
      this.opts.watch
        .watch(this.opts.path, params, onEvent, (err: unknown) => {
          // A watch that fails with HTTP 410 (rather than an ERROR event) is also an expiry.
          finish(err && kubeFailure(err).code === 410 ? new Expired() : err);
        })
        .then((ctl) => {
          this.current = ctl;
          if (this.stopped || settled) ctl.abort();
          else arm(idleMs, 'was silent');
        }, finish);
    });
  }
}

// ---- ready-made informers for the agent's collections ------------------------------------------

export type InformerTuning<T extends InformerObject> = Omit<InformerOptions<T>, 'name' | 'path' | 'list' | 'watch' | 'fromWatch'> & { name?: string };

/**
 * A watch delivers plain JSON while CoreV1Api lists deliver deserialized models, whose only
 * non-JSON fields in a ConfigMap are the metadata timestamps. client-node does not export its
 * serializer, so the conversion is done here.
 */
export function configMapFromJson(raw: unknown): k8s.V1ConfigMap {
  const cm = raw as k8s.V1ConfigMap & { metadata?: Record<string, unknown> };
  const m = cm.metadata;
  if (m) {
    for (const k of ['creationTimestamp', 'deletionTimestamp'] as const) {
      if (typeof m[k] === 'string') m[k] = new Date(m[k] as string);
    }
    const mf = m.managedFields as { time?: unknown }[] | undefined;
    for (const f of mf ?? []) if (typeof f.time === 'string') f.time = new Date(f.time);
  }
  return cm;
}

/** ConfigMaps of one namespace (or all), watch objects shaped like list items. */
export function configMapInformer(
  clients: { core: k8s.CoreV1Api; watch: k8s.Watch },
  namespace: string | undefined,
  tuning: InformerTuning<k8s.V1ConfigMap> = {},
): Informer<k8s.V1ConfigMap> {
  const { core, watch } = clients;
  return new Informer<k8s.V1ConfigMap>({
    name: tuning.name ?? `configmaps${namespace ? `/${namespace}` : ''}`,
    ...tuning,
    path: namespace ? `/api/v1/namespaces/${namespace}/configmaps` : '/api/v1/configmaps',
    list: (o) => (namespace ? core.listNamespacedConfigMap({ namespace, ...o }) : core.listConfigMapForAllNamespaces(o)),
    watch,
    fromWatch: configMapFromJson,
  });
}

/** One of our cluster-scoped custom resources (claims, node states); objects stay plain JSON. */
export function clusterObjectInformer<T extends CustomObject>(
  objects: ClusterObjects<T>,
  watch: k8s.Watch,
  tuning: InformerTuning<T> = {},
): Informer<T> {
  return new Informer<T>({
    name: tuning.name ?? objects.resource.plural,
    ...tuning,
    path: collectionPath(objects.resource),
    list: (o) => objects.list(o),
    watch,
  });
}

/** Node names (the cache keeps the name only): which nodes exist, without a periodic list. */
export function nodeInformer(clients: { core: k8s.CoreV1Api; watch: k8s.Watch }, tuning: InformerTuning<k8s.V1Node> = {}): Informer<k8s.V1Node> {
  return new Informer<k8s.V1Node>({
    name: tuning.name ?? 'nodes',
    retain: (n) => ({ metadata: { name: n.metadata?.name, resourceVersion: n.metadata?.resourceVersion } }),
    ...tuning,
    path: '/api/v1/nodes',
    list: (o) => clients.core.listNode(o),
    watch: clients.watch,
  });
}
