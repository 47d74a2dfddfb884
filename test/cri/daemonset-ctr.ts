/**
 * deploy/40-daemonset.yaml's pod, turned into `ctr run` arguments, so the runtime tier runs each
 * container the way kubelet would from the manifest itself: its args after the image's entrypoint,
 * its env, its capabilities (exactly the `add` list: every other capability is dropped), its
 * read-only root, its volume mounts (hostPath at the same host path, with the mount's readOnly and
 * mountPropagation), host networking and host PID. What the translation cannot express with ctr
 * (another user, a drop list other than ALL, subPath, privileged, ...) is refused with the field's
 * name, so the manifest cannot drift into something this tier silently does not test.
 * Ignored on purpose: ports and probes (host networking; the scenario checks the sockets), resources
 * (ctr's cgroup limits are not what kubelet's QoS does). Init containers are found by name like
 * the others; running them first, to completion, is the caller's part.
 */
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';

/** Every capability of Linux 6.x (capability.h, 0..40): `drop: [ALL]` drops each one not added. */
export const ALL_CAPS = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP',
  'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER',
  'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE',
  'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP',
  'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF',
  'CHECKPOINT_RESTORE',
] as const;

const VolumeMount = z.object({
  name: z.string(),
  mountPath: z.string().startsWith('/'),
  readOnly: z.boolean().optional(),
  mountPropagation: z.enum(['None', 'HostToContainer', 'Bidirectional']).optional(),
  subPath: z.string().optional(),
});
const EnvVar = z.object({
  name: z.string(),
  value: z.string().optional(),
  valueFrom: z.object({ fieldRef: z.object({ fieldPath: z.string() }).optional() }).loose().optional(),
});
const Container = z.object({
  name: z.string(),
  image: z.string(),
  command: z.array(z.string()).optional(),
  args: z.array(z.string()).optional(),
  env: z.array(EnvVar).optional(),
  securityContext: z.object({
    runAsUser: z.number().int().optional(),
    allowPrivilegeEscalation: z.boolean().optional(),
    readOnlyRootFilesystem: z.boolean().optional(),
    privileged: z.boolean().optional(),
    capabilities: z.object({ drop: z.array(z.string()).optional(), add: z.array(z.string()).optional() }).optional(),
  }).loose(),
  volumeMounts: z.array(VolumeMount).optional(),
}).loose();
const Volume = z.object({
  name: z.string(),
  hostPath: z.object({ path: z.string().startsWith('/'), type: z.string().optional() }).optional(),
  emptyDir: z.object({ medium: z.string().optional(), sizeLimit: z.string().optional() }).optional(),
}).loose();
const DaemonSet = z.object({
  kind: z.literal('DaemonSet'),
  metadata: z.object({ name: z.string(), namespace: z.string() }),
  spec: z.object({
    template: z.object({
      spec: z.object({
        hostNetwork: z.boolean().optional(),
        hostPID: z.boolean().optional(),
        initContainers: z.array(Container).optional(),
        containers: z.array(Container),
        volumes: z.array(Volume),
      }).loose(),
    }),
  }),
});
export type DaemonSetObject = z.infer<typeof DaemonSet>;

