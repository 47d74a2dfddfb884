// The resource table: what the fake serves, with each kind's decoding (type errors → 400, as the
// real server's typed decoder), validation (→ 422 Invalid), defaults and selectable fields.
import { decodeLease, decodePdb, leaseErrors, pdbErrors } from './disruption';
import { badRequest } from './status';
import { type FieldError, type KubeObject, isRecord } from './types';

export interface ResourceDef {
  group: string; // '' for the core group
  version: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  /** A custom resource (CRD): list items keep kind/apiVersion, strategic merge patch gets 415. */
  custom: boolean;
  /** DELETE answers with the object (pods, custom resources) rather than a Status. */
  returnDeletedObject: boolean;
  /** Has a /status subresource: the main endpoint ignores status, /status changes only status. */
  statusSubresource: boolean;
  /** Subresources that only take a POST (pods/eviction). */
  createSubresources?: string[];
  /** metadata.generation is kept and bumped on spec changes (custom resources, PDBs). */
  generation?: boolean;
  nameRule: 'subdomain' | 'label';
  /** Selectable fields beyond metadata.name / metadata.namespace. */
  fields: Record<string, (o: KubeObject) => string | undefined>;
  decode?: (o: KubeObject, fail: (path: string, want: string) => never) => void;
  validate?: (o: KubeObject, old: KubeObject | undefined) => FieldError[];
  defaults?: (o: KubeObject) => void;
  /**
   * Another API's view of a stored resource (events.k8s.io/v1 Events are core/v1 Events in
   * storage, as in the real server): objects are converted on the way in and out.
   */
  storage?: { res: ResourceDef; toStorage: (o: KubeObject) => KubeObject; fromStorage: (o: KubeObject) => KubeObject };
}

export const apiVersionOf = (r: ResourceDef) => (r.group ? `${r.group}/${r.version}` : r.version);
export const resourceKey = (r: ResourceDef) => `${r.group}/${r.version}/${r.plural}`;

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const at = (o: unknown, ...path: string[]): unknown => {
  let cur = o;
  for (const p of path) cur = isRecord(cur) ? cur[p] : undefined;
  return cur;
};

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;

export function nameErrors(name: string, rule: 'subdomain' | 'label', field = 'metadata.name'): FieldError[] {
  if (rule === 'label') {
    if (name.length > 63) return [{ reason: 'FieldValueInvalid', field, message: `Invalid value: "${name}": must be no more than 63 characters` }];
    if (!LABEL.test(name)) {
      return [{ reason: 'FieldValueInvalid', field, message: `Invalid value: "${name}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character` }];
    }
    return [];
  }
  if (name.length > 253) return [{ reason: 'FieldValueInvalid', field, message: `Invalid value: "${name}": must be no more than 253 characters` }];
  if (!SUBDOMAIN.test(name)) {
    return [{ reason: 'FieldValueInvalid', field, message: `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character` }];
  }
  return [];
}

function labelErrors(labels: Record<string, string> | undefined): FieldError[] {
  const out: FieldError[] = [];
  for (const [k, v] of Object.entries(labels ?? {})) {
    const slash = k.lastIndexOf('/');
    const prefix = slash >= 0 ? k.slice(0, slash) : '';
    const name = slash >= 0 ? k.slice(slash + 1) : k;
    if ((slash >= 0 && (!SUBDOMAIN.test(prefix) || prefix.length > 253)) || !QUALIFIED.test(name) || name.length > 63) {
      out.push({ reason: 'FieldValueInvalid', field: 'metadata.labels', message: `Invalid value: "${k}": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character` });
    }
    if (v !== '' && (!QUALIFIED.test(v) || v.length > 63)) {
      out.push({ reason: 'FieldValueInvalid', field: 'metadata.labels', message: `Invalid value: "${v}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character` });
    }
  }
  return out;
}

/** Checks every kind shares: metadata types (400) then name, generateName and labels (422). */
export function decodeMeta(o: KubeObject, fail: (path: string, want: string) => never): void {
  const m = o.metadata;
  for (const k of ['name', 'generateName', 'namespace', 'uid', 'resourceVersion'] as const) {
    if (m[k] !== undefined && typeof m[k] !== 'string') fail(`ObjectMeta.metadata.${k}`, 'string');
  }
  for (const k of ['labels', 'annotations'] as const) {
    const v = m[k];
    if (v === undefined || v === null) continue;
    if (!isRecord(v)) fail(`ObjectMeta.metadata.${k}`, 'map[string]string');
    for (const x of Object.values(v)) if (typeof x !== 'string') fail(`ObjectMeta.metadata.${k}`, 'string');
  }
  if (m.finalizers !== undefined && (!Array.isArray(m.finalizers) || m.finalizers.some((f) => typeof f !== 'string'))) {
    fail('ObjectMeta.metadata.finalizers', '[]string');
  }
}

