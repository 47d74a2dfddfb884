// PodDisruptionBudgets (policy/v1) and the pods/eviction subresource, as kube-apiserver's eviction
// REST handler (pkg/registry/core/pod/storage/eviction.go) and kube-controller-manager's disruption
// controller do them:
//  - the controller (here: pdbStatus, run after every change of a pod or PDB in the namespace, a
//    tick later as the real one is asynchronous) computes expectedPods, desiredHealthy,
//    currentHealthy, disruptionsAllowed and observedGeneration;
//  - an eviction reads the PDB's *status* (not the pods), refuses with 429 TooManyRequests and a
//    DisruptionBudget cause when disruptionsAllowed is 0 (or the status is stale), otherwise takes
//    one disruption off the status (disruptedPods) and deletes the pod with the eviction's
//    DeleteOptions (a graceful delete: the pod's own grace period unless the eviction gives one).
// Expected pods: a pod owned by a StatefulSet counts as that StatefulSet's spec.replicas (its
// scale); bare pods count only under an integer minAvailable — maxUnavailable or a percentage
// needs a controller's scale, and the real controller reports "found no controllers" and allows no
// disruption. Only StatefulSets are served by the fake, so other owners are treated like that too.
import { isRecord, type FieldError, type KubeObject } from './types';
import { failure } from './status';
import { matchLabels, type LabelRequirement } from './selectors';

const at = (o: unknown, ...path: string[]): unknown => {
  let cur = o;
  for (const p of path) cur = isRecord(cur) ? cur[p] : undefined;
  return cur;
};

/** IntOrString as the API has it: an int, or a string "N%". */
function intOrPercent(v: unknown): { n: number; percent: boolean } | null {
  if (typeof v === 'number' && Number.isInteger(v)) return { n: v, percent: false };
  if (typeof v === 'string' && /^[0-9]+%$/.test(v)) return { n: Number(v.slice(0, -1)), percent: true };
  return null;
}

/** GetScaledValueFromIntOrPercent with roundUp = true (both fields of a PDB round up). */
function scaled(v: { n: number; percent: boolean }, total: number): number {
  return v.percent ? Math.ceil((v.n * total) / 100) : v.n;
}

/** ValidatePodDisruptionBudgetSpec: one of the two, non-negative, a percentage at most 100%. */
export function pdbErrors(o: KubeObject): FieldError[] {
  const out: FieldError[] = [];
  const spec = isRecord(o.spec) ? o.spec : {};
  if (spec.minAvailable !== undefined && spec.maxUnavailable !== undefined) {
    out.push({ reason: 'FieldValueInvalid', field: 'spec', message: 'Invalid value: {}: minAvailable and maxUnavailable cannot be both set' });
  }
  for (const f of ['minAvailable', 'maxUnavailable'] as const) {
    const v = spec[f];
    if (v === undefined) continue;
    const p = intOrPercent(v);
    if (!p) out.push({ reason: 'FieldValueInvalid', field: `spec.${f}`, message: `Invalid value: ${JSON.stringify(v)}: a valid percent string must be a numeric string followed by an ending '%'` });
    else if (p.percent && p.n > 100) out.push({ reason: 'FieldValueInvalid', field: `spec.${f}`, message: `Invalid value: "${String(v)}": must not be greater than 100%` });
    else if (p.n < 0) out.push({ reason: 'FieldValueInvalid', field: `spec.${f}`, message: `Invalid value: ${p.n}: must be greater than or equal to 0` });
  }
  const policy = spec.unhealthyPodEvictionPolicy;
  if (policy !== undefined && policy !== 'IfHealthyBudget' && policy !== 'AlwaysAllow') {
    out.push({ reason: 'FieldValueNotSupported', field: 'spec.unhealthyPodEvictionPolicy', message: `Unsupported value: ${JSON.stringify(policy)}: supported values: "AlwaysAllow", "IfHealthyBudget"` });
  }
  return out;
}

