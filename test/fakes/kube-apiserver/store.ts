// In-memory storage with etcd-like revisions: one global counter, a bounded history of changes
// (the "retained window" older watches and paged lists need), and synchronous fan-out to watchers
// so a watch started from revision N sees every later change exactly once and in order.
import { type ResourceDef, resourceKey } from './resources';
import type { KubeObject } from './types';

export interface Change {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  res: ResourceDef;
  key: string; // namespace/name
  obj: KubeObject; // state after the change (for DELETED: the last state, stamped with the delete's rv)
  prev: KubeObject | undefined;
}

export type ChangeListener = (c: Change) => void;

export const objectKey = (ns: string | undefined, name: string) => `${ns ?? ''}/${name}`;

export class Store {
  /** Last revision handed out. */
  rv = 1;
  /** Changes at or below this revision are forgotten: watching from an older revision gets 410. */
  compactedRv = 1;
  private readonly tables = new Map<string, Map<string, KubeObject>>();
  private history: Change[] = [];
  private readonly listeners = new Set<ChangeListener>();

  constructor(public historyLimit: number) {}

  private table(res: ResourceDef): Map<string, KubeObject> {
    const k = resourceKey(res);
    let t = this.tables.get(k);
    if (!t) this.tables.set(k, (t = new Map()));
    return t;
  }

  get(res: ResourceDef, ns: string | undefined, name: string): KubeObject | undefined {
    if (res.storage) {
      const o = this.get(res.storage.res, ns, name);
      return o && res.storage.fromStorage(o);
    }
    const o = this.table(res).get(objectKey(ns, name));
    return o && structuredClone(o);
  }

  /** Current objects, sorted by key like etcd's range reads. */
  list(res: ResourceDef): KubeObject[] {
    if (res.storage) return this.list(res.storage.res).map(res.storage.fromStorage);
    return [...this.table(res).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, o]) => structuredClone(o));
  }

  /**
   * The objects as they were at revision `rv`, rebuilt by undoing later changes; undefined when
   * the history needed for that has been compacted away.
   */
  listAt(res: ResourceDef, rv: number): KubeObject[] | undefined {
    if (res.storage) return this.listAt(res.storage.res, rv)?.map(res.storage.fromStorage);
    if (rv < this.compactedRv) return undefined;
    const t = new Map(this.table(res));
    for (let i = this.history.length - 1; i >= 0 && this.history[i]!.rv > rv; i--) {
      const c = this.history[i]!;
      if (c.res !== res) continue;
      if (c.prev) t.set(c.key, c.prev);
      else t.delete(c.key);
    }
    return [...t.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, o]) => structuredClone(o));
  }

  /** Changes after `rv`, or undefined when some of them were compacted. */
  changesSince(rv: number): Change[] | undefined {
    if (rv < this.compactedRv) return undefined;
    return this.history.filter((c) => c.rv > rv);
  }

  /** Applies one change, stamping the next revision on the object. Returns the stored copy. */
  commit(res: ResourceDef, type: Change['type'], obj: KubeObject): KubeObject {
    if (res.storage) return res.storage.fromStorage(this.commit(res.storage.res, type, res.storage.toStorage(obj)));
    const t = this.table(res);
    const key = objectKey(obj.metadata.namespace, obj.metadata.name ?? '');
    const prev = t.get(key);
    const rv = ++this.rv;
    const stored = structuredClone(obj);
    stored.metadata.resourceVersion = String(rv);
    if (type === 'DELETED') t.delete(key);
    else t.set(key, stored);
    const change: Change = { rv, type, res, key, obj: stored, prev };
    this.history.push(change);
    if (this.history.length > this.historyLimit) this.trim(this.history.length - this.historyLimit);
    for (const l of this.listeners) l(change);
    return structuredClone(stored);
  }

  private trim(n: number): void {
    const dropped = this.history.splice(0, n);
    const last = dropped[dropped.length - 1];
    if (last) this.compactedRv = Math.max(this.compactedRv, last.rv);
  }

  /** A change as seen through `res` (converted for views); undefined when it is another resource's. */
  viewOf(res: ResourceDef, c: Change): Change | undefined {
    if (res.storage) {
      if (c.res !== res.storage.res) return undefined;
      const from = res.storage.fromStorage;
      return { ...c, res, obj: from(c.obj), prev: c.prev && from(c.prev) };
    }
    return c.res === res ? c : undefined;
  }

  /** Forget all history up to the current revision, like an etcd compaction. */
  compact(): number {
    this.history = [];
    this.compactedRv = this.rv;
    return this.compactedRv;
  }

  setHistoryLimit(n: number): void {
    this.historyLimit = n;
    if (this.history.length > n) this.trim(this.history.length - n);
  }

  subscribe(l: ChangeListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
