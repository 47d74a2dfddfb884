// One OpenAPI v3 schema per kind the fake serves: the same schema is published under /openapi/v3
// (kubectl's field validation check, `kubectl explain`) and checked on writes (fieldValidation=Strict
// unknown fields → 400; custom resources' structural schema → 422). The CRDs' schemas come from
// deploy/10-crds.yaml, so the fake and a real cluster read the same definitions. Built-in kinds
// the project only reads (Pod, Node, StatefulSet, Event) declare their top level only: their spec
// and status are open objects here, checked by the hand-written rules in resources.ts.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { type FieldError, isRecord } from './types';

export interface Schema {
  type?: string;
  description?: string;
  format?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  minLength?: number;
  $ref?: string;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-group-version-kind'?: { group: string; version: string; kind: string }[];
  [k: string]: unknown;
}

export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface CrdVersion {
  group: string;
  version: string;
  kind: string;
  plural: string;
  schema: Schema;
  columns: PrinterColumn[];
}

const s = (type: string, description?: string, more: Partial<Schema> = {}): Schema => ({ type, ...(description ? { description } : {}), ...more });
const str = (d?: string) => s('string', d);
const strMap = (d: string) => s('object', d, { additionalProperties: str() });
const strList = (d: string) => s('array', d, { items: str() });
const open = (d: string) => s('object', d, { 'x-kubernetes-preserve-unknown-fields': true });
const ref = (name: string, description?: string): Schema => ({ $ref: `#/components/schemas/${name}`, ...(description ? { description } : {}) });

export const META = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';
const LABEL_SELECTOR = 'io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector';

/** Schemas every document refers to, keyed by their names in kube's OpenAPI. */
export const SHARED: Record<string, Schema> = {
  [META]: s('object', 'Standard object metadata.', {
    properties: {
      name: str('Name must be unique within a namespace.'),
      generateName: str('Optional prefix the server uses to generate a unique name.'),
      namespace: str('The namespace of a namespaced object.'),
      uid: str('Unique in time and space; set by the server.'),
      resourceVersion: str('Opaque revision; set by the server.'),
      generation: s('integer', 'A sequence number of changes to the desired state.', { format: 'int64' }),
      creationTimestamp: str('Set by the server at creation.'),
      deletionTimestamp: str('Set by the server when a graceful deletion begins.'),
      deletionGracePeriodSeconds: s('integer', 'Seconds allowed for graceful termination.', { format: 'int64' }),
      labels: strMap('Map of string keys and values to organize and select objects.'),
      annotations: strMap('Unstructured key value map stored with the object.'),
      finalizers: strList('Must be empty before the object is deleted from the registry.'),
      ownerReferences: s('array', 'Objects this object depends on.', { items: open('OwnerReference') }),
      managedFields: s('array', 'Field ownership (not maintained by the fake).', { items: open('ManagedFieldsEntry') }),
    },
  }),
  [LABEL_SELECTOR]: s('object', 'A label query over a set of resources.', {
    properties: {
      matchLabels: strMap('{key,value} pairs'),
      matchExpressions: s('array', 'Label selector requirements, ANDed.', {
        items: s('object', '', { required: ['key', 'operator'], properties: { key: str(), operator: str(), values: strList('') } }),
      }),
    },
  }),
};

const top = (group: string, version: string, kind: string, description: string, props: Record<string, Schema>, required: string[] = []): Schema => ({
  type: 'object', description, ...(required.length ? { required } : {}),
  properties: {
    apiVersion: str('APIVersion defines the versioned schema of this representation of an object.'),
    kind: str('Kind is a string value representing the REST resource this object represents.'),
    metadata: ref(META, "Standard object's metadata."),
    ...props,
  },
  'x-kubernetes-group-version-kind': [{ group, version, kind }],
});

const RULE_WITH_OPERATIONS = s('object', 'Operations and resources a rule matches.', {
  properties: {
    apiGroups: strList('API groups; "*" is all.'), apiVersions: strList('API versions; "*" is all.'),
    operations: strList('CREATE, UPDATE, DELETE, CONNECT or "*".'), resources: strList('Resources; "*" is all.'),
    resourceNames: strList('Names; empty is all.'), scope: str('"Cluster", "Namespaced" or "*".'),
  },
});

const MATCH_RESOURCES = s('object', 'Which requests are matched, by namespace, object and rules.', {
  properties: {
    namespaceSelector: ref(LABEL_SELECTOR), objectSelector: ref(LABEL_SELECTOR),
    resourceRules: s('array', '', { items: RULE_WITH_OPERATIONS }), excludeResourceRules: s('array', '', { items: RULE_WITH_OPERATIONS }),
    matchPolicy: str('"Exact" or "Equivalent".'),
  },
});