/** metav1.LabelSelector (matchLabels and matchExpressions) as requirements; null = invalid. */
export function selectorRequirements(sel: unknown): LabelRequirement[] | null {
  if (sel === undefined || sel === null) return null; // policy/v1: a nil selector selects nothing
  if (!isRecord(sel)) return null;
  const reqs: LabelRequirement[] = [];
  for (const [key, value] of Object.entries(isRecord(sel.matchLabels) ? sel.matchLabels : {})) {
    reqs.push({ key, op: 'eq', value: String(value) });
  }
  for (const e of Array.isArray(sel.matchExpressions) ? sel.matchExpressions : []) {
    const key = String(at(e, 'key'));
    const values = (at(e, 'values') as unknown[] | undefined ?? []).map(String);
    const op = at(e, 'operator');
    if (op === 'In') reqs.push({ key, op: 'in', values });
    else if (op === 'NotIn') reqs.push({ key, op: 'notin', values });
    else if (op === 'Exists') reqs.push({ key, op: 'exists' });
    else if (op === 'DoesNotExist') reqs.push({ key, op: 'notexists' });
    else return null;
  }
  return reqs;
}

export function pdbSelects(pdb: KubeObject, pod: KubeObject): boolean {
  if (pdb.metadata.namespace !== pod.metadata.namespace) return false;
  const reqs = selectorRequirements(at(pdb, 'spec', 'selector'));
  return reqs !== null && matchLabels(reqs, pod.metadata.labels);
}

/** podutil.IsPodReady: the Ready condition is True. */
export function podReady(pod: KubeObject): boolean {
  const conds = at(pod, 'status', 'conditions');
  return Array.isArray(conds) && conds.some((c) => at(c, 'type') === 'Ready' && at(c, 'status') === 'True');
}

export interface PdbWorld {
  pods: KubeObject[];
  statefulSets: KubeObject[];
}

/** The disruption controller's status for one PDB, given the pods and controllers of its namespace. */
export function pdbStatus(pdb: KubeObject, world: PdbWorld, now = Date.now()): Record<string, unknown> {
  const spec = isRecord(pdb.spec) ? pdb.spec : {};
  const pods = world.pods.filter((p) => pdbSelects(pdb, p));
  const old = isRecord(pdb.status) ? pdb.status : {};
  // Evicted pods stay out of currentHealthy until they are gone or being deleted (or 2 min pass).
  const disrupted: Record<string, string> = {};
  for (const [name, when] of Object.entries(isRecord(old.disruptedPods) ? old.disruptedPods : {})) {
    const pod = pods.find((p) => p.metadata.name === name);
    if (pod && !pod.metadata.deletionTimestamp && typeof when === 'string' && now - Date.parse(when) < 120_000) disrupted[name] = when;
  }
  const minAvailable = spec.minAvailable === undefined ? null : intOrPercent(spec.minAvailable);
  const maxUnavailable = spec.maxUnavailable === undefined ? null : intOrPercent(spec.maxUnavailable);
  let expected = 0;
  let noController: string | null = null;
  const counted = new Set<string>();
  for (const p of pods) {
    const owner = (Array.isArray(p.metadata.ownerReferences) ? p.metadata.ownerReferences : []).find((r) => at(r, 'controller') === true);
    const sts = owner && at(owner, 'kind') === 'StatefulSet' ? world.statefulSets.find((s) => s.metadata.name === at(owner, 'name') && s.metadata.namespace === p.metadata.namespace) : undefined;
    if (sts) {
      if (!counted.has(sts.metadata.name!)) expected += Number(at(sts, 'spec', 'replicas') ?? 1);
      counted.add(sts.metadata.name!);
    } else if (minAvailable && !minAvailable.percent) expected += 1;
    else noController ??= p.metadata.name!;
  }
  const healthy = pods.filter((p) => podReady(p) && !p.metadata.deletionTimestamp && !(p.metadata.name! in disrupted)).length;
  let desired = 0;
  if (minAvailable) desired = scaled(minAvailable, expected);
  else if (maxUnavailable) desired = Math.max(0, expected - scaled(maxUnavailable, expected));
  const allowed = noController ? 0 : Math.max(0, healthy - desired);
  const conditions = [{
    type: 'DisruptionAllowed',
    status: allowed > 0 ? 'True' : 'False',
    reason: noController ? 'SyncFailed' : allowed > 0 ? 'SufficientPods' : 'InsufficientPods',
    message: noController ? `found no controllers for pod "${noController}"` : '',
    observedGeneration: pdb.metadata.generation ?? 1,
  }];
  return {
    observedGeneration: pdb.metadata.generation ?? 1,
    ...(Object.keys(disrupted).length ? { disruptedPods: disrupted } : {}),
    disruptionsAllowed: allowed,
    currentHealthy: healthy,
    desiredHealthy: desired,
    expectedPods: expected,
    conditions,
  };
}

