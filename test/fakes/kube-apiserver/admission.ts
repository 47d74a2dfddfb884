// ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1) as kube-apiserver applies it, with a
// real CEL implementation (@marcbachmann/cel-js): matchConstraints and the binding's
// matchResources (rules, namespace and object selectors), paramKind/paramRef (by name or selector;
// every param found must admit), matchConditions, variables, validations with message,
// messageExpression and reason, failurePolicy, and validationActions Deny / Warn / Audit.
// Not supported: the `authorizer` variable, auditAnnotations' effect (audit logs), CEL cost limits,
// and Kubernetes' CEL library extensions (quantity, url, ip, cidr, regex helpers beyond matches()).
import { Environment, type ParseResult } from '@marcbachmann/cel-js';
import type { UserInfo } from './auth';
import type { ResourceDef } from './resources';
import { failure, qualified } from './status';
import { type FieldError, type KubeObject, isRecord } from './types';

export type Operation = 'CREATE' | 'UPDATE' | 'DELETE';

export interface AdmissionAttributes {
  operation: Operation;
  res: ResourceDef;
  /** 'status' for a write to the /status subresource: rules must name `<plural>/status`. */
  subResource?: string;
  name: string;
  namespace?: string;
  object: KubeObject | null;
  oldObject: KubeObject | null;
  user: UserInfo;
  dryRun: boolean;
}

/** What admission reads from storage: policies, bindings, params and namespaces. */
export interface AdmissionStore {
  list(plural: string): KubeObject[];
  resourceOf(apiVersion: string, kind: string): ResourceDef | undefined;
  namespace(name: string): KubeObject | undefined;
}

const env = new Environment({ unlistedVariablesAreDyn: true, homogeneousAggregateLiterals: false, enableOptionalTypes: true });
const compiled = new Map<string, ParseResult>();

function compile(expression: string): ParseResult {
  let p = compiled.get(expression);
  if (!p) {
    p = env.parse(expression);
    if (compiled.size > 10_000) compiled.clear();
    compiled.set(expression, p);
  }
  return p;
}

/** CEL's int is 64-bit: JSON integers become BigInt, as kube's CEL sees int64 fields. */
function toCel(v: unknown): unknown {
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (Array.isArray(v)) return v.map(toCel);
  if (isRecord(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toCel(x)]));
  return v;
}

const firstLine = (e: unknown) => String((e as Error).message ?? e).split('\n')[0]!;

// ---- creating policies: their CEL must compile, as the real server checks --------------------