/** ValidateAnnotations: keys plus values of all annotations at most 256 KiB (TotalAnnotationSizeLimitB). */
export const ANNOTATIONS_MAX = 256 * 1024;

/**
 * etcd's default --max-request-bytes (1.5 MiB, etcd's documented request limit): kube-apiserver
 * has no object size rule of its own, so a bigger object fails in storage, with a 500 and no reason
 * (kubernetes/kubernetes#112152). The 1 MiB figure in kube's docs is the ConfigMap data rule
 * (configMapErrors); the 3 MiB request body limit is the other bound (http.ts).
 */
export const STORED_OBJECT_MAX = 1536 * 1024;

export function metaErrors(o: KubeObject, rule: 'subdomain' | 'label'): FieldError[] {
  const m = o.metadata;
  const out: FieldError[] = [];
  const annotationBytes = Object.entries(m.annotations ?? {}).reduce((n, [k, v]) => n + k.length + Buffer.byteLength(v), 0);
  if (annotationBytes > ANNOTATIONS_MAX) {
    out.push({ reason: 'FieldValueTooLong', field: 'metadata.annotations', message: `Too long: must have at most ${ANNOTATIONS_MAX} bytes` });
  }
  if (!m.name && !m.generateName) {
    out.push({ reason: 'FieldValueRequired', field: 'metadata.name', message: 'Required value: name or generateName is required' });
  }
  if (m.name) out.push(...nameErrors(m.name, rule));
  out.push(...labelErrors(m.labels));
  return out;
}

function stringMap(o: KubeObject, key: string, fail: (path: string, want: string) => never): void {
  const v = o[key];
  if (v === undefined || v === null) return;
  if (!isRecord(v)) fail(`${o.kind}.${key}`, 'map[string]string');
  for (const x of Object.values(v)) if (typeof x !== 'string') fail(`${o.kind}.${key}`, 'string');
}

const CONFIGMAP_MAX = 1024 * 1024;

function configMapErrors(o: KubeObject, old: KubeObject | undefined): FieldError[] {
  const out: FieldError[] = [];
  const data = (o.data ?? {}) as Record<string, string>;
  const bin = (o.binaryData ?? {}) as Record<string, string>;
  let size = 0;
  for (const [k, v] of Object.entries(data)) {
    size += k.length + Buffer.byteLength(v);
    if (!CONFIG_KEY.test(k) || k.length > 253 || k === '.' || k === '..') {
      out.push({ reason: 'FieldValueInvalid', field: `data[${k}]`, message: `Invalid value: "${k}": a valid config key must consist of alphanumeric characters, '-', '_' or '.'` });
    }
    if (k in bin) out.push({ reason: 'FieldValueInvalid', field: `data[${k}]`, message: `Invalid value: "${k}": duplicate of key present in binaryData` });
  }
  for (const [k, v] of Object.entries(bin)) {
    size += k.length + Buffer.from(v, 'base64').length;
    if (!CONFIG_KEY.test(k) || k.length > 253) {
      out.push({ reason: 'FieldValueInvalid', field: `binaryData[${k}]`, message: `Invalid value: "${k}": a valid config key must consist of alphanumeric characters, '-', '_' or '.'` });
    }
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v)) out.push({ reason: 'FieldValueInvalid', field: `binaryData[${k}]`, message: 'Invalid value: illegal base64 data' });
  }
  if (size > CONFIGMAP_MAX) out.push({ reason: 'FieldValueTooLong', field: '', message: `Too long: must have at most ${CONFIGMAP_MAX} bytes` });
  if (old && old.immutable === true) {
    if (JSON.stringify(old.data ?? {}) !== JSON.stringify(o.data ?? {}) || JSON.stringify(old.binaryData ?? {}) !== JSON.stringify(o.binaryData ?? {})) {
      out.push({ reason: 'FieldValueForbidden', field: 'data', message: 'Forbidden: field is immutable when `immutable` is set' });
    }
    if (o.immutable !== true) out.push({ reason: 'FieldValueForbidden', field: 'immutable', message: 'Forbidden: field is immutable when `immutable` is set' });
  }
  return out;
}