const TOO_MANY = "Cannot evict pod as it would violate the pod's disruption budget.";

export type EvictionDecision =
  | { kind: 'delete'; pdbStatus?: { pdb: KubeObject; status: Record<string, unknown> } }
  | { kind: 'refuse'; error: ReturnType<typeof failure> };

/**
 * What the eviction handler does with `pod` given the PDBs of its namespace (their stored status).
 * Terminal, pending and already-terminating pods ignore PDBs (canIgnorePDB).
 */
export function decideEviction(pod: KubeObject, pdbs: KubeObject[], now = Date.now()): EvictionDecision {
  const phase = at(pod, 'status', 'phase');
  if (phase === 'Succeeded' || phase === 'Failed' || phase === 'Pending' || pod.metadata.deletionTimestamp) return { kind: 'delete' };
  const mine = pdbs.filter((p) => pdbSelects(p, pod));
  if (mine.length > 1) throw failure(500, 'InternalError', 'This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.');
  const pdb = mine[0];
  if (!pdb) return { kind: 'delete' };
  const st = isRecord(pdb.status) ? pdb.status : {};
  const tooMany = (cause: string) => failure(429, 'TooManyRequests', TOO_MANY, { causes: [{ reason: 'DisruptionBudget', message: cause }] });
  if (typeof st.observedGeneration !== 'number' || st.observedGeneration < (pdb.metadata.generation ?? 1)) {
    return { kind: 'refuse', error: tooMany(`The disruption budget ${pdb.metadata.name!} is still being processed by the server.`) };
  }
  const allowed = Number(st.disruptionsAllowed ?? 0);
  if (allowed < 0) return { kind: 'refuse', error: failure(403, 'Forbidden', 'pdb disruptions allowed is negative') };
  const policy = at(pdb, 'spec', 'unhealthyPodEvictionPolicy') ?? 'IfHealthyBudget';
  const current = Number(st.currentHealthy ?? 0);
  const desired = Number(st.desiredHealthy ?? 0);
  // An unready pod may go when the budget is met anyway (IfHealthyBudget) or always (AlwaysAllow).
  if (!podReady(pod) && (policy === 'AlwaysAllow' || (current >= desired && desired > 0))) return { kind: 'delete' };
  if (allowed === 0) {
    return { kind: 'refuse', error: tooMany(`The disruption budget ${pdb.metadata.name!} needs ${desired} healthy pods and has ${current} currently`) };
  }
  const disruptedPods = { ...(isRecord(st.disruptedPods) ? st.disruptedPods : {}), [pod.metadata.name!]: new Date(now).toISOString() };
  return { kind: 'delete', pdbStatus: { pdb, status: { ...st, disruptionsAllowed: allowed - 1, disruptedPods } } };
}

