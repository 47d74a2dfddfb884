/**
 * One ConfigMap key → a validated spec or a rejection. Each key is parsed on its own, so a typo in
 * one pod's entry never takes the others down.
 */
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type * as z from 'zod/mini';
import { describeIssues, firstField } from '../schemas/format';
import type { ConfigMapObject, Rejection } from './types';

export interface CmMeta {
  namespace: string;
  name: string;
  resourceVersion: string;
  uid: string;
  /** Milliseconds since the epoch; NaN-free (missing → 0, i.e. oldest). */
  created: number;
}

export function cmMeta(cm: ConfigMapObject): CmMeta {
  const m = cm.metadata ?? {};
  const ts = m.creationTimestamp instanceof Date ? m.creationTimestamp.getTime() : m.creationTimestamp ? Date.parse(m.creationTimestamp) : 0;
  return {
    namespace: m.namespace ?? '',
    name: m.name ?? '',
    resourceVersion: m.resourceVersion ?? '',
    uid: m.uid ?? '',
    created: Number.isFinite(ts) ? ts : 0,
  };
}

export function keyLabel(meta: Pick<CmMeta, 'namespace' | 'name'>, key: string): string {
  return `configmap ${meta.namespace}/${meta.name} key "${key}"`;
}

export function rejection(meta: CmMeta, key: string, field: string, why: string, reason: Rejection['reason'] = 'invalid'): Rejection {
  return {
    reason,
    namespace: meta.namespace,
    configMap: meta.name,
    key,
    resourceVersion: meta.resourceVersion,
    field,
    message: `${keyLabel(meta, key)}: field "${field}": ${why}`,
  };
}

export type Parsed<T> = { ok: true; spec: T } | { ok: false; rejection: Rejection };

/** YAML, then the schema. Field "(yaml)" when the text itself does not parse. */
export function parseKey<S extends z.ZodMiniType>(schema: S, meta: CmMeta, key: string, text: string): Parsed<z.infer<S>> {
  let value: unknown;
  try {
    value = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (e) {
    const msg = e instanceof YAMLParseError ? e.message.split('\n')[0]! : String(e);
    return { ok: false, rejection: rejection(meta, key, '(yaml)', `malformed YAML: ${msg}`) };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, rejection: rejection(meta, key, '(root)', 'must be a YAML mapping of fields') };
  }
  const r = schema.safeParse(value);
  if (!r.success) {
    const field = firstField(r.error.issues);
    const full = describeIssues(keyLabel(meta, key), r.error.issues);
    return { ok: false, rejection: { ...rejection(meta, key, field, ''), message: full } };
  }
  return { ok: true, spec: r.data as z.infer<S> };
}

/** Total order for "the older one wins": creationTimestamp, then namespace, name, key. */
export function olderFirst(a: { meta: CmMeta; key: string }, b: { meta: CmMeta; key: string }): number {
  return (
    a.meta.created - b.meta.created ||
    cmp(a.meta.namespace, b.meta.namespace) ||
    cmp(a.meta.name, b.meta.name) ||
    cmp(a.key, b.key)
  );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