/** 422 causes for expressions of a policy that do not compile. */
export function policyErrors(o: KubeObject): FieldError[] {
  if (o.kind !== 'ValidatingAdmissionPolicy' || !isRecord(o.spec)) return [];
  const spec = o.spec;
  const out: FieldError[] = [];
  const check = (expr: unknown, field: string) => {
    if (typeof expr !== 'string' || expr === '') {
      out.push({ reason: 'FieldValueRequired', field, message: 'Required value' });
      return;
    }
    try {
      compile(expr);
    } catch (e) {
      out.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(expr)}: compilation failed: ERROR: <input>: ${firstLine(e)}` });
    }
  };
  const list = (k: string) => (Array.isArray(spec[k]) ? (spec[k] as unknown[]) : []);
  list('validations').forEach((v, i) => {
    check(isRecord(v) ? v.expression : undefined, `spec.validations[${i}].expression`);
    if (isRecord(v) && v.messageExpression !== undefined) check(v.messageExpression, `spec.validations[${i}].messageExpression`);
    if (isRecord(v) && v.reason !== undefined && !['Unauthorized', 'Forbidden', 'Invalid', 'RequestEntityTooLarge'].includes(String(v.reason))) {
      out.push({ reason: 'FieldValueNotSupported', field: `spec.validations[${i}].reason`, message: `Unsupported value: ${JSON.stringify(v.reason)}: supported values: "Unauthorized", "Forbidden", "Invalid", "RequestEntityTooLarge"` });
    }
  });
  list('matchConditions').forEach((v, i) => check(isRecord(v) ? v.expression : undefined, `spec.matchConditions[${i}].expression`));
  list('variables').forEach((v, i) => check(isRecord(v) ? v.expression : undefined, `spec.variables[${i}].expression`));
  if (spec.failurePolicy !== undefined && !['Fail', 'Ignore'].includes(String(spec.failurePolicy))) {
    out.push({ reason: 'FieldValueNotSupported', field: 'spec.failurePolicy', message: `Unsupported value: ${JSON.stringify(spec.failurePolicy)}: supported values: "Fail", "Ignore"` });
  }
  if (!isRecord(spec.matchConstraints) || !Array.isArray(spec.matchConstraints.resourceRules)) {
    out.push({ reason: 'FieldValueRequired', field: 'spec.matchConstraints.resourceRules', message: 'Required value' });
  }
  return out;
}

/** 422 causes for a binding: a policy name and known validation actions. */
export function bindingErrors(o: KubeObject): FieldError[] {
  if (o.kind !== 'ValidatingAdmissionPolicyBinding') return [];
  const spec = isRecord(o.spec) ? o.spec : {};
  const out: FieldError[] = [];
  if (typeof spec.policyName !== 'string' || !spec.policyName) out.push({ reason: 'FieldValueRequired', field: 'spec.policyName', message: 'Required value' });
  const actions = spec.validationActions;
  if (!Array.isArray(actions) || actions.length === 0) out.push({ reason: 'FieldValueRequired', field: 'spec.validationActions', message: 'Required value: at least one validation action is required' });
  else actions.forEach((a, i) => {
    if (!['Deny', 'Warn', 'Audit'].includes(String(a))) out.push({ reason: 'FieldValueNotSupported', field: `spec.validationActions[${i}]`, message: `Unsupported value: ${JSON.stringify(a)}: supported values: "Audit", "Deny", "Warn"` });
  });
  const ref = spec.paramRef;
  if (isRecord(ref) && !['Allow', 'Deny'].includes(String(ref.parameterNotFoundAction))) {
    out.push({ reason: 'FieldValueRequired', field: 'spec.paramRef.parameterNotFoundAction', message: 'Required value' });
  }
  return out;
}

// ---- matching ---------------------------------------------------------------------------------

function selectorMatches(sel: unknown, labels: Record<string, string> | undefined): boolean {
  if (!isRecord(sel)) return true;
  const l = labels ?? {};
  if (isRecord(sel.matchLabels) && !Object.entries(sel.matchLabels).every(([k, v]) => l[k] === v)) return false;
  for (const e of Array.isArray(sel.matchExpressions) ? sel.matchExpressions : []) {
    if (!isRecord(e)) continue;
    const key = String(e.key);
    const values = Array.isArray(e.values) ? e.values.map(String) : [];
    const ok = e.operator === 'In' ? key in l && values.includes(l[key]!)
      : e.operator === 'NotIn' ? !(key in l) || !values.includes(l[key]!)
        : e.operator === 'Exists' ? key in l
          : e.operator === 'DoesNotExist' ? !(key in l) : false;
    if (!ok) return false;
  }
  return true;
}

/** As kube: "pods" and "*" match the main resource only, "pods/status", "pods/*" and "*\/status" the subresource. */
function resourceMatches(list: unknown, plural: string, sub: string | undefined): boolean {
  if (!Array.isArray(list)) return false;
  if (!sub) return list.includes('*') || list.includes(plural);
  return ['*/*', `${plural}/*`, `*/${sub}`, `${plural}/${sub}`].some((r) => list.includes(r));
}

const has = (list: unknown, v: string) => Array.isArray(list) && (list.includes('*') || list.includes(v));

function ruleMatches(rule: unknown, a: AdmissionAttributes): boolean {
  if (!isRecord(rule)) return false;
  const scope = rule.scope ?? '*';
  return has(rule.operations, a.operation) && has(rule.apiGroups, a.res.group) && has(rule.apiVersions, a.res.version)
    && resourceMatches(rule.resources, a.res.plural, a.subResource)
    && (scope === '*' || scope === (a.res.namespaced ? 'Namespaced' : 'Cluster'))
    && (!Array.isArray(rule.resourceNames) || rule.resourceNames.length === 0 || rule.resourceNames.includes(a.name));
}

/** matchConstraints / matchResources: rules, exclusions, namespace and object selectors. */
function resourcesMatch(m: unknown, a: AdmissionAttributes, store: AdmissionStore, rulesRequired: boolean): boolean {
  if (!isRecord(m)) return !rulesRequired;
  const rules = Array.isArray(m.resourceRules) ? m.resourceRules : [];
  if ((rules.length > 0 || rulesRequired) && !rules.some((r) => ruleMatches(r, a))) return false;
  if (Array.isArray(m.excludeResourceRules) && m.excludeResourceRules.some((r) => ruleMatches(r, a))) return false;
  if (a.res.namespaced && a.namespace !== undefined && !selectorMatches(m.namespaceSelector, store.namespace(a.namespace)?.metadata.labels)) return false;
  if (a.res.plural === 'namespaces' && !selectorMatches(m.namespaceSelector, (a.object ?? a.oldObject)?.metadata.labels)) return false;
  if (isRecord(m.objectSelector)) {
    const sel = m.objectSelector;
    if (![a.object, a.oldObject].some((o) => o && selectorMatches(sel, o.metadata.labels))) return false;
  }
  return true;
}

// ---- evaluation -------------------------------------------------------------------------------

interface Decision { action: 'admit' | 'deny'; message: string; reason: string }

function requestOf(a: AdmissionAttributes): Record<string, unknown> {
  const gvk = { group: a.res.group, version: a.res.version, kind: a.res.kind };
  const gvr = { group: a.res.group, version: a.res.version, resource: a.res.plural };
  return {
    kind: gvk, resource: gvr, requestKind: gvk, requestResource: gvr, subResource: a.subResource ?? '',
    name: a.name, namespace: a.namespace ?? '', operation: a.operation, dryRun: a.dryRun,
    userInfo: { username: a.user.username, uid: a.user.uid ?? '', groups: a.user.groups, extra: a.user.extra ?? {} },
  };
}

/** One policy, one binding, one params object (or null): the first failing validation, else admit. */
function evaluate(policy: KubeObject, ctx: Record<string, unknown>): Decision {
  const spec = policy.spec as Record<string, unknown>;
  const failurePolicy = spec.failurePolicy ?? 'Fail';
  const onError = (what: string, e: unknown): Decision =>
    failurePolicy === 'Ignore' ? { action: 'admit', message: '', reason: '' } : { action: 'deny', message: `${what} resulted in error: ${firstLine(e)}`, reason: 'Invalid' };
  for (const c of (spec.matchConditions as { name: string; expression: string }[] | undefined) ?? []) {
    try {
      if (compile(c.expression)(ctx) !== true) return { action: 'admit', message: '', reason: '' };
    } catch (e) {
      return onError(`failed to evaluate matchCondition '${c.name}'`, e);
    }
  }
  const variables: Record<string, unknown> = {};
  const withVars = { ...ctx, variables };
  for (const v of (spec.variables as { name: string; expression: string }[] | undefined) ?? []) {
    try {
      variables[v.name] = compile(v.expression)(withVars);
    } catch (e) {
      return onError(`variable '${v.name}'`, e);
    }
  }
  for (const v of (spec.validations as Record<string, string>[] | undefined) ?? []) {
    let ok: unknown;
    try {
      ok = compile(v.expression!)(withVars);
    } catch (e) {
      return onError(`expression '${v.expression}'`, e);
    }
    if (ok === true) continue;
    if (ok !== false) return onError(`expression '${v.expression}'`, new Error('expression must evaluate to a bool'));
    let message = v.message ?? `failed expression: ${v.expression}`;
    if (v.messageExpression) {
      try {
        const m = compile(v.messageExpression)(withVars);
        if (typeof m === 'string' && m.trim() !== '' && !m.includes('\n')) message = m;
      } catch {
        // as kube: a failing messageExpression falls back to message (the failure is only logged)
      }
    }
    return { action: 'deny', message, reason: v.reason ?? 'Invalid' };
  }
  return { action: 'admit', message: '', reason: '' };
}

const CODES: Record<string, number> = { Unauthorized: 401, Forbidden: 403, Invalid: 422, RequestEntityTooLarge: 413 };

/**
 * Runs every bound policy against one write. Throws the denial as kube-apiserver words it
 * (`<resource> "<name>" is forbidden: ValidatingAdmissionPolicy '<p>' with binding '<b>' denied
 * request: <message>`, reason Invalid unless the validation says otherwise); returns the warnings
 * of Warn bindings for the Warning header.
 */
export function admit(store: AdmissionStore, a: AdmissionAttributes): string[] {
  const policies = new Map(store.list('validatingadmissionpolicies').map((p) => [p.metadata.name!, p]));
  const warnings: string[] = [];
  const request = requestOf(a);
  const base = {
    object: toCel(a.object), oldObject: toCel(a.oldObject), request,
    namespaceObject: a.res.namespaced && a.namespace ? toCel(store.namespace(a.namespace) ?? null) : null,
  };
  for (const binding of store.list('validatingadmissionpolicybindings')) {
    const bspec = isRecord(binding.spec) ? binding.spec : {};
    const policy = policies.get(String(bspec.policyName));
    if (!policy || !isRecord(policy.spec)) continue;
    if (!resourcesMatch(policy.spec.matchConstraints, a, store, true)) continue;
    if (!resourcesMatch(bspec.matchResources, a, store, false)) continue;
    const params = paramsFor(policy, bspec, a, store);
    let decision: Decision | undefined;
    if (params === 'not-found-deny') decision = { action: 'deny', message: 'no params found for policy binding with `Deny` parameterNotFoundAction', reason: 'Invalid' };
    else if (params === 'misconfigured') {
      decision = policy.spec.failurePolicy === 'Ignore' ? undefined : { action: 'deny', message: 'failed to configure binding: paramKind is set but the binding has no paramRef', reason: 'Invalid' };
    } else {
      for (const p of params) {
        const d = evaluate(policy, { ...base, params: toCel(p) });
        if (d.action === 'deny') {
          decision = d;
          break;
        }
      }
    }
    if (!decision || decision.action === 'admit') continue;
    const actions = Array.isArray(bspec.validationActions) ? bspec.validationActions : [];
    const text = `ValidatingAdmissionPolicy '${policy.metadata.name}' with binding '${binding.metadata.name}' denied request: ${decision.message}`;
    if (actions.includes('Warn')) warnings.push(`Validation failed for ValidatingAdmissionPolicy '${policy.metadata.name}' with binding '${binding.metadata.name}': ${decision.message}`);
    if (actions.includes('Deny')) {
      const details = { name: a.name, kind: a.res.plural, ...(a.res.group ? { group: a.res.group } : {}), causes: [{ reason: '', message: text }] };
      throw failure(CODES[decision.reason] ?? 422, decision.reason, `${qualified(a.res.plural, a.res.group)} "${a.name}" is forbidden: ${text}`, details);
    }
  }
  return warnings;
}

/** The params of a binding: [null] without paramKind, else every object paramRef names or selects. */
function paramsFor(policy: KubeObject, bspec: Record<string, unknown>, a: AdmissionAttributes, store: AdmissionStore): (KubeObject | null)[] | 'not-found-deny' | 'misconfigured' {
  const kind = (policy.spec as Record<string, unknown>).paramKind;
  if (!isRecord(kind)) return [null];
  const ref = bspec.paramRef;
  if (!isRecord(ref)) return 'misconfigured';
  const res = store.resourceOf(String(kind.apiVersion), String(kind.kind));
  const ns = res?.namespaced ? (typeof ref.namespace === 'string' ? ref.namespace : a.namespace) : undefined;
  const found = res ? store.list(res.plural).filter((o) => (ns === undefined || o.metadata.namespace === ns)
    && (typeof ref.name === 'string' ? o.metadata.name === ref.name : selectorMatches(ref.selector, o.metadata.labels))) : [];
  if (found.length === 0) return ref.parameterNotFoundAction === 'Allow' ? [] : 'not-found-deny';
  return found;
}

