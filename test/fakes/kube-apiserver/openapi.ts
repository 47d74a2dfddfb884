// OpenAPI v3 as kube-apiserver publishes it: /openapi/v3 lists one document per group/version,
// each with the paths of its resources (kubectl reads the PATCH operation's parameters to learn
// that the server does field validation) and the schemas of its kinds (`kubectl explain`).
import { createHash } from 'node:crypto';
import type http from 'node:http';
import { notFoundPath, send } from './http';
import type { ResourceDef } from './resources';
import { SHARED, type Schema } from './schemas';

/** The schema name of a kind in kube's documents: io.k8s.api.core.v1.ConfigMap, io.sriov-underlay.v1alpha1.IPClaim. */
export function schemaName(r: ResourceDef): string {
  if (r.custom) return `${r.group.split('.').reverse().join('.')}.${r.version}.${r.kind}`;
  const g = r.group === '' ? 'core' : r.group.replace(/\.k8s\.io$/, '').replace(/\./g, '');
  return `io.k8s.api.${g}.${r.version}.${r.kind}`;
}

const gvDoc = (r: ResourceDef) => (r.group ? `apis/${r.group}/${r.version}` : `api/${r.version}`);

const QUERY = (name: string, description: string) => ({ name, in: 'query', description, schema: { type: 'string', uniqueItems: true } });
const WRITE_PARAMS = [
  QUERY('dryRun', 'When present, modifications are not persisted.'),
  QUERY('fieldManager', 'Name of the actor making the change.'),
  QUERY('fieldValidation', 'Ignore, Warn (default) or Strict: what the server does with unknown or duplicate fields.'),
];

function paths(r: ResourceDef): Record<string, unknown> {
  const gvk = { 'x-kubernetes-group-version-kind': { group: r.group, version: r.version, kind: r.kind } };
  const body = { content: { 'application/json': { schema: { $ref: `#/components/schemas/${schemaName(r)}` } } } };
  const ok = { 200: { description: 'OK', ...body } };
  const base = `/${gvDoc(r)}${r.namespaced ? '/namespaces/{namespace}' : ''}/${r.plural}`;
  const op = (action: string, more: Record<string, unknown> = {}) => ({ ...gvk, 'x-kubernetes-action': action, responses: ok, ...more });
  return {
    [base]: { get: op('list'), post: op('post', { parameters: WRITE_PARAMS, requestBody: body }), delete: op('deletecollection') },
    [`${base}/{name}`]: {
      get: op('get'),
      put: op('put', { parameters: WRITE_PARAMS, requestBody: body }),
      patch: op('patch', { parameters: WRITE_PARAMS, requestBody: { content: { 'application/merge-patch+json': { schema: { type: 'object' } } } } }),
      delete: op('delete'),
    },
  };
}

function document(resources: ResourceDef[], schemaOf: (r: ResourceDef) => Schema): Record<string, unknown> {
  const schemas: Record<string, Schema> = { ...SHARED };
  const ps: Record<string, unknown> = {};
  for (const r of resources) {
    schemas[schemaName(r)] = schemaOf(r);
    Object.assign(ps, paths(r));
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes', version: 'v1.31.0' }, paths: ps, components: { schemas } };
}

/** Answers /openapi/v3 and /openapi/v3/<api/v1 | apis/group/version>. */
export function serveOpenApi(resources: ResourceDef[], schemaOf: (r: ResourceDef) => Schema, path: string, res: http.ServerResponse): void {
  const docs = new Map<string, ResourceDef[]>();
  for (const r of resources) docs.set(gvDoc(r), [...(docs.get(gvDoc(r)) ?? []), r]);
  const p = path.replace(/\/+$/, '');
  if (p === '/openapi/v3') {
    const index: Record<string, { serverRelativeURL: string }> = {};
    for (const [gv, rs] of docs) {
      const hash = createHash('sha512').update(JSON.stringify(document(rs, schemaOf))).digest('hex').toUpperCase();
      index[gv] = { serverRelativeURL: `/openapi/v3/${gv}?hash=${hash}` };
    }
    return send(res, 200, { paths: index });
  }
  const rs = docs.get(p.slice('/openapi/v3/'.length));
  if (!p.startsWith('/openapi/v3/') || !rs) throw notFoundPath();
  send(res, 200, document(rs, schemaOf));
}