function podErrors(o: KubeObject, old: KubeObject | undefined): FieldError[] {
  const out: FieldError[] = [];
  const containers = at(o, 'spec', 'containers');
  if (!Array.isArray(containers) || containers.length === 0) {
    out.push({ reason: 'FieldValueRequired', field: 'spec.containers', message: 'Required value' });
  } else {
    containers.forEach((c, i) => {
      const name = str(at(c, 'name'));
      if (!name) out.push({ reason: 'FieldValueRequired', field: `spec.containers[${i}].name`, message: 'Required value' });
      else out.push(...nameErrors(name, 'label', `spec.containers[${i}].name`));
      if (!str(at(c, 'image'))) out.push({ reason: 'FieldValueRequired', field: `spec.containers[${i}].image`, message: 'Required value' });
    });
  }
  if (old) {
    // Pod specs are immutable apart from container images (a simplification of the real list).
    const strip = (p: KubeObject) => {
      const s = structuredClone(p.spec) as Record<string, unknown>;
      if (Array.isArray(s.containers)) s.containers = s.containers.map((c) => ({ ...(c as object), image: undefined }));
      return JSON.stringify(s);
    };
    if (strip(old) !== strip(o)) {
      out.push({ reason: 'FieldValueForbidden', field: 'spec', message: 'Forbidden: pod updates may not change fields other than `spec.containers[*].image`' });
    }
  }
  return out;
}

function eventErrors(o: KubeObject): FieldError[] {
  const inv = o.involvedObject;
  if (!isRecord(inv)) return [{ reason: 'FieldValueRequired', field: 'involvedObject', message: 'Required value' }];
  const ns = str(inv.namespace);
  if (ns && ns !== o.metadata.namespace) {
    return [{ reason: 'FieldValueInvalid', field: 'involvedObject.namespace', message: `Invalid value: "${ns}": does not match event.namespace` }];
  }
  return [];
}

function statefulSetErrors(o: KubeObject): FieldError[] {
  const r = at(o, 'spec', 'replicas');
  if (typeof r === 'number' && r < 0) {
    return [{ reason: 'FieldValueInvalid', field: 'spec.replicas', message: `Invalid value: ${r}: must be greater than or equal to 0` }];
  }
  return [];
}

const core = (d: Partial<ResourceDef> & Pick<ResourceDef, 'plural' | 'singular' | 'kind' | 'namespaced'>): ResourceDef => ({
  group: '', version: 'v1', shortNames: [], custom: false, returnDeletedObject: false, statusSubresource: false,
  nameRule: 'subdomain', fields: {}, ...d,
});

export const SRIOV_GROUP = 'sriov-underlay.io';
export const ADMISSION_GROUP = 'admissionregistration.k8s.io';

/** ValidatingAdmissionPolicy and its binding: cluster-scoped; their CEL is checked by admission.ts. */
const admission = (plural: string, singular: string, kind: string): ResourceDef => ({
  group: ADMISSION_GROUP, version: 'v1', plural, singular, kind, namespaced: false, shortNames: [], custom: false,
  returnDeletedObject: false, statusSubresource: plural === 'validatingadmissionpolicies', nameRule: 'subdomain', fields: {},
  decode: (o, fail) => { if (o.spec !== undefined && !isRecord(o.spec)) fail(`${kind}.spec`, `v1.${kind}Spec`); },
});

// Field pairs between events.k8s.io/v1 (left) and core/v1 (right) Events.
const EVENT_FIELDS: [string, string][] = [
  ['regarding', 'involvedObject'], ['related', 'related'], ['note', 'message'], ['reason', 'reason'],
  ['type', 'type'], ['action', 'action'], ['eventTime', 'eventTime'], ['series', 'series'],
  ['reportingController', 'reportingComponent'], ['reportingInstance', 'reportingInstance'],
  ['deprecatedSource', 'source'], ['deprecatedFirstTimestamp', 'firstTimestamp'],
  ['deprecatedLastTimestamp', 'lastTimestamp'], ['deprecatedCount', 'count'],
];

function renameFields(o: KubeObject, apiVersion: string, pairs: [string, string][]): KubeObject {
  const out: KubeObject = { apiVersion, kind: 'Event', metadata: o.metadata };
  for (const [from, to] of pairs) if (o[from] !== undefined) out[to] = o[from];
  return out;
}