const NAMED_EXPRESSION = (d: string) => s('array', d, { items: s('object', '', { required: ['name', 'expression'], properties: { name: str(), expression: str('CEL') } }) });

/** Built-in kinds by group/version/kind. */
export const BUILTIN: Record<string, Schema> = {
  'v1/ConfigMap': top('', 'v1', 'ConfigMap', 'ConfigMap holds configuration data for pods to consume.', {
    data: strMap('Configuration data (UTF-8).'),
    binaryData: s('object', 'Binary data, base64.', { additionalProperties: s('string', '', { format: 'byte' }) }),
    immutable: s('boolean', 'If true, data cannot be changed.'),
  }),
  'v1/Namespace': top('', 'v1', 'Namespace', 'Namespace provides a scope for Names.', {
    spec: s('object', 'Spec of the namespace.', { properties: { finalizers: strList('Finalizers') } }),
    status: s('object', 'Status of the namespace.', { properties: { phase: str('Active or Terminating'), conditions: s('array', '', { items: open('NamespaceCondition') }) } }),
  }),
  'v1/Pod': top('', 'v1', 'Pod', 'Pod is a collection of containers.', { spec: open('PodSpec (not declared by the fake)'), status: open('PodStatus (not declared by the fake)') }),
  'v1/Node': top('', 'v1', 'Node', 'Node is a worker node.', { spec: open('NodeSpec (not declared by the fake)'), status: open('NodeStatus (not declared by the fake)') }),
  'apps/v1/StatefulSet': top('apps', 'v1', 'StatefulSet', 'StatefulSet represents a set of pods with consistent identities.', {
    spec: open('StatefulSetSpec (not declared by the fake)'), status: open('StatefulSetStatus (not declared by the fake)'),
  }),
  'coordination.k8s.io/v1/Lease': top('coordination.k8s.io', 'v1', 'Lease', 'Lease defines a lease concept.', { spec: open('LeaseSpec (checked by disruption.ts)') }),
  'policy/v1/PodDisruptionBudget': top('policy', 'v1', 'PodDisruptionBudget', 'PodDisruptionBudget is an object to define the max disruption that can be caused to a collection of pods', {
    spec: open('PodDisruptionBudgetSpec (checked by disruption.ts)'), status: open('PodDisruptionBudgetStatus (the disruption controller\'s)'),
  }),
  'v1/Event': {
    ...top('', 'v1', 'Event', 'Event is a report of an event somewhere in the cluster.', {}),
    'x-kubernetes-preserve-unknown-fields': true,
  },
  'events.k8s.io/v1/Event': {
    ...top('events.k8s.io', 'v1', 'Event', 'Event is a report of an event somewhere in the cluster.', {}),
    'x-kubernetes-preserve-unknown-fields': true,
  },
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy': top('admissionregistration.k8s.io', 'v1', 'ValidatingAdmissionPolicy',
    'Describes an admission validation policy written in CEL.', {
      spec: s('object', 'The desired behavior of the policy.', {
        properties: {
          paramKind: s('object', 'The kind of the params objects.', { properties: { apiVersion: str(), kind: str() } }),
          matchConstraints: MATCH_RESOURCES,
          validations: s('array', 'CEL expressions that must all be true.', {
            items: s('object', '', {
              required: ['expression'],
              properties: { expression: str('CEL; true admits.'), message: str(), messageExpression: str('CEL building the message.'), reason: str('Unauthorized, Forbidden, Invalid or RequestEntityTooLarge') },
            }),
          }),
          failurePolicy: str('"Fail" or "Ignore": what an evaluation error does.'),
          auditAnnotations: s('array', '', { items: s('object', '', { required: ['key', 'valueExpression'], properties: { key: str(), valueExpression: str() } }) }),
          matchConditions: NAMED_EXPRESSION('CEL conditions a request must meet to be validated.'),
          variables: NAMED_EXPRESSION('Named CEL expressions usable as variables.<name>.'),
        },
      }),
      status: open('Status of the policy (type checking results).'),
    }),
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding': top('admissionregistration.k8s.io', 'v1', 'ValidatingAdmissionPolicyBinding',
    'Binds a ValidatingAdmissionPolicy to resources and params.', {
      spec: s('object', 'The desired behavior of the binding.', {
        properties: {
          policyName: str('The bound policy.'),
          paramRef: s('object', 'Where the params objects are.', {
            properties: { name: str(), namespace: str(), selector: ref(LABEL_SELECTOR), parameterNotFoundAction: str('"Allow" or "Deny"') },
          }),
          matchResources: MATCH_RESOURCES,
          validationActions: strList('Deny, Warn and/or Audit.'),
        },
      }),
    }),
};

/**
 * Where deploy/10-crds.yaml is: the nearest deploy/ above this file (vitest), above the entry script
 * (run.mjs's temporary bundle), or above the working directory (benchmarks bundled into dist/.bench).
 */
