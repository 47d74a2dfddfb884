/**
 * The fake API server's faces for real clients, over https with raw requests: authentication,
 * the OpenAPI v3 documents, fieldValidation modes, Tables, and the size limits at their
 * boundaries (kubefake-kubectl.test.ts drives the same through kubectl).
 */
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeKube, type FakeKube } from '../fakes/kube-apiserver';
import { loadKubeConfig, makeKubeClients } from '../../src/kube/client';

let kube: FakeKube;
beforeAll(async () => {
  kube = await startFakeKube({ tls: true });
});
afterAll(async () => kube?.close());

interface Reply { status: number; json: Record<string, unknown>; headers: Record<string, unknown> }

function call(method: string, p: string, opts: { token?: string | null; body?: unknown; accept?: string; type?: string } = {}): Promise<Reply> {
  const token = opts.token === undefined ? kube.server.token : opts.token;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': opts.type ?? 'application/json', ...(opts.accept ? { accept: opts.accept } : {}) };
    if (token) headers.authorization = `Bearer ${token}`;
    const r = https.request(new URL(p, kube.url), { method, ca: kube.server.caPem, headers }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text || '{}') as Record<string, unknown>, headers: res.headers }));
    });
    r.on('error', reject);
    r.end(opts.body === undefined ? undefined : JSON.stringify(opts.body));
  });
}

const CM = '/api/v1/namespaces/default/configmaps';
const clients = () => makeKubeClients(loadKubeConfig({ kubeconfig: kube.kubeconfigPath }));
const CLAIMS = '/apis/sriov-underlay.io/v1alpha1/ipclaims';

