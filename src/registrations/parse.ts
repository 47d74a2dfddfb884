/**
 * One ConfigMap key → a validated spec or a rejection. Each key is parsed on its own, so a typo in
 * one pod's entry never takes the others down.
 */
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type * as z from 'zod/mini';
import { describeIssues, firstField } from '../schemas/format';
import { MAX_VALUE_BYTES } from './limits';
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

/** YAML, then the schema. Field "(yaml)" when the text itself does not parse, "(size)" when it is too long to try. */
export function parseKey<S extends z.ZodMiniType>(schema: S, meta: CmMeta, key: string, text: string): Parsed<z.infer<S>> {
  const value = parseYamlValue(meta, key, text);
  if (!value.ok) return value;
  if (value.value === null || typeof value.value !== 'object' || Array.isArray(value.value)) {
    return { ok: false, rejection: rejection(meta, key, '(root)', 'must be a YAML mapping of fields') };
  }
  return validate(schema, meta, key, value.value, '');
}

/**
 * One registration key: a mapping (one attachment, the original form) or a list of mappings, one
 * per network the pod attaches to. Each attachment is validated on its own, with its list index
 * as the field prefix ("1.ip"); `network` is what it names, '' when that cannot be told.
 */
export function parseRegistrationKey<S extends z.ZodMiniType>(
  schema: S,
  meta: CmMeta,
  key: string,
  text: string,
  maxAttachments: number,
): Array<{ parsed: Parsed<z.infer<S>>; network: string; prefix: string }> {
  const value = parseYamlValue(meta, key, text);
  if (!value.ok) return [{ parsed: value, network: '', prefix: '' }];
  const v = value.value;
  const one = (item: unknown, prefix: string) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      return { parsed: { ok: false as const, rejection: rejection(meta, key, prefix ? prefix.slice(0, -1) : '(root)', 'must be a YAML mapping of fields') }, network: '', prefix };
    }
    const raw = item as Record<string, unknown>;
    const named = typeof raw.network === 'string' ? raw.network : typeof raw.pool === 'string' ? raw.pool : '';
    return { parsed: validate(schema, meta, key, item, prefix), network: named, prefix };
  };
  if (!Array.isArray(v)) return [one(v, '')];
  if (v.length === 0 || v.length > maxAttachments) {
    const why = v.length === 0 ? 'an empty list registers nothing' : `lists ${v.length} attachments; at most ${maxAttachments} are allowed`;
    return [{ parsed: { ok: false, rejection: rejection(meta, key, '(root)', why) }, network: '', prefix: '' }];
  }
  const out = v.map((item, i) => one(item, `${i}.`));
  const first = new Map<string, number>();
  out.forEach((a, i) => {
    if (!a.network || !a.parsed.ok) return;
    const j = first.get(a.network);
    if (j === undefined) first.set(a.network, i);
    else a.parsed = { ok: false, rejection: rejection(meta, key, `${i}.network`, `network "${a.network}" is already registered by ${j}.network; one attachment per network`) };
  });
  return out;
}

function parseYamlValue(meta: CmMeta, key: string, text: string): { ok: true; value: unknown } | { ok: false; rejection: Rejection } {
  if (text.length > MAX_VALUE_BYTES || Buffer.byteLength(text) > MAX_VALUE_BYTES) {
    return { ok: false, rejection: rejection(meta, key, '(size)', `${Buffer.byteLength(text)} bytes of YAML; the limit is ${MAX_VALUE_BYTES} per key`) };
  }
  try {
    return { ok: true, value: parseYaml(text, { prettyErrors: true, uniqueKeys: true }) as unknown };
  } catch (e) {
    const msg = e instanceof YAMLParseError ? e.message.split('\n')[0]! : String(e);
    return { ok: false, rejection: rejection(meta, key, '(yaml)', `malformed YAML: ${msg}`) };
  }
}

function validate<S extends z.ZodMiniType>(schema: S, meta: CmMeta, key: string, value: unknown, prefix: string): Parsed<z.infer<S>> {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issues = prefix ? r.error.issues.map((i) => ({ ...i, path: [Number(prefix.slice(0, -1)), ...i.path] })) : r.error.issues;
    const field = firstField(issues);
    const full = describeIssues(keyLabel(meta, key), issues);
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