/** The one DaemonSet of a manifest file (several YAML documents allowed). */
export function loadDaemonSet(yamlText: string, file = 'the manifest'): DaemonSetObject {
  const docs = parseAllDocuments(yamlText).map((d) => d.toJS() as unknown).filter((d) => (d as { kind?: unknown } | null)?.kind === 'DaemonSet');
  if (docs.length !== 1) throw new Error(`${file}: expected exactly one DaemonSet, found ${docs.length}`);
  const r = DaemonSet.safeParse(docs[0]);
  if (!r.success) throw new Error(`${file}: DaemonSet: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data;
}

export interface CtrMount {
  volume: string;
  /** The host side: a directory (bind) or, for a Memory emptyDir, null (tmpfs). */
  src: string | null;
  dst: string;
  readOnly: boolean;
  /** The OCI mount options ctr passes to runc. */
  options: string[];
}

export interface CtrRun {
  container: string;
  /** ctr run's flags (before IMAGE ID). */
  flags: string[];
  /** The process: command (or the image's entrypoint) + args. */
  process: string[];
  /** Capabilities the process will hold, CAP_ names, sorted. */
  caps: string[];
  mounts: CtrMount[];
  env: Record<string, string>;
  /** hostPath volumes of type DirectoryOrCreate that kubelet would create before the start. */
  create: string[];
}

export interface CtrRunOptions {
  /** The image config's Entrypoint (used when the container has no `command`). */
  entrypoint: string[];
  /** The image config's User: runAsUser must be what ctr (which has no --user) gives. */
  imageUser: string;
  /** What kubelet fills in for fieldRefs. */
  nodeName: string;
  /** Host directories for the volumes that are not hostPath (configMap, projected, secret). */
  volumeDirs: Record<string, string>;
}

const propagation = { None: 'rprivate', HostToContainer: 'rslave', Bidirectional: 'rshared' } as const;

/** `ctr run` arguments for one container of the DaemonSet's pod. */
export function ctrRunFor(ds: DaemonSetObject, name: string, o: CtrRunOptions): CtrRun {
  const pod = ds.spec.template.spec;
  const all = [...(pod.initContainers ?? []), ...pod.containers];
  const c = all.find((x) => x.name === name);
  const where = `DaemonSet ${ds.metadata.name} container ${name}`;
  if (!c) throw new Error(`${where}: no such container (have ${all.map((x) => x.name).join(', ')})`);
  const sc = c.securityContext;
  const flags: string[] = [];
  if (sc.privileged) throw new Error(`${where}: securityContext.privileged is not run by this tier`);
  if (sc.runAsUser !== undefined && String(sc.runAsUser) !== o.imageUser.split(':')[0]) {
    throw new Error(`${where}: securityContext.runAsUser ${sc.runAsUser} differs from the image's user "${o.imageUser}" (ctr has no --user)`);
  }
  if (sc.allowPrivilegeEscalation !== false) flags.push('--allow-new-privs');
  if (sc.readOnlyRootFilesystem) flags.push('--read-only');
  if (pod.hostNetwork) flags.push('--net-host');
  if (pod.hostPID) flags.push('--with-ns', 'pid:/proc/1/ns/pid');

  const drop = sc.capabilities?.drop ?? [];
  if (drop.length !== 1 || drop[0] !== 'ALL') throw new Error(`${where}: securityContext.capabilities.drop must be [ALL] (is ${JSON.stringify(drop)})`);
  const add = (sc.capabilities?.add ?? []).map((cap) => {
    const bare = cap.replace(/^CAP_/, '');
    if (!(ALL_CAPS as readonly string[]).includes(bare)) throw new Error(`${where}: securityContext.capabilities.add: unknown capability ${cap}`);
    return bare;
  });
  for (const cap of add) flags.push('--cap-add', `CAP_${cap}`);
  for (const cap of ALL_CAPS.filter((x) => !add.includes(x))) flags.push('--cap-drop', `CAP_${cap}`);

  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName') env[e.name] = o.nodeName;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env[e.name] = ds.metadata.namespace;
    else throw new Error(`${where}: env ${e.name}: only value and fieldRef spec.nodeName / metadata.namespace are supported`);
  }
  for (const [k, v] of Object.entries(env)) flags.push('--env', `${k}=${v}`);

  const mounts: CtrMount[] = [];
  const create: string[] = [];
  for (const m of c.volumeMounts ?? []) {
    const at = `${where}: volumeMount ${m.name} (${m.mountPath})`;
    if (m.subPath) throw new Error(`${at}: subPath is not supported`);
    const v = pod.volumes.find((x) => x.name === m.name);
    if (!v) throw new Error(`${at}: no volume of that name`);
    const ro = m.readOnly === true;
    let src: string | null;
    let options: string[];
    if (v.hostPath) {
      src = v.hostPath.path;
      if (v.hostPath.type === 'DirectoryOrCreate') create.push(src);
      options = ['rbind', ro ? 'ro' : 'rw', propagation[m.mountPropagation ?? 'None']];
    } else if (v.emptyDir?.medium === 'Memory') {
      src = null;
      const size = v.emptyDir.sizeLimit ? [`size=${quantityBytes(v.emptyDir.sizeLimit, `${at}: emptyDir.sizeLimit`)}`] : [];
      options = ['nosuid', 'nodev', ro ? 'ro' : 'rw', ...size];
    } else {
      src = o.volumeDirs[m.name] ?? null;
      if (src === null) throw new Error(`${at}: a ${Object.keys(v).filter((k) => k !== 'name').join('/')} volume: give its host directory in volumeDirs`);
      options = ['rbind', ro ? 'ro' : 'rw', propagation[m.mountPropagation ?? 'None']];
    }
    mounts.push({ volume: m.name, src, dst: m.mountPath, readOnly: ro, options });
    flags.push('--mount', src === null ? `type=tmpfs,src=tmpfs,dst=${m.mountPath},options=${options.join(':')}` : `type=bind,src=${src},dst=${m.mountPath},options=${options.join(':')}`);
  }
  return {
    container: name,
    flags,
    process: [...(c.command ?? o.entrypoint), ...(c.args ?? [])],
    caps: add.map((x) => `CAP_${x}`).sort(),
    mounts,
    env,
    create: [...new Set(create)],
  };
}

/** A Kubernetes quantity (16Mi, 1Gi, 500M, 1024) in bytes. */
export function quantityBytes(q: string, what: string): number {
  const m = /^(\d+)(Ki|Mi|Gi|K|M|G)?$/.exec(q);
  if (!m) throw new Error(`${what}: cannot read quantity "${q}"`);
  const mul = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, K: 1e3, M: 1e6, G: 1e9 }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * mul;
}

/** The capability names of a CapEff/CapPrm hex mask from /proc/<pid>/status, CAP_ names, sorted. */
export function capsOfMask(hex: string): string[] {
  const mask = BigInt(`0x${hex}`);
  return ALL_CAPS.filter((_, i) => (mask >> BigInt(i)) & 1n).map((x) => `CAP_${x}`).sort();
}