describe('fake API server over https', () => {
  it('refuses a missing or unknown bearer token with 401, and a client that does not trust its CA', async () => {
    expect((await call('GET', CM, { token: null })).status).toBe(401);
    expect((await call('GET', CM, { token: 'guess' })).json.reason).toBe('Unauthorized');
    await expect(new Promise((resolve, reject) => https.get(new URL(CM, kube.url), resolve).on('error', reject))).rejects.toThrow(/self-signed|unable to verify|unknown authority/i);
  });

  it('publishes OpenAPI v3: an index, and per group/version the paths with fieldValidation and the kinds with their GVK', async () => {
    const index = (await call('GET', '/openapi/v3')).json.paths as Record<string, { serverRelativeURL: string }>;
    expect(Object.keys(index).sort()).toEqual(['api/v1', 'apis/admissionregistration.k8s.io/v1', 'apis/apps/v1', 'apis/coordination.k8s.io/v1', 'apis/events.k8s.io/v1', 'apis/policy/v1', 'apis/sriov-underlay.io/v1alpha1']);
    const doc = (await call('GET', index['apis/sriov-underlay.io/v1alpha1']!.serverRelativeURL)).json as {
      paths: Record<string, { patch?: { parameters: { name: string }[] } }>;
      components: { schemas: Record<string, { 'x-kubernetes-group-version-kind': unknown[]; properties: Record<string, { properties?: Record<string, unknown>; required?: string[] }> }> };
    };
    expect(doc.paths['/apis/sriov-underlay.io/v1alpha1/ipclaims/{name}']!.patch!.parameters.map((p) => p.name)).toContain('fieldValidation');
    const claim = doc.components.schemas['io.sriov-underlay.v1alpha1.IPClaim']!;
    expect(claim['x-kubernetes-group-version-kind']).toEqual([{ group: 'sriov-underlay.io', version: 'v1alpha1', kind: 'IPClaim' }]);
    expect(claim.properties.spec!.required).toEqual(['ip', 'network']);
    expect((await call('GET', '/openapi/v3/apis/nothing/v1')).status).toBe(404);
  });

  it('applies fieldValidation: Strict → 400 naming the field, Warn → a Warning header, Ignore → nothing, anything else → 400', async () => {
    const body = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, colour: 'red' }, data: {} });
    const strict = await call('POST', `${CM}?fieldValidation=Strict`, { body: body('s') });
    expect([strict.status, strict.json.message]).toEqual([400, 'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "metadata.colour"']);
    const warn = await call('POST', CM, { body: body('w') });
    expect([warn.status, warn.headers.warning]).toEqual([201, '299 - "unknown field \\"metadata.colour\\""']);
    const ignore = await call('POST', `${CM}?fieldValidation=Ignore`, { body: body('i') });
    expect([ignore.status, ignore.headers.warning]).toEqual([201, undefined]);
    expect((await call('POST', `${CM}?fieldValidation=Loose`, { body: body('l') })).status).toBe(400);
  });

  it('caps warnings at 4 KiB as kube does, so 5,000 unknown fields do not break a client on its header limit', async () => {
    const many = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`field${i}`, i]));
    const created = await clients().core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'noisy' }, data: {}, ...many } as object });
    expect(created.metadata?.name).toBe('noisy');
    const raw = await call('POST', CM, { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'noisy2' }, ...many } });
    const header = String(raw.headers.warning); // node joins repeated headers with ", "
    expect(header.split('299 - ').length - 1).toBeGreaterThan(100);
    expect(header.length).toBeLessThan(8 * 1024);
  });

  it('answers Tables for get and list when asked, with the CRD columns and includeObject', async () => {
    await call('POST', CLAIMS, { body: { apiVersion: 'sriov-underlay.io/v1alpha1', kind: 'IPClaim', metadata: { name: 'n.10.0.0.1' }, spec: { ip: '10.0.0.1', network: 'n', node: 'w1' } } });
    const accept = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json';
    const t = (await call('GET', `${CLAIMS}?includeObject=None`, { accept })).json as { kind: string; columnDefinitions: { name: string }[]; rows: { cells: unknown[]; object?: unknown }[] };
    expect(t.kind).toBe('Table');
    expect(t.columnDefinitions.map((c) => c.name)).toEqual(['Name', 'IP', 'Network', 'Pod', 'Namespace', 'Node', 'Age']);
    expect(t.rows[0]!.cells.slice(0, 6)).toEqual(['n.10.0.0.1', '10.0.0.1', 'n', null, null, 'w1']);
    expect(t.rows[0]!.object).toBeUndefined();
    const one = (await call('GET', `${CLAIMS}/n.10.0.0.1`, { accept })).json as { rows: { object: { kind: string } }[] };
    expect(one.rows[0]!.object.kind).toBe('PartialObjectMetadata');
    expect((await call('GET', CLAIMS)).json.kind).toBe('IPClaimList');
  });

  it('enforces the annotations and storage limits at their boundaries', async () => {
    const annotated = (name: string, n: number) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, annotations: { k: 'x'.repeat(n - 1) } } });
    const over = await call('POST', CM, { body: annotated('a1', 256 * 1024 + 1) });
    expect([over.status, over.json.message]).toEqual([422, 'ConfigMap "a1" is invalid: metadata.annotations: Too long: must have at most 262144 bytes']);
    expect((await call('POST', CM, { body: annotated('a2', 256 * 1024) })).status).toBe(201);
    const claim = (name: string, n: number) => ({ apiVersion: 'sriov-underlay.io/v1alpha1', kind: 'IPClaim', metadata: { name }, spec: { ip: '1', network: 'n', settings: { blob: 'x'.repeat(n) } } });
    const big = await call('POST', CLAIMS, { body: claim('big', 1536 * 1024) });
    expect(big.status).toBe(500);
    expect(big.json).toEqual({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'etcdserver: request is too large', code: 500 });
    expect((await call('POST', CLAIMS, { body: claim('fits', 1500 * 1024) })).status).toBe(201);
    // growing a stored object past the limit fails the same way and leaves it as it was
    const grow = await call('PATCH', `${CLAIMS}/fits`, { type: 'application/merge-patch+json', body: { spec: { settings: { more: 'y'.repeat(100 * 1024) } } } });
    expect([grow.status, grow.json.message]).toEqual([500, 'etcdserver: request is too large']);
    expect(Object.keys((kube.server.get('ipclaims', undefined, 'fits')!.spec as { settings: object }).settings)).toEqual(['blob']);
  });
});
