/**
 * The manifests in deploy/ against the Kubernetes API schemas (kubernetes-models ships them, so this
 * works offline), plus our own schemas for what the CNI and the daemon will read from them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { EVICT_LEASE_NAME } from '../../node/policy/lease';
import { netconfSchema } from '../../src/schemas/netconf';
import { describeIssues } from '../../src/schemas/format';
import { FLAG_DEFAULTS, parseFlags } from '../../node/flags';

const DEPLOY = path.resolve(__dirname, '../../deploy');
const REPO = path.resolve(__dirname, '../..');

interface Mount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  mountPropagation?: string;
}
interface Container {
  name: string;
  args?: string[];
  env?: unknown[];
  securityContext: { capabilities: { drop: string[]; add?: string[] }; readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; privileged?: boolean };
  volumeMounts: Mount[];
}
interface Volume {
  name: string;
  hostPath?: { path: string };
  secret?: unknown;
  projected?: { sources?: Array<{ serviceAccountToken?: unknown; secret?: unknown }> };
}
interface PodSpec {
  hostNetwork: boolean;
  hostPID?: boolean;
  automountServiceAccountToken?: boolean;
  serviceAccountName: string;
  containers: Container[];
  initContainers?: Container[];
  volumes: Volume[];
}

const under = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);
/** The DaemonSet's host path for a container path in cni-server (they are the same there). */
const hostPathOf = (p: string) => p;

/**
 * Where a host path shows up inside a container: through a hostPath mount of it or of a parent,
 * unless a deeper mount at that container path covers it (the mask over the socket dir). Returns the
 * container path, or null; `mount` is the mount that finally serves it.
 */
