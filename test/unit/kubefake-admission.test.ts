/**
 * The node-scoped claim write path (deploy/25-claims-admission.yaml), evaluated by the fake API
 * server's ValidatingAdmissionPolicy engine with real CEL, against the real claim code of the
 * node agent (src/ipam/claims.ts) authenticating with node-bound service account tokens over https.
 * Then the engine's own semantics, each against a small policy made for the case.
 */
import * as fs from 'node:fs';
import https from 'node:https';
import * as path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { serviceAccountUser, startFakeKube, type FakeKube, type KubeObject } from '../fakes/kube-apiserver';
import { ClusterObjects, IPCLAIMS, loadKubeConfig, makeKubeClients } from '../../src/kube/client';
import { claimIp, claimName, releaseAttachment, type ClaimDeps, type ClaimRequest, type IPClaim } from '../../src/ipam/claims';
import { podUidGetter } from '../../src/kube/pods';
import { UnderlayError } from '../../src/errors';

const POLICY = 'sriov-underlay-claims-node-scoped';
const SA = ['sriov-underlay', 'sriov-underlay-node'] as const;
const TOKENS = { a: 'token-node-a', b: 'token-node-b', unbound: 'token-no-node', other: 'token-other-sa' };
let kube: FakeKube;

function agentDeps(token: string, who: string): ClaimDeps {
  const clients = makeKubeClients(loadKubeConfig({ kubeconfig: kube.kubeconfigFor(token, who) }));
  return { claims: new ClusterObjects<IPClaim>(clients.custom, IPCLAIMS), podUid: podUidGetter(clients.core) };
}

function req(node: string, ip: string, over: Partial<ClaimRequest> = {}): ClaimRequest {
  return {
    network: 'vlan100', ip, kind: 'fixed', pod: { namespace: 'db', name: `pod-${ip}`, uid: `uid-${ip}` }, node,
    containerID: `ctr-${ip}`, interface: 'net1', source: { namespace: 'db', configMap: 'db-net', key: `pod-${ip}`, resourceVersion: '1' }, ...over,
  };
}

async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof UnderlayError) return e.message;
    throw e;
  }
  throw new Error('expected the API server to refuse');
}

/** A raw https request with a bearer token, verified against the fake's own CA. */
function call(method: string, p: string, token: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown>; warning?: string | string[] }> {
  const u = new URL(p, kube.url);
  return new Promise((resolve, reject) => {
    const r = https.request(u, { method, ca: kube.server.caPem, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text || '{}') as Record<string, unknown>, warning: res.headers.warning }));
    });
    r.on('error', reject);
    r.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const manifest = (): KubeObject[] => parseAllDocuments(fs.readFileSync(path.resolve(__dirname, '../../deploy/25-claims-admission.yaml'), 'utf8'))
  .map((d) => d.toJS() as KubeObject);

beforeAll(async () => {
  kube = await startFakeKube({
    tls: true,
    namespaces: ['default', 'db', 'sriov-underlay'],
    users: {
      [TOKENS.a]: serviceAccountUser(...SA, 'node-a', 'agent-a'),
      [TOKENS.b]: serviceAccountUser(...SA, 'node-b', 'agent-b'),
      [TOKENS.unbound]: serviceAccountUser(...SA),
      [TOKENS.other]: serviceAccountUser('default', 'someone', 'node-a'),
    },
  });
  for (const o of manifest()) kube.server.put(o);
});
afterAll(async () => kube?.close());
beforeEach(() => {
  for (const c of kube.server.store.list(kube.server.resource('ipclaims'))) kube.server.remove('ipclaims', undefined, c.metadata.name!);
  for (const n of ['node-a', 'node-b']) kube.server.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: n } });
});

