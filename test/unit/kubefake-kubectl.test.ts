/**
 * The fake API server driven by the real kubectl (Debian's or the machine image's), as a
 * subprocess over https with the fake's own CA and a bearer token: apply with validation (valid
 * and invalid objects), printer columns, edit through KUBE_EDITOR, explain, delete, the size limits,
 * and the admission policy manifest of deploy/.
 *
 * kubectl ≥ 1.27 is required: it learns from OpenAPI v3 that the server validates fields and
 * explains from OpenAPI v3. An older client (Debian 12's kubernetes-client is 1.20) asks for
 * /openapi/v2 as protobuf, which the fake does not serve, so with it `apply` needs
 * --validate=false and `explain` fails: this file is skipped then, and says so.
 */
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeKube, type FakeKube } from '../fakes/kube-apiserver';

const KUBECTL = ['/usr/bin/kubectl', '/usr/local/bin/kubectl'].find((p) => fs.existsSync(p));

function clientMinor(): number {
  if (!KUBECTL) return 0;
  const out = require('node:child_process').execFileSync(KUBECTL, ['version', '--client', '-o', 'json'], { encoding: 'utf8' }) as string;
  return Number.parseInt((JSON.parse(out) as { clientVersion: { minor: string } }).clientVersion.minor, 10);
}
const MINOR = clientMinor();
const WHY = !KUBECTL ? 'no kubectl on this machine (apt-get install kubernetes-client gives 1.20, too old: see the header)'
  : MINOR < 27 ? `kubectl 1.${MINOR} validates and explains with OpenAPI v2 protobuf, which the fake does not serve` : '';
if (WHY) console.warn(`kubefake-kubectl: skipped: ${WHY}`);

let kube: FakeKube;
let dir: string;

interface Run { code: number; stdout: string; stderr: string }

function kubectl(args: string[], opts: { input?: string; env?: Record<string, string>; kubeconfig?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(KUBECTL!, [`--cache-dir=${path.join(dir, 'cache')}`, ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, KUBECONFIG: opts.kubeconfig ?? kube.kubeconfigPath, ...opts.env },
      timeout: 20_000,
    }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
    child.stdin!.end(opts.input ?? '');
  });
}

const yaml = (o: unknown) => JSON.stringify(o); // JSON is YAML