function resolveHostPath(pod: PodSpec, c: Container, host: string): { path: string; mount: Mount } | null {
  for (const m of c.volumeMounts) {
    const hp = pod.volumes.find((v) => v.name === m.name)?.hostPath?.path;
    if (!hp || !under(host, hp)) continue;
    const inside = m.mountPath + host.slice(hp.length);
    const deepest = c.volumeMounts.filter((o) => under(inside, o.mountPath)).sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
    if (deepest === m) return { path: inside, mount: m };
  }
  return null;
}
const visibleHostPath = (pod: PodSpec, c: Container, host: string) => resolveHostPath(pod, c, host)?.path ?? null;
const writableHostPath = (pod: PodSpec, c: Container, host: string) => {
  const r = resolveHostPath(pod, c, host);
  return r !== null && r.mount.readOnly !== true;
};

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

  const pod = () =>
    (all.find((m) => m.obj.kind === 'DaemonSet')?.obj as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
  const container = (name: string) => {
    const c = [...pod().containers, ...(pod().initContainers ?? [])].find((x) => x.name === name);
    if (!c) throw new Error(`DaemonSet has no container ${name}`);
    return c;
  };

  it('each container has only the capabilities it needs, a read-only root and no privilege escalation', () => {
    const p = pod();
    expect(p.hostNetwork).toBe(true);
    expect(p.serviceAccountName).toBe('sriov-underlay-node');
    expect([...p.containers, ...(p.initContainers ?? [])].map((c) => c.name).sort()).toEqual(['cni-server', 'install-cni', 'node']);
    const caps = (name: string) => container(name).securityContext.capabilities;
    expect(caps('install-cni')).toEqual({ drop: ['ALL'] });
    expect(caps('node')).toEqual({ drop: ['ALL'], add: ['NET_ADMIN'] });
    expect(caps('cni-server')).toEqual({ drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN'] });
    for (const c of [...p.containers, ...(p.initContainers ?? [])]) {
      expect(c.securityContext, c.name).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
      expect(c.securityContext.privileged, c.name).toBeFalsy();
    }
  });

  it('the node container (device plugin + agent + node policy) mounts what it needs, the CNI\'s state only read-only, never netns', () => {
    const mounts = container('node').volumeMounts.map((m) => m.mountPath);
    for (const m of ['/host/sys', '/var/lib/kubelet/device-plugins', '/var/lib/kubelet/plugins_registry', '/var/lib/kubelet/pod-resources', '/run/sriov-underlay', '/var/lib/sriov-underlay/release-queue']) {
      expect(mounts).toContain(m);
    }
    for (const m of ['/var/lib/cni', '/var/lib', '/var/run/netns']) expect(mounts).not.toContain(m);
    expect(container('node').volumeMounts.find((m) => m.mountPath === '/var/lib/cni/sriov-underlay')).toMatchObject({ readOnly: true });
  });

  it('cni-server gets the CNI\'s dirs, pods\' netns as the host pins them, host PIDs, and IPAM plugins read-only', () => {
    expect(pod().hostPID).toBe(true);
    const c = container('cni-server');
    expect(c.args).toContain('--components=cni-server');
    const m = (path: string) => c.volumeMounts.find((v) => v.mountPath === path);
    expect(m('/var/run/netns')).toMatchObject({ mountPropagation: 'HostToContainer' });
    expect(m('/opt/cni/bin')).toMatchObject({ readOnly: true });
    for (const p of ['/run/sriov-underlay-cni', '/var/lib/cni/sriov-underlay', '/var/lib/sriov-underlay/release-queue', '/var/log/sriov-underlay']) {
      expect(writableHostPath(pod(), c, hostPathOf(p)), p).toBe(true);
    }
    expect(visibleHostPath(pod(), c, '/run/sriov-underlay/agent.sock')).toBe('/run/sriov-underlay/agent.sock');
  });

  it('cni-server writes pods\' net.* sysctls through the host\'s /proc/sys/net under --cni-sysctl-root (a container\'s /proc/sys is read-only); no other container gets it', () => {
    const root = parseFlags(container('cni-server').args ?? [])['cni-sysctl-root'];
    expect(root).not.toBe('/proc/sys');
    expect(visibleHostPath(pod(), container('cni-server'), '/proc/sys/net/ipv4/conf/eth0/arp_notify')).toBe(`${root}/net/ipv4/conf/eth0/arp_notify`);
    expect(writableHostPath(pod(), container('cni-server'), '/proc/sys/net/ipv4')).toBe(true);
    // Only net.*: kernel.* (core_pattern) must stay out of reach.
    expect(visibleHostPath(pod(), container('cni-server'), '/proc/sys/kernel/core_pattern')).toBeNull();
    for (const c of ['node', 'install-cni']) expect(visibleHostPath(pod(), container(c), '/proc/sys/net/ipv4'), c).toBeNull();
  });

  it('no container but cni-server can write the CNI\'s state dir or reach the server\'s socket dir, at any depth of mount', () => {
    const p = pod();
    for (const c of [...p.containers, ...(p.initContainers ?? [])]) {
      const server = c.name === 'cni-server';
      for (const h of ['/var/lib/cni/sriov-underlay', '/var/lib/cni/sriov-underlay/ipam-pending/x.json']) expect(writableHostPath(p, c, h), `${c.name} ${h}`).toBe(server);
      for (const h of ['/run/sriov-underlay-cni', '/run/sriov-underlay-cni/cni.sock']) expect(visibleHostPath(p, c, h) !== null, `${c.name} ${h}`).toBe(server);
    }
    // The node policy reads the state dir, read-only, where its flag says.
    expect(visibleHostPath(p, container('node'), '/var/lib/cni/sriov-underlay')).toBe('/var/lib/cni/sriov-underlay');
    expect(container('node').args).toContain('--cni-state-dir=/var/lib/cni/sriov-underlay');
  });

  it('the model of mounts above can fail: a node container that mounts the host\'s /run reaches the socket dir', () => {
    const p = structuredClone(pod());
    const node = p.containers.find((c) => c.name === 'node')!;
    p.volumes.push({ name: 'host-run', hostPath: { path: '/run' } } as (typeof p.volumes)[number]);
    node.volumeMounts.push({ name: 'host-run', mountPath: '/host/run' });
    expect(visibleHostPath(p, node, '/run/sriov-underlay-cni/cni.sock')).toBe('/host/run/sriov-underlay-cni/cni.sock');
    expect(writableHostPath(p, node, '/run/sriov-underlay-cni/cni.sock')).toBe(true);
  });

  it('the shim, the daemon\'s flag and the DaemonSet name one socket', () => {
    const shim = /#define DEFAULT_SOCKET "([^"]+)"/.exec(fs.readFileSync(path.join(REPO, 'native/cni-shim.c'), 'utf8'))?.[1];
    expect(shim).toBe('/run/sriov-underlay-cni/cni.sock');
    expect(FLAG_DEFAULTS['cni-socket']).toBe(shim);
    expect(parseFlags(container('cni-server').args ?? [])['cni-socket']).toBe(shim);
    // Outside /run/sriov-underlay, which the node container mounts writable.
    expect(visibleHostPath(pod(), container('node'), shim!)).toBeNull();
  });

  it('no service account token in cni-server or install-cni; node gets it from a projected volume', () => {
    const p = pod();
    // Pod-wide off: kubelet mounts no token into any container by itself.
    expect(p.automountServiceAccountToken).toBe(false);
    const credentialVolumes = new Set(
      p.volumes.filter((v) => v.secret || v.projected?.sources?.some((s) => s.serviceAccountToken || s.secret)).map((v) => v.name),
    );
    expect(credentialVolumes.size).toBeGreaterThan(0);
    const hasToken = (c: Container) => c.volumeMounts.some((m) => credentialVolumes.has(m.name) || m.mountPath.startsWith('/var/run/secrets'));
    expect(hasToken(container('cni-server'))).toBe(false);
    expect(hasToken(container('install-cni'))).toBe(false);
    expect(hasToken(container('node'))).toBe(true);
    // Nor through the environment or a kubeconfig flag.
    const c = container('cni-server');
    expect(JSON.stringify(c.env ?? [])).not.toMatch(/secret|token/i);
    expect((c.args ?? []).some((a) => a.startsWith('--kubeconfig'))).toBe(false);
  });

  it('every daemon container\'s args are flags the daemon accepts, each running its own components', () => {
    // The containers that need it get NODE_NAME from the downward API.
    vi.stubEnv('NODE_NAME', 'node-a');
    const want: Record<string, string[]> = { node: ['device-plugin', 'agent', 'node-policy'], 'cni-server': ['cni-server'] };
    for (const [name, components] of Object.entries(want)) {
      const flags = parseFlags(container(name).args ?? []);
      expect([...flags.components].sort(), name).toEqual([...components].sort());
    }
    expect(parseFlags(container('node').args ?? [])['cni-state-dir']).toBe('/var/lib/cni/sriov-underlay');
    expect(parseFlags(container('cni-server').args ?? [])['cni-socket']).toBe('/run/sriov-underlay-cni/cni.sock');
    // The check can fail: a flag the daemon does not know is refused.
    expect(() => parseFlags(['--components=cni-server', '--no-such-flag'])).toThrow();
    vi.unstubAllEnvs();
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