describe('node-scoped claim writes (deploy/25-claims-admission.yaml)', () => {
  it("lets each node's agent claim and release its own addresses", async () => {
    const a = agentDeps(TOKENS.a, 'a');
    const b = agentDeps(TOKENS.b, 'b');
    await claimIp(a, req('node-a', '10.100.0.11'));
    await claimIp(b, req('node-b', '10.100.0.12'));
    expect(await releaseAttachment(a, { containerID: 'ctr-10.100.0.11', interface: 'net1', node: 'node-a', uid: 'uid-10.100.0.11' })).toEqual([claimName('vlan100', '10.100.0.11')]);
    expect(kube.server.get('ipclaims', undefined, claimName('vlan100', '10.100.0.12'))).toBeDefined();
  });

  it("refuses one node's agent on another node's claim, with the policy's message, and changes nothing", async () => {
    await claimIp(agentDeps(TOKENS.b, 'b'), req('node-b', '10.100.0.12'));
    const name = claimName('vlan100', '10.100.0.12');
    const before = kube.server.get('ipclaims', undefined, name)!;
    const a = agentDeps(TOKENS.a, 'a');
    // DEL of b's container, as a hostile agent on node-a would send it (the agent's own code only
    // releases notes of its own node; a hostile one names node-b)
    const msg = await failure(releaseAttachment(a, { containerID: 'ctr-10.100.0.12', interface: 'net1', node: 'node-b', uid: 'uid-10.100.0.12' }));
    expect(msg).toContain(`ValidatingAdmissionPolicy '${POLICY}' with binding '${POLICY}' denied request: node node-a may not change IPClaim ${name} of node node-b`);
    expect(msg).toContain('403');
    // writing a claim that names node-b
    const msg2 = await failure(claimIp(a, req('node-b', '10.100.0.13')));
    expect(msg2).toContain(`node node-a may not write IPClaim ${claimName('vlan100', '10.100.0.13')} naming another node (node-b)`);
    // a raw rewrite of b's claim to take it over
    const takeover = await call('PUT', `/apis/sriov-underlay.io/v1alpha1/ipclaims/${name}`, TOKENS.a, {
      ...before, metadata: { ...before.metadata, labels: { ...before.metadata.labels, 'sriov-underlay.io/node': 'node-a' } }, spec: { ...(before.spec as object), node: 'node-a' },
    });
    expect(takeover.status).toBe(403);
    expect(takeover.json.reason).toBe('Forbidden');
    expect(takeover.json.message).toBe(`ipclaims.sriov-underlay.io "${name}" is forbidden: ValidatingAdmissionPolicy '${POLICY}' with binding '${POLICY}' denied request: node node-a may not change IPClaim ${name} of node node-b (only that node, or an operator, may while it exists)`);
    expect(kube.server.get('ipclaims', undefined, name)).toEqual(before);
  });

  it('lets any agent release the claims of a node that no longer exists, but not re-label them to a third node', async () => {
    await claimIp(agentDeps(TOKENS.b, 'b'), req('node-b', '10.100.0.12'));
    kube.server.remove('nodes', undefined, 'node-b');
    const a = agentDeps(TOKENS.a, 'a');
    const c = kube.server.get('ipclaims', undefined, claimName('vlan100', '10.100.0.12'))!;
    const relabel = await call('PUT', `/apis/sriov-underlay.io/v1alpha1/ipclaims/${c.metadata.name}`, TOKENS.a, { ...c, spec: { ...(c.spec as object), node: 'node-c' } });
    expect(relabel.status).toBe(403);
    expect(await releaseAttachment(a, { containerID: 'ctr-10.100.0.12', interface: 'net1', node: 'node-b', uid: 'uid-10.100.0.12' })).toEqual([c.metadata.name]);
  });

  it('lets any agent write unowned claims (reservations waiting for their pod carry no node)', async () => {
    const b = agentDeps(TOKENS.b, 'b');
    const source = { namespace: 'db', configMap: 'db-net', key: 'later', resourceVersion: '1' };
    await claimIp(b, req('', '10.100.0.20', { kind: 'reserved', pod: { namespace: 'db', name: 'later', uid: '' }, source }));
    // the pod comes up on node-a, whose agent takes the reservation
    const got = await claimIp(agentDeps(TOKENS.a, 'a'), req('node-a', '10.100.0.20', { kind: 'reserved', pod: { namespace: 'db', name: 'later', uid: 'uid-later' }, source }));
    expect(got.spec.node).toBe('node-a');
  });

  it('refuses the agent identity with a token not bound to a node; other identities are not matched', async () => {
    const msg = await failure(claimIp(agentDeps(TOKENS.unbound, 'unbound'), req('', '10.100.0.30')));
    expect(msg).toContain('IPClaims may be written by the node agent only with a node-bound service account token');
    await claimIp(agentDeps(TOKENS.a, 'a'), req('node-a', '10.100.0.31'));
    const admin = await call('DELETE', `/apis/sriov-underlay.io/v1alpha1/ipclaims/${claimName('vlan100', '10.100.0.31')}`, kube.server.token!);
    expect(admin.status).toBe(200);
    // another service account is not the agent: the policy does not apply (RBAC would decide)
    const other = await call('POST', '/apis/sriov-underlay.io/v1alpha1/ipclaims', TOKENS.other, { apiVersion: 'sriov-underlay.io/v1alpha1', kind: 'IPClaim', metadata: { name: 'x.1' }, spec: { ip: '1', network: 'x', node: 'node-b' } });
    expect(other.status).toBe(201);
  });
});