function eventsV1Errors(o: KubeObject): FieldError[] {
  const out: FieldError[] = [];
  for (const f of ['eventTime', 'reportingController', 'reportingInstance', 'action', 'reason']) {
    if (typeof o[f] !== 'string' || o[f] === '') out.push({ reason: 'FieldValueRequired', field: f, message: 'Required value' });
  }
  if (o.type !== 'Normal' && o.type !== 'Warning') {
    out.push({ reason: 'FieldValueNotSupported', field: 'type', message: `Unsupported value: ${JSON.stringify(o.type)}: supported values: "Normal", "Warning"` });
  }
  if (typeof o.note === 'string' && Buffer.byteLength(o.note) > 1024) {
    out.push({ reason: 'FieldValueTooLong', field: 'note', message: 'Too long: may not be more than 1024 bytes' });
  }
  const ns = str(at(o, 'regarding', 'namespace'));
  if (ns && ns !== o.metadata.namespace) {
    out.push({ reason: 'FieldValueInvalid', field: 'regarding.namespace', message: `Invalid value: "${ns}": does not match event.namespace` });
  }
  return out;
}

export function defaultResources(): ResourceDef[] {
  const coreEvents = core({
    plural: 'events', singular: 'event', kind: 'Event', namespaced: true, shortNames: ['ev'],
    fields: Object.fromEntries([
      ...['kind', 'namespace', 'name', 'uid', 'apiVersion', 'resourceVersion', 'fieldPath'].map((f) => [
        `involvedObject.${f}`, (o: KubeObject) => str(at(o, 'involvedObject', f)) ?? '',
      ]),
      ['reason', (o: KubeObject) => str(o.reason) ?? ''],
      ['reportingComponent', (o: KubeObject) => str(o.reportingComponent) ?? ''],
      ['source', (o: KubeObject) => str(at(o, 'source', 'component')) ?? ''],
      ['type', (o: KubeObject) => str(o.type) ?? ''],
    ]),
    decode: (o, fail) => { if (o.involvedObject !== undefined && !isRecord(o.involvedObject)) fail('Event.involvedObject', 'v1.ObjectReference'); },
    validate: eventErrors,
  });
  const eventsV1: ResourceDef = {
    ...coreEvents, group: 'events.k8s.io', version: 'v1', shortNames: [], decode: undefined,
    fields: Object.fromEntries([
      ...['kind', 'namespace', 'name', 'uid', 'apiVersion', 'resourceVersion', 'fieldPath'].map((f) => [
        `regarding.${f}`, (o: KubeObject) => str(at(o, 'regarding', f)) ?? '',
      ]),
      ['reason', (o: KubeObject) => str(o.reason) ?? ''],
      ['reportingController', (o: KubeObject) => str(o.reportingController) ?? ''],
      ['type', (o: KubeObject) => str(o.type) ?? ''],
    ]),
    validate: eventsV1Errors,
    storage: {
      res: coreEvents,
      toStorage: (o) => renameFields(o, 'v1', EVENT_FIELDS),
      fromStorage: (o) => renameFields(o, 'events.k8s.io/v1', EVENT_FIELDS.map(([a, b]) => [b, a])),
    },
  };
  return [coreEvents, eventsV1,
    core({
      plural: 'configmaps', singular: 'configmap', kind: 'ConfigMap', namespaced: true, shortNames: ['cm'],
      decode: (o, fail) => { stringMap(o, 'data', fail); stringMap(o, 'binaryData', fail); if (o.immutable !== undefined && typeof o.immutable !== 'boolean') fail('ConfigMap.immutable', 'bool'); },
      validate: configMapErrors,
    }),
    core({
      plural: 'pods', singular: 'pod', kind: 'Pod', namespaced: true, shortNames: ['po'], returnDeletedObject: true, statusSubresource: true,
      createSubresources: ['eviction'],
      fields: {
        'spec.nodeName': (o) => str(at(o, 'spec', 'nodeName')) ?? '',
        'spec.restartPolicy': (o) => str(at(o, 'spec', 'restartPolicy')) ?? '',
        'spec.schedulerName': (o) => str(at(o, 'spec', 'schedulerName')) ?? '',
        'spec.serviceAccountName': (o) => str(at(o, 'spec', 'serviceAccountName')) ?? '',
        'status.phase': (o) => str(at(o, 'status', 'phase')) ?? '',
        'status.podIP': (o) => str(at(o, 'status', 'podIP')) ?? '',
        'status.nominatedNodeName': (o) => str(at(o, 'status', 'nominatedNodeName')) ?? '',
      },
      decode: (o, fail) => {
        if (o.spec !== undefined && !isRecord(o.spec)) fail('Pod.spec', 'v1.PodSpec');
        const c = at(o, 'spec', 'containers');
        if (c !== undefined && !Array.isArray(c)) fail('PodSpec.spec.containers', '[]v1.Container');
      },
      validate: podErrors,
      defaults: (o) => {
        const spec = o.spec as Record<string, unknown>;
        spec.terminationGracePeriodSeconds ??= 30;
        spec.restartPolicy ??= 'Always';
        spec.schedulerName ??= 'default-scheduler';
      },
    }),
    core({
      plural: 'nodes', singular: 'node', kind: 'Node', namespaced: false, shortNames: ['no'], statusSubresource: true,
      fields: { 'spec.unschedulable': (o) => String(at(o, 'spec', 'unschedulable') === true) },
    }),
    core({
      plural: 'namespaces', singular: 'namespace', kind: 'Namespace', namespaced: false, shortNames: ['ns'], nameRule: 'label',
      returnDeletedObject: true, statusSubresource: true,
      fields: { 'status.phase': (o) => str(at(o, 'status', 'phase')) ?? '' },
      defaults: (o) => {
        o.metadata.labels = { ...(o.metadata.labels ?? {}), 'kubernetes.io/metadata.name': o.metadata.name ?? '' };
        o.status = { phase: 'Active' };
      },
    }),
    {
      // Only what the reconcile loop reads (spec.replicas); no controller creates or deletes pods.
      group: 'apps', version: 'v1', plural: 'statefulsets', singular: 'statefulset', kind: 'StatefulSet',
      namespaced: true, shortNames: ['sts'], custom: false, returnDeletedObject: false, statusSubresource: true,
      nameRule: 'subdomain', fields: {},
      decode: (o, fail) => {
        if (o.spec !== undefined && !isRecord(o.spec)) fail('StatefulSet.spec', 'v1.StatefulSetSpec');
        const r = at(o, 'spec', 'replicas');
        if (r !== undefined && (typeof r !== 'number' || !Number.isInteger(r))) fail('StatefulSetSpec.spec.replicas', 'int32');
      },
      validate: statefulSetErrors,
      defaults: (o) => {
        if (!isRecord(o.spec)) o.spec = {};
        (o.spec as Record<string, unknown>).replicas ??= 1;
      },
    },
    {
      group: SRIOV_GROUP, version: 'v1alpha1', plural: 'ipclaims', singular: 'ipclaim', kind: 'IPClaim',
      namespaced: false, shortNames: ['ipc'], custom: true, returnDeletedObject: true, statusSubresource: false,
      nameRule: 'subdomain', fields: {},
    },
    {
      group: SRIOV_GROUP, version: 'v1alpha1', plural: 'sriovnodestates', singular: 'sriovnodestate', kind: 'SriovNodeState',
      namespaced: false, shortNames: ['sns'], custom: true, returnDeletedObject: true, statusSubresource: false,
      nameRule: 'subdomain', fields: {},
    },
    {
      // Leader election and the node policy's one-node-at-a-time lock: plain CRUD, and the
      // resourceVersion precondition of update is what makes two racing holders see a 409.
      group: 'coordination.k8s.io', version: 'v1', plural: 'leases', singular: 'lease', kind: 'Lease',
      namespaced: true, shortNames: [], custom: false, returnDeletedObject: false, statusSubresource: false,
      nameRule: 'subdomain', fields: {}, decode: decodeLease, validate: leaseErrors,
    },
    {
      // Status is the disruption controller's (disruption.ts), kept current by the server.
      group: 'policy', version: 'v1', plural: 'poddisruptionbudgets', singular: 'poddisruptionbudget', kind: 'PodDisruptionBudget',
      namespaced: true, shortNames: ['pdb'], custom: false, returnDeletedObject: false, statusSubresource: true, generation: true,
      nameRule: 'subdomain', fields: {}, decode: decodePdb, validate: pdbErrors,
    },
    admission('validatingadmissionpolicies', 'validatingadmissionpolicy', 'ValidatingAdmissionPolicy'),
    admission('validatingadmissionpolicybindings', 'validatingadmissionpolicybinding', 'ValidatingAdmissionPolicyBinding'),
  ];
}

/** Builds the `fail` callback the decoders use: a 400 worded like the typed decoder's error. */
export function decodeFailer(kind: string, apiVersion: string) {
  return (path: string, want: string): never => {
    throw badRequest(`${kind} in version "${apiVersion}" cannot be handled as a ${kind}: json: cannot unmarshal value into Go struct field ${path} of type ${want}`);
  };
}