describe.skipIf(WHY !== '')('kubectl against the fake API server', () => {
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kubectl-fake-'));
    kube = await startFakeKube({ tls: true, namespaces: ['default', 'sriov-underlay'] });
  });
  afterAll(async () => {
    await kube?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('trusts the server through the kubeconfig CA and sends the token; a wrong token or CA is refused', async () => {
    const kc = fs.readFileSync(kube.kubeconfigPath, 'utf8');
    expect(kc).toContain('certificate-authority-data:');
    expect(kc).not.toContain('insecure-skip-tls-verify');
    expect((await kubectl(['get', 'namespaces', '-o', 'name'])).stdout).toContain('namespace/sriov-underlay');
    const wrongToken = path.join(dir, 'kc-wrong-token');
    fs.writeFileSync(wrongToken, kc.replace(/token: .*/, 'token: not-the-token'));
    const denied = await kubectl(['get', 'configmaps'], { kubeconfig: wrongToken });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/Unauthorized|must be logged in/);
    const otherCa = await startFakeKube({ tls: true });
    try {
      const wrongCa = path.join(dir, 'kc-wrong-ca');
      fs.writeFileSync(wrongCa, kc.replace(/certificate-authority-data: .*/, fs.readFileSync(otherCa.kubeconfigPath, 'utf8').match(/certificate-authority-data: .*/)![0]));
      const untrusted = await kubectl(['get', 'configmaps'], { kubeconfig: wrongCa });
      expect(untrusted.code).not.toBe(0);
      expect(untrusted.stderr).toContain('certificate signed by unknown authority');
    } finally {
      await otherCa.close();
    }
  });

  it('applies a valid ConfigMap with validation on, and rejects unknown fields and wrong types with the field named', async () => {
    const ok = await kubectl(['apply', '-f', '-'], { input: yaml({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'reg' }, data: { 'app-a': 'network: vlan100\n' } }) });
    expect(ok.stderr).toBe('');
    expect(ok.stdout.trim()).toBe('configmap/reg created');
    expect(kube.server.get('configmaps', 'default', 'reg')?.data).toEqual({ 'app-a': 'network: vlan100\n' });

    const unknown = await kubectl(['apply', '-f', '-'], { input: yaml({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'bad' }, datta: { a: 'b' } }) });
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('strict decoding error: unknown field "datta"');
    const claim = (spec: Record<string, unknown>) => yaml({ apiVersion: 'sriov-underlay.io/v1alpha1', kind: 'IPClaim', metadata: { name: 'vlan100.10.0.0.9' }, spec });
    const typo = await kubectl(['apply', '-f', '-'], { input: claim({ ip: '10.0.0.9', network: 'vlan100', nodee: 'n1' }) });
    expect(typo.stderr).toContain('unknown field "spec.nodee"');
    const wrongType = await kubectl(['apply', '-f', '-'], { input: claim({ ip: 9, network: 'vlan100', kind: 'borrowed' }) });
    expect(wrongType.stderr).toContain('spec.ip: Invalid value: "integer": spec.ip in body must be of type string');
    expect(wrongType.stderr).toContain('spec.kind: Unsupported value: "borrowed"');
    expect(kube.server.get('configmaps', 'default', 'bad')).toBeUndefined();
    expect(kube.server.get('ipclaims', undefined, 'vlan100.10.0.0.9')).toBeUndefined();
  });

  it("shows the CRD's printer columns for ipclaims", async () => {
    const claim = { apiVersion: 'sriov-underlay.io/v1alpha1', kind: 'IPClaim', metadata: { name: 'vlan100.10.0.0.7' }, spec: { ip: '10.0.0.7', network: 'vlan100', node: 'worker-3', pod: { namespace: 'bank', name: 'db-0', uid: 'u' } } };
    expect((await kubectl(['apply', '-f', '-'], { input: yaml(claim) })).stdout.trim()).toBe('ipclaim.sriov-underlay.io/vlan100.10.0.0.7 created');
    const got = await kubectl(['get', 'ipclaims']);
    const [head, row] = got.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/));
    expect(head).toEqual(['NAME', 'IP', 'NETWORK', 'POD', 'NAMESPACE', 'NODE', 'AGE']);
    expect(row!.slice(0, 6)).toEqual(['vlan100.10.0.0.7', '10.0.0.7', 'vlan100', 'db-0', 'bank', 'worker-3']);
    expect(row![6]).toMatch(/^\d+s$/);
    expect((await kubectl(['get', 'configmaps', 'reg'])).stdout.split('\n')[0]!.split(/\s+/)).toEqual(['NAME', 'DATA', 'AGE']);
  });

  it('watches ipclaims as Table rows (get -w)', async () => {
    const put = (ip: string, spec: Record<string, unknown>) => kube.server.put({ apiVersion: 'sriov-underlay.io/v1alpha1', kind: 'IPClaim', metadata: { name: `vlan100.${ip}` }, spec: { ip, network: 'vlan100', ...spec } });
    put('10.0.0.5', { pod: { namespace: 'bank', name: 'web-1', uid: 'w' } });
    const child = spawn(KUBECTL!, [`--cache-dir=${path.join(dir, 'cache')}`, 'get', 'ipclaims', '-w', '--output-watch-events'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, KUBECONFIG: kube.kubeconfigPath },
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const waitFor = async (re: RegExp) => {
      for (let i = 0; i < 200 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 50));
      expect(out, out).toMatch(re);
    };
    try {
      await waitFor(/ADDED\s+vlan100\.10\.0\.0\.5\s+10\.0\.0\.5\s+vlan100\s+web-1\s+bank/);
      put('10.0.0.6', { node: 'worker-4' });
      await waitFor(/ADDED\s+vlan100\.10\.0\.0\.6\s+10\.0\.0\.6\s+vlan100\s+worker-4\s+\d+s/);
      kube.server.remove('ipclaims', undefined, 'vlan100.10.0.0.6');
      await waitFor(/DELETED\s+vlan100\.10\.0\.0\.6/);
    } finally {
      child.kill();
      for (const ip of ['10.0.0.5', '10.0.0.6']) kube.server.remove('ipclaims', undefined, `vlan100.${ip}`);
    }
  });

  it('edits a ConfigMap through KUBE_EDITOR', async () => {
    const editor = path.join(dir, 'editor.sh');
    fs.writeFileSync(editor, "#!/bin/sh\nsed -i 's/network: vlan100/network: vlan200/' \"$1\"\n", { mode: 0o755 });
    const edited = await kubectl(['edit', 'configmap', 'reg'], { env: { KUBE_EDITOR: editor } });
    expect(edited.stderr).toBe('');
    expect(edited.stdout.trim()).toBe('configmap/reg edited');
    expect(kube.server.get('configmaps', 'default', 'reg')?.data).toEqual({ 'app-a': 'network: vlan200\n' });
  });

  it('explains ipclaims.spec from the CRD schema', async () => {
    const out = (await kubectl(['explain', 'ipclaims.spec'])).stdout;
    expect(out).toContain('KIND:       IPClaim');
    expect(out).toContain('FIELD: spec <Object>');
    expect(out).toMatch(/ip\s+<string> -required-/);
    expect(out).toMatch(/kind\s+<string>/);
    expect(out).toContain('enum: fixed, pool, reserved');
  });

  it('enforces the 256 KiB annotations limit and the storage size limit with kube’s errors', async () => {
    const big = (n: number) => 'x'.repeat(n);
    const annotated = await kubectl(['create', '-f', '-'], { input: yaml({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'noted', annotations: { a: big(256 * 1024) } } }) });
    expect(annotated.stderr).toContain('metadata.annotations: Too long: must have at most 262144 bytes');
    const justFits = await kubectl(['create', '-f', '-'], { input: yaml({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'noted', annotations: { a: big(256 * 1024 - 1) } } }) });
    expect(justFits.stdout.trim()).toBe('configmap/noted created');
    const huge = { apiVersion: 'sriov-underlay.io/v1alpha1', kind: 'IPClaim', metadata: { name: 'vlan100.10.0.0.8' }, spec: { ip: '10.0.0.8', network: 'vlan100', settings: { blob: big(1600 * 1024) } } };
    const tooBig = await kubectl(['create', '-f', '-'], { input: yaml(huge) });
    expect(tooBig.stderr).toContain('Error from server: error when creating "STDIN": etcdserver: request is too large');
    expect(kube.server.get('ipclaims', undefined, 'vlan100.10.0.0.8')).toBeUndefined();
  });

  it("applies deploy/'s admission policy manifest and deletes what it made", async () => {
    const file = path.resolve(__dirname, '../../deploy/25-claims-admission.yaml');
    const applied = await kubectl(['apply', '-f', file]);
    expect(applied.stderr).toBe('');
    expect(applied.stdout.trim().split('\n')).toEqual([
      'validatingadmissionpolicy.admissionregistration.k8s.io/sriov-underlay-claims-node-scoped created',
      'validatingadmissionpolicybinding.admissionregistration.k8s.io/sriov-underlay-claims-node-scoped created',
    ]);
    expect((await kubectl(['apply', '-f', file])).stdout).toContain('unchanged');
    const deleted = await kubectl(['delete', '-f', file]);
    expect(deleted.stdout).toContain('deleted');
    expect((await kubectl(['delete', 'ipclaim', 'vlan100.10.0.0.7'])).stdout.trim()).toBe('ipclaim.sriov-underlay.io "vlan100.10.0.0.7" deleted');
    expect((await kubectl(['get', 'ipclaims'])).stderr.trim()).toBe('No resources found');
  });
});