describe('ValidatingAdmissionPolicy semantics of the fake', () => {
  const policy = (name: string, spec: Record<string, unknown>): KubeObject => ({
    apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicy', metadata: { name },
    spec: { matchConstraints: { resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['configmaps'] }] }, ...spec },
  });
  const binding = (name: string, spec: Record<string, unknown> = {}): KubeObject => ({
    apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicyBinding', metadata: { name },
    spec: { policyName: name, validationActions: ['Deny'], ...spec },
  });
  const cm = (name: string, data: Record<string, string>, labels?: Record<string, string>) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, ...(labels ? { labels } : {}) }, data });
  const post = (o: unknown, token = kube.server.token!) => call('POST', '/api/v1/namespaces/default/configmaps', token, o);
  const installed: string[] = [];
  const install = (p: KubeObject, b: KubeObject) => {
    kube.server.put(p);
    kube.server.put(b);
    installed.push(p.metadata.name!);
  };
  beforeEach(() => {
    for (const n of installed.splice(0)) {
      kube.server.remove('validatingadmissionpolicybindings', undefined, n);
      kube.server.remove('validatingadmissionpolicies', undefined, n);
    }
  });

  it('denies with message, messageExpression (falling back to message when it fails) and the reason code', async () => {
    install(policy('small', {
      validations: [
        { expression: "!has(object.data) || !('big' in object.data)", message: 'no big key' },
        { expression: 'size(object.data) < 3', messageExpression: "'too many keys: ' + string(size(object.data))", reason: 'RequestEntityTooLarge' },
        { expression: "!('x' in object.data)", message: 'fallback text', messageExpression: 'object.data.nope + 1' },
      ],
    }), binding('small'));
    const big = await post(cm('c1', { big: '1' }));
    expect([big.status, big.json.reason, big.json.message]).toEqual([422, 'Invalid', `configmaps "c1" is forbidden: ValidatingAdmissionPolicy 'small' with binding 'small' denied request: no big key`]);
    const many = await post(cm('c2', { a: '1', b: '2', c: '3' }));
    expect([many.status, many.json.reason]).toEqual([413, 'RequestEntityTooLarge']);
    expect(many.json.message).toContain('too many keys: 3');
    const fallback = await post(cm('c3', { x: '1' }));
    expect(fallback.json.message).toContain('denied request: fallback text');
    expect((await post(cm('c4', { ok: '1' }))).status).toBe(201);
  });

  it('applies failurePolicy to evaluation errors, skips on false matchConditions, and only warns with Warn', async () => {
    install(policy('strict', { failurePolicy: 'Fail', matchConditions: [{ name: 'labelled', expression: "has(object.metadata.labels) && 'check' in object.metadata.labels" }], validations: [{ expression: 'object.data.missing == "1"' }] }), binding('strict'));
    install(policy('lenient', { failurePolicy: 'Ignore', validations: [{ expression: 'object.data.missing == "1"' }] }), binding('lenient'));
    install(policy('warned', { validations: [{ expression: "!('w' in object.data)", message: 'w is discouraged' }] }), binding('warned', { validationActions: ['Warn'] }));
    const failed = await post(cm('e1', { a: '1' }, { check: 'yes' }));
    expect(failed.status).toBe(422);
    expect(failed.json.message).toContain("ValidatingAdmissionPolicy 'strict' with binding 'strict' denied request: expression 'object.data.missing == \"1\"' resulted in error");
    expect((await post(cm('e2', { a: '1' }))).status).toBe(201); // matchCondition false: strict skipped; lenient ignores its error
    const warned = await post(cm('e3', { w: '1' }));
    expect(warned.status).toBe(201);
    expect(String(warned.warning)).toContain("Validation failed for ValidatingAdmissionPolicy 'warned' with binding 'warned': w is discouraged");
  });

  it('evaluates every param a selector finds, and parameterNotFoundAction Deny refuses without params', async () => {
    kube.server.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'limit-1', namespace: 'default', labels: { limits: 'yes' } }, data: { max: '2' } });
    kube.server.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'limit-2', namespace: 'default', labels: { limits: 'yes' } }, data: { max: '5' } });
    const spec = { paramKind: { apiVersion: 'v1', kind: 'ConfigMap' }, matchConditions: [{ name: 'not-params', expression: "!has(object.metadata.labels) || !('limits' in object.metadata.labels)" }], validations: [{ expression: 'size(object.data) <= int(params.data.max)', messageExpression: "'at most ' + params.data.max + ' keys (' + params.metadata.name + ')'" }] };
    install(policy('limits', spec), binding('limits', { paramRef: { selector: { matchLabels: { limits: 'yes' } }, parameterNotFoundAction: 'Deny' } }));
    const three = await post(cm('p1', { a: '1', b: '2', c: '3' }));
    expect(three.json.message).toContain('denied request: at most 2 keys (limit-1)');
    expect((await post(cm('p2', { a: '1' }))).status).toBe(201);
    install(policy('nolimits', spec), binding('nolimits', { paramRef: { name: 'absent', parameterNotFoundAction: 'Deny' } }));
    expect((await post(cm('p3', { a: '1' }))).json.message).toContain("ValidatingAdmissionPolicy 'nolimits' with binding 'nolimits' denied request: no params found for policy binding with `Deny` parameterNotFoundAction");
  });

  it('matches the /status subresource only through rules that name it', async () => {
    kube.server.put({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'i' }] } });
    const rules = (resources: string[]) => ({ resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE'], resources }] });
    const deny = { validations: [{ expression: 'false', messageExpression: "'no ' + request.resource.resource + '/' + request.subResource" }] };
    install(policy('main-only', { ...deny, matchConstraints: rules(['pods']) }), binding('main-only'));
    const status = (phase: string) => call('PUT', '/api/v1/namespaces/default/pods/p/status', kube.server.token!, { ...kube.server.get('pods', 'default', 'p'), status: { phase } });
    expect((await status('Running')).status).toBe(200);
    install(policy('status-too', { ...deny, matchConstraints: rules(['pods/status']) }), binding('status-too'));
    const refused = await status('Succeeded');
    expect(refused.json.message).toContain('denied request: no pods/status');
  });

  it('refuses a policy whose CEL does not compile, and a binding with an unknown action', async () => {
    const bad = await call('POST', '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies', kube.server.token!, policy('broken', { validations: [{ expression: 'object.data +' }] }));
    expect(bad.status).toBe(422);
    expect((bad.json.details as { causes: { field: string }[] }).causes[0]!.field).toBe('spec.validations[0].expression');
    expect(bad.json.message).toContain('compilation failed');
    const badBinding = await call('POST', '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings', kube.server.token!, binding('b', { validationActions: ['Block'] }));
    expect(badBinding.status).toBe(422);
  });
});
