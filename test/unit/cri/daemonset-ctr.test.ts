/**
 * test/cri/daemonset-ctr.ts: deploy/40-daemonset.yaml as `ctr run` arguments. The real manifest
 * gives what docs/security.md promises per container; a manifest the translation cannot honour
 * is refused, naming the container and the field.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { capsOfMask, ctrRunFor, loadDaemonSet, quantityBytes, type DaemonSetObject } from '../../cri/daemonset-ctr';

const REPO = path.resolve(__dirname, '../../..');
const text = fs.readFileSync(path.join(REPO, 'deploy/40-daemonset.yaml'), 'utf8');
const OPTS = {
  entrypoint: ['/opt/sriov-underlay/bin/sriov-underlay-node'],
  imageUser: '0:0',
  nodeName: 'n1',
  volumeDirs: { 'pools-config': '/t/pools', 'node-policy': '/t/policy', 'kube-api-access': '/t/sa' },
};
const fresh = (): DaemonSetObject => loadDaemonSet(text);
const mount = (r: ReturnType<typeof ctrRunFor>, dst: string) => r.mounts.find((m) => m.dst === dst);

describe('ctrRunFor on deploy/40-daemonset.yaml', () => {
  it('node: the entrypoint + args, NET_ADMIN only, read-only root, host net and PID, sysfs writable at /host/sys', () => {
    const r = ctrRunFor(fresh(), 'node', OPTS);
    expect(r.process[0]).toBe(OPTS.entrypoint[0]);
    expect(r.process).toContain('--components=device-plugin,agent,node-policy');
    expect(r.caps).toEqual(['CAP_NET_ADMIN']);
    expect(r.flags).toContain('--read-only');
    expect(r.flags).toContain('--net-host');
    expect(r.flags.join(' ')).toContain('--with-ns pid:/proc/1/ns/pid');
    expect(r.flags).not.toContain('--allow-new-privs');
    expect(r.flags.filter((f) => f === '--cap-drop')).toHaveLength(40);
    expect(r.flags.join(' ')).not.toContain('--cap-drop CAP_NET_ADMIN');
    expect(r.env).toEqual({ NODE_NAME: 'n1' });
    expect(mount(r, '/host/sys')).toMatchObject({ src: '/sys', readOnly: false, options: ['rbind', 'rw', 'rprivate'] });
    expect(mount(r, '/var/lib/cni/sriov-underlay')).toMatchObject({ readOnly: true });
    expect(mount(r, '/var/run/secrets/kubernetes.io/serviceaccount')).toMatchObject({ src: '/t/sa', readOnly: true });
    expect(r.flags).toContain('type=bind,src=/var/lib/kubelet/device-plugins,dst=/var/lib/kubelet/device-plugins,options=rbind:rw:rprivate');
    expect(r.create).toContain('/run/sriov-underlay');
    expect(r.create).not.toContain('/sys');
  });

  it('install-cni (an init container): no capabilities, the host CNI dirs writable, its env', () => {
    const r = ctrRunFor(fresh(), 'install-cni', OPTS);
    expect(r.caps).toEqual([]);
    expect(r.process).toEqual(['/bin/sh', '/opt/sriov-underlay/install-cni.sh']);
    expect(r.env).toEqual({ INSTALL_CONFLIST: 'false' });
    expect(mount(r, '/host/opt/cni/bin')).toMatchObject({ src: '/opt/cni/bin', readOnly: false });
  });

  it('cni-server: NET_ADMIN + NET_RAW + SYS_ADMIN, the netns dir HostToContainer (rslave), /tmp a 16Mi tmpfs, no token', () => {
    const r = ctrRunFor(fresh(), 'cni-server', OPTS);
    expect(r.caps).toEqual(['CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_SYS_ADMIN']);
    expect(r.process.slice(1)).toContain('--components=cni-server');
    expect(mount(r, '/var/run/netns')).toMatchObject({ src: '/var/run/netns', readOnly: true, options: ['rbind', 'ro', 'rslave'] });
    expect(mount(r, '/tmp')).toMatchObject({ src: null, options: ['nosuid', 'nodev', 'rw', `size=${16 << 20}`] });
    expect(mount(r, '/var/lib/cni/sriov-underlay')).toMatchObject({ readOnly: false });
    expect(r.mounts.some((m) => m.dst.startsWith('/var/run/secrets'))).toBe(false);
  });
});

describe('ctrRunFor refuses what it cannot run as written', () => {
  const edit = (fn: (ds: DaemonSetObject) => void) => {
    const ds = fresh();
    fn(ds);
    return loadDaemonSet(stringify(ds));
  };
  const node = (ds: DaemonSetObject) => ds.spec.template.spec.containers.find((c) => c.name === 'node')!;

  it('a drop list other than ALL', () => {
    const ds = edit((d) => void (node(d).securityContext.capabilities = { drop: ['NET_RAW'], add: ['NET_ADMIN'] }));
    expect(() => ctrRunFor(ds, 'node', OPTS)).toThrow(/container node: securityContext.capabilities.drop must be \[ALL\]/);
  });
  it('an unknown capability', () => {
    const ds = edit((d) => void (node(d).securityContext.capabilities = { drop: ['ALL'], add: ['NET_ADMINN'] }));
    expect(() => ctrRunFor(ds, 'node', OPTS)).toThrow(/unknown capability NET_ADMINN/);
  });
  it('another user than the image gives', () => {
    const ds = edit((d) => void (node(d).securityContext.runAsUser = 1000));
    expect(() => ctrRunFor(ds, 'node', OPTS)).toThrow(/runAsUser 1000 differs from the image's user "0:0"/);
  });
  it('privileged', () => {
    const ds = edit((d) => void (node(d).securityContext.privileged = true));
    expect(() => ctrRunFor(ds, 'node', OPTS)).toThrow(/container node: securityContext.privileged/);
  });
  it('subPath, a mount of no volume, a configMap volume without a host dir, an env it cannot fill', () => {
    expect(() => ctrRunFor(edit((d) => void (node(d).volumeMounts![0]!.subPath = 'x')), 'node', OPTS)).toThrow(/volumeMount sys \(\/host\/sys\): subPath/);
    expect(() => ctrRunFor(edit((d) => void node(d).volumeMounts!.push({ name: 'nope', mountPath: '/x' })), 'node', OPTS)).toThrow(/volumeMount nope \(\/x\): no volume/);
    expect(() => ctrRunFor(fresh(), 'node', { ...OPTS, volumeDirs: {} })).toThrow(/volumeMount pools-config .*configMap volume/);
    expect(() => ctrRunFor(edit((d) => void node(d).env!.push({ name: 'X', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } })), 'node', OPTS)).toThrow(/env X/);
  });
  it('a missing container, a file without a DaemonSet, a DaemonSet that is not one', () => {
    expect(() => ctrRunFor(fresh(), 'sidecar', OPTS)).toThrow(/container sidecar: no such container \(have install-cni, node, cni-server\)/);
    expect(() => loadDaemonSet('kind: ConfigMap\n', 'f.yaml')).toThrow(/f.yaml: expected exactly one DaemonSet, found 0/);
    expect(() => loadDaemonSet('kind: DaemonSet\nmetadata: {name: x}\n', 'f.yaml')).toThrow(/f.yaml: DaemonSet: metadata.namespace/);
  });
});

describe('helpers', () => {
  it('quantityBytes and capsOfMask', () => {
    expect(quantityBytes('16Mi', 'q')).toBe(16 << 20);
    expect(quantityBytes('1G', 'q')).toBe(1e9);
    expect(() => quantityBytes('1.5Gi', 'sizeLimit')).toThrow(/sizeLimit: cannot read quantity "1.5Gi"/);
    expect(capsOfMask('0000000000201000')).toEqual(['CAP_NET_ADMIN', 'CAP_SYS_ADMIN']);
    expect(capsOfMask('0000000000000000')).toEqual([]);
  });
});
