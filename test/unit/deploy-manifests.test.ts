/**
 * The manifests in deploy/ against the Kubernetes API schemas (kubernetes-models ships them, so this
 * works offline), plus our own schemas for what the CNI and the daemon will read from them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { EVICT_LEASE_NAME } from '../../node/policy/lease';
import { netconfSchema } from '../../src/schemas/netconf';
import { describeIssues } from '../../src/schemas/format';

const DEPLOY = path.resolve(__dirname, '../../deploy');

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [k: string]: unknown;
}

function manifests(): Array<{ file: string; obj: Obj }> {
  const out: Array<{ file: string; obj: Obj }> = [];
  for (const file of fs.readdirSync(DEPLOY).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(fs.readFileSync(path.join(DEPLOY, file), 'utf8'))) {
      if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0]?.message}`);
      const obj = doc.toJS() as Obj | null;
      if (obj) out.push({ file, obj });
    }
  }
  return out;
}

/** apiVersion → the kubernetes-models module that validates it. */
const MODULES: Record<string, string> = {
  v1: 'kubernetes-models/v1',
  'apps/v1': 'kubernetes-models/apps/v1',
  'rbac.authorization.k8s.io/v1': 'kubernetes-models/rbac.authorization.k8s.io/v1',
  'apiextensions.k8s.io/v1': 'kubernetes-models/apiextensions.k8s.io/v1',
  'admissionregistration.k8s.io/v1': 'kubernetes-models/admissionregistration.k8s.io/v1',
};

describe('deploy/ manifests', () => {
  const all = manifests();

  it('every built-in object validates against the Kubernetes schema', async () => {
    let checked = 0;
    for (const { file, obj } of all) {
      const mod = MODULES[obj.apiVersion];
      if (!mod) continue;
      const models = (await import(mod)) as Record<string, new (o: unknown) => { validate(): void }>;
      const Model = models[obj.kind];
      expect(Model, `${file}: no model for ${obj.apiVersion} ${obj.kind}`).toBeDefined();
      expect(() => new (Model as new (o: unknown) => { validate(): void })(obj).validate(), `${file}: ${obj.kind}/${obj.metadata.name}`).not.toThrow();
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(14);
  });

  it('a schema violation is caught (the check can fail)', async () => {
    const { DaemonSet } = (await import('kubernetes-models/apps/v1')) as unknown as { DaemonSet: new (o: unknown) => { validate(): void } };
    const ds = all.find((m) => m.obj.kind === 'DaemonSet')?.obj as Obj;
    const broken = structuredClone(ds) as unknown as { spec: { template: { spec: { containers: Array<{ image: unknown }> } } } };
    (broken.spec.template.spec.containers[0] as { image: unknown }).image = 42;
    expect(() => new DaemonSet(broken).validate()).toThrow();
  });

  it('the DaemonSet drops every capability and mounts what the daemon needs', () => {
    const ds = all.find((m) => m.obj.kind === 'DaemonSet')?.obj as unknown as {
      spec: { template: { spec: { hostNetwork: boolean; serviceAccountName: string; containers: Array<{ securityContext: { capabilities: { drop: string[]; add?: string[] } }; volumeMounts: Array<{ mountPath: string }> }> } } };
    };
    const pod = ds.spec.template.spec;
    expect(pod.hostNetwork).toBe(true);
    expect(pod.serviceAccountName).toBe('sriov-underlay-node');
    const c = pod.containers[0];
    expect(c?.securityContext.capabilities).toEqual({ drop: ['ALL'] });
    const mounts = c?.volumeMounts.map((m) => m.mountPath) ?? [];
    for (const p of ['/host/sys', '/var/lib/kubelet/device-plugins', '/var/lib/kubelet/plugins_registry', '/var/lib/kubelet/pod-resources', '/run/sriov-underlay', '/var/lib/sriov-underlay/release-queue']) {
      expect(mounts).toContain(p);
    }
    // The CNI's private state (it executes what its queued IPAM releases name) and unused netns paths: never.
    for (const p of ['/var/lib/cni/sriov-underlay', '/var/lib/cni', '/var/lib', '/var/run/netns']) expect(mounts).not.toContain(p);
  });

  it('RBAC never lets the node daemon write ConfigMaps or Pods', () => {
    const role = all.find((m) => m.obj.kind === 'ClusterRole' && m.obj.metadata.name === 'sriov-underlay-node')?.obj as unknown as {
      rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>;
    };
    for (const r of role.rules) {
      if (r.resources.includes('configmaps') || r.resources.includes('pods')) expect(r.verbs.sort()).toEqual(['get', 'list', 'watch']);
    }
     // The node policy's evictions: pods/eviction create only (the Eviction API, PDBs honoured), no delete.
    const evict = role.rules.filter((r) => r.resources.some((x) => x.startsWith('pods/')));
    expect(evict).toEqual([{ apiGroups: [''], resources: ['pods/eviction'], verbs: ['create'] }]);
    expect(role.rules.some((r) => r.verbs.includes('delete') && r.resources.some((x) => x.startsWith('pods')))).toBe(false);
  });

  it("the node policy's Lease: create, and get/update of that one name, in the daemon's namespace only", () => {
    const role = all.find((m) => m.obj.kind === 'Role' && m.obj.metadata.name === 'sriov-underlay-node')?.obj as unknown as {
      metadata: { namespace: string };
      rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }>;
    };
    expect(role.metadata.namespace).toBe('sriov-underlay');
    expect(role.rules).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [EVICT_LEASE_NAME], verbs: ['get', 'update'] },
    ]);
    const binding = all.find((m) => m.obj.kind === 'RoleBinding' && m.obj.metadata.name === 'sriov-underlay-node')?.obj as unknown as { subjects: Array<{ name: string }> };
    expect(binding.subjects.map((x) => x.name)).toEqual(['sriov-underlay-node']);
  });

  it('the CNI configs in the NetworkAttachmentDefinition and the primary conflist pass the netconf schema', () => {
    const nad = all.find((m) => m.obj.kind === 'NetworkAttachmentDefinition')?.obj as unknown as { spec: { config: string } };
    const conf = JSON.parse(nad.spec.config) as Record<string, unknown>;
    const r = netconfSchema.safeParse(conf);
    expect(r.success, r.success ? '' : describeIssues('NAD config', r.error.issues)).toBe(true);
    const list = JSON.parse(fs.readFileSync(path.join(DEPLOY, '60-primary.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: Array<Record<string, unknown>> };
    const ours = list.plugins.find((p) => p.type === 'sriov-underlay');
    const r2 = netconfSchema.safeParse({ cniVersion: list.cniVersion, name: list.name, ...ours });
    expect(r2.success, r2.success ? '' : describeIssues('primary conflist', r2.error.issues)).toBe(true);
  });
});