/** The Eviction body: policy/v1 (or v1beta1) Eviction naming the pod of the URL. */
export function evictionBody(body: unknown, name: string): { gracePeriodSeconds?: number; preconditions?: { uid?: string; resourceVersion?: string } } {
  if (!isRecord(body)) throw failure(400, 'BadRequest', 'Eviction in version "v1" cannot be handled as a Eviction: the body is not a JSON object');
  if (body.kind !== undefined && body.kind !== 'Eviction') throw failure(400, 'BadRequest', `the kind in the data (${String(body.kind)}) does not match the expected kind (Eviction)`);
  if (body.apiVersion !== undefined && body.apiVersion !== 'policy/v1' && body.apiVersion !== 'policy/v1beta1') {
    throw failure(400, 'BadRequest', `the API version in the data (${String(body.apiVersion)}) does not match the expected API version (policy/v1)`);
  }
  if (at(body, 'metadata', 'name') !== name) throw failure(400, 'BadRequest', 'name in URL does not match name in Eviction object');
  const opts = isRecord(body.deleteOptions) ? body.deleteOptions : {};
  const out: { gracePeriodSeconds?: number; preconditions?: { uid?: string; resourceVersion?: string } } = {};
  if (opts.gracePeriodSeconds !== undefined && opts.gracePeriodSeconds !== null) {
    if (typeof opts.gracePeriodSeconds !== 'number' || !Number.isInteger(opts.gracePeriodSeconds)) throw failure(400, 'BadRequest', 'gracePeriodSeconds must be an integer');
    out.gracePeriodSeconds = Math.max(0, opts.gracePeriodSeconds);
  }
  if (isRecord(opts.preconditions)) {
    out.preconditions = {};
    if (typeof opts.preconditions.uid === 'string') out.preconditions.uid = opts.preconditions.uid;
    if (typeof opts.preconditions.resourceVersion === 'string') out.preconditions.resourceVersion = opts.preconditions.resourceVersion;
  }
  return out;
}

/** ValidateLeaseSpec. */
export function leaseErrors(o: KubeObject): FieldError[] {
  const out: FieldError[] = [];
  const d = at(o, 'spec', 'leaseDurationSeconds');
  if (typeof d === 'number' && d <= 0) out.push({ reason: 'FieldValueInvalid', field: 'spec.leaseDurationSeconds', message: `Invalid value: ${d}: must be greater than 0` });
  const t = at(o, 'spec', 'leaseTransitions');
  if (typeof t === 'number' && t < 0) out.push({ reason: 'FieldValueInvalid', field: 'spec.leaseTransitions', message: `Invalid value: ${t}: must be greater than or equal to 0` });
  return out;
}

const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/;

/** The typed decoder's 400s for a Lease's spec. */
export function decodeLease(o: KubeObject, fail: (path: string, want: string) => never): void {
  if (o.spec === undefined) return;
  if (!isRecord(o.spec)) fail('Lease.spec', 'v1.LeaseSpec');
  const s = o.spec;
  for (const k of ['holderIdentity', 'strategy', 'preferredHolder'] as const) if (s[k] !== undefined && s[k] !== null && typeof s[k] !== 'string') fail(`LeaseSpec.spec.${k}`, 'string');
  for (const k of ['leaseDurationSeconds', 'leaseTransitions'] as const) {
    if (s[k] !== undefined && s[k] !== null && (typeof s[k] !== 'number' || !Number.isInteger(s[k]))) fail(`LeaseSpec.spec.${k}`, 'int32');
  }
  for (const k of ['acquireTime', 'renewTime'] as const) {
    if (s[k] !== undefined && s[k] !== null && (typeof s[k] !== 'string' || !MICRO_TIME.test(s[k]))) fail(`LeaseSpec.spec.${k}`, 'v1.MicroTime');
  }
}

/** The typed decoder's 400s for a PDB's spec. */
export function decodePdb(o: KubeObject, fail: (path: string, want: string) => never): void {
  if (o.spec === undefined) return;
  if (!isRecord(o.spec)) fail('PodDisruptionBudget.spec', 'v1.PodDisruptionBudgetSpec');
  for (const k of ['minAvailable', 'maxUnavailable'] as const) {
    const v = o.spec[k];
    if (v !== undefined && v !== null && typeof v !== 'string' && !(typeof v === 'number' && Number.isInteger(v))) fail(`PodDisruptionBudgetSpec.spec.${k}`, 'intstr.IntOrString');
  }
  if (o.spec.selector !== undefined && o.spec.selector !== null && selectorRequirements(o.spec.selector) === null) fail('PodDisruptionBudgetSpec.spec.selector', 'v1.LabelSelector');
}