function crdManifest(): string {
  const tried: string[] = [];
  for (const start of [__dirname, process.argv[1] ? dirname(process.argv[1]) : '', process.cwd()]) {
    for (let dir = start; dir; dir = dirname(dir)) {
      const p = join(dir, 'deploy', '10-crds.yaml');
      if (existsSync(p)) return p;
      tried.push(p);
      if (dirname(dir) === dir) break;
    }
  }
  throw new Error(`fake apiserver: deploy/10-crds.yaml not found (looked at ${tried.join(', ')})`);
}

/** The served versions of the CRDs in deploy/10-crds.yaml. */
export function loadCrds(path = crdManifest()): CrdVersion[] {
  const out: CrdVersion[] = [];
  for (const doc of parseAllDocuments(readFileSync(path, 'utf8'))) {
    const crd = doc.toJS() as { spec: { group: string; names: { plural: string; kind: string }; versions: { name: string; served: boolean; schema: { openAPIV3Schema: Schema }; additionalPrinterColumns?: PrinterColumn[] }[] } };
    for (const v of crd.spec.versions.filter((x) => x.served)) {
      const root = v.schema.openAPIV3Schema;
      out.push({
        group: crd.spec.group, version: v.name, kind: crd.spec.names.kind, plural: crd.spec.names.plural,
        // The server adds apiVersion, kind and metadata to every CRD schema it publishes.
        schema: { ...top(crd.spec.group, v.name, crd.spec.names.kind, String(root.description ?? ''), root.properties ?? {}, root.required ?? []), ...(root['x-kubernetes-preserve-unknown-fields'] ? { 'x-kubernetes-preserve-unknown-fields': true } : {}) },
        columns: v.additionalPrinterColumns ?? [],
      });
    }
  }
  return out;
}

// ---- checking objects against a schema --------------------------------------------------------

const resolve = (sch: Schema): Schema => (sch.$ref ? (SHARED[sch.$ref.slice('#/components/schemas/'.length)] ?? {}) : sch);
const typeOf = (v: unknown) => (Array.isArray(v) ? 'array' : typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v);

/** Fields the schema does not declare, as kube's strict decoder names them ("spec.foo", "data"). */
export function unknownFields(schema: Schema, v: unknown, at = ''): string[] {
  const sch = resolve(schema);
  if (sch['x-kubernetes-preserve-unknown-fields']) return [];
  const path = (k: string) => (at ? `${at}.${k}` : k);
  if (Array.isArray(v) && sch.items) return v.flatMap((x, i) => unknownFields(sch.items!, x, `${at}[${i}]`));
  if (!isRecord(v)) return [];
  if (sch.additionalProperties) return Object.entries(v).flatMap(([k, x]) => unknownFields(sch.additionalProperties!, x, path(k)));
  if (!sch.properties) return [];
  return Object.entries(v).flatMap(([k, x]) => (sch.properties![k] ? unknownFields(sch.properties![k]!, x, path(k)) : [path(k)]));
}

/** Structural-schema violations (type, required, enum) as kube's CRD validation reports them. */
export function schemaErrors(schema: Schema, v: unknown, at = ''): FieldError[] {
  const sch = resolve(schema);
  if (v === undefined || v === null) return [];
  const t = typeOf(v);
  if (sch.type && sch.type !== t && !(sch.type === 'number' && t === 'integer')) {
    return [{ reason: 'FieldValueInvalid', field: at, message: `Invalid value: "${t}": ${at} in body must be of type ${sch.type}: "${t}"` }];
  }
  const out: FieldError[] = [];
  if (sch.enum && !sch.enum.includes(v)) {
    out.push({ reason: 'FieldValueNotSupported', field: at, message: `Unsupported value: ${JSON.stringify(v)}: supported values: ${sch.enum.map((e) => JSON.stringify(e)).join(', ')}` });
  }
  if (typeof v === 'string' && sch.minLength !== undefined && [...v].length < sch.minLength) {
    out.push({ reason: 'FieldValueInvalid', field: at, message: `Invalid value: ${JSON.stringify(v)}: ${at} in body should be at least ${sch.minLength} chars long` });
  }
  const path = (k: string) => (at ? `${at}.${k}` : k);
  if (Array.isArray(v) && sch.items) v.forEach((x, i) => out.push(...schemaErrors(sch.items!, x, `${at}[${i}]`)));
  if (isRecord(v)) {
    for (const r of sch.required ?? []) if (v[r] === undefined) out.push({ reason: 'FieldValueRequired', field: path(r), message: 'Required value' });
    for (const [k, x] of Object.entries(v)) {
      const sub = sch.properties?.[k] ?? sch.additionalProperties;
      if (sub) out.push(...schemaErrors(sub, x, path(k)));
    }
  }
  return out;
}
