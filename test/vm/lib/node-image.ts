/**
 * The node side as the DaemonSet runs it, in the guest: the image `npm run image` built (its OCI
 * archive, imported with `ctr images import` as docs/install.md says), and each container of
 * deploy/40-daemonset.yaml started with `ctr run` from the arguments test/cri/daemonset-ctr.ts
 * derives from the manifest itself (capabilities, mounts, host net/PID, read-only root, args, env).
 * What kubelet adds around a pod is added here: the service-account volume (token, CA, namespace)
 * and the KUBERNETES_SERVICE_* variables, pointing at the fake API server.
 * After each start, the running process is checked against the manifest from the outside:
 * its effective capabilities (/proc/<pid>/status) and its mounts' ro/rw (/proc/<pid>/mountinfo).
 */
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync } from 'node:fs';
import { posix } from 'node:path';
import { join } from 'node:path';
import { capsOfMask, ctrRunFor, loadDaemonSet, type CtrRun, type DaemonSetObject } from '../../cri/daemonset-ctr';
import type { Containerd } from './containerd';
import { run, waitFor } from './sh';

/** The namespace an operator imports into (docs/install.md): the CRI's; ctr's containers there are not CRI's. */
export const IMAGE_NS = 'k8s.io';

export interface BuiltImage {
  ref: string;
  digest: string;
  archive: string;
  entrypoint: string[];
  user: string;
  revision: string;
}

/** What `npm run image` wrote into dist/image/: the name, digest, archive, and the config's entrypoint and user. */
export function builtImage(project: string): BuiltImage {
  const img = join(project, 'dist/image');
  const version = (JSON.parse(readFileSync(join(project, 'package.json'), 'utf8')) as { version: string }).version;
  const archive = join(img, `sriov-underlay-${version}.oci.tar`);
  if (!existsSync(archive)) throw new Error(`${archive} is missing: run \`npm run image\``);
  const blob = (d: string) => JSON.parse(readFileSync(join(img, 'oci/blobs/sha256', d.replace(/^sha256:/, '')), 'utf8')) as Record<string, unknown>;
  const index = JSON.parse(readFileSync(join(img, 'oci/index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const m = index.manifests[0];
  const ref = m?.annotations?.['io.containerd.image.name'];
  if (!m || !ref) throw new Error(`${img}/oci/index.json names no image`);
  const manifest = blob(m.digest) as { config: { digest: string } };
  const config = (blob(manifest.config.digest) as { config: { Entrypoint?: string[]; User?: string; Labels?: Record<string, string> } }).config;
  return {
    ref,
    digest: m.digest,
    archive,
    entrypoint: config.Entrypoint ?? [],
    user: config.User ?? '0',
    revision: config.Labels?.['org.opencontainers.image.revision'] ?? '(no revision label)',
  };
}

/** One container of the DaemonSet, running under containerd. */
export interface PodContainer {
  id: string;
  spec: CtrRun;
  logFile: string;
  pid(): Promise<number | null>;
  /** SIGTERM (kubelet's stop), SIGKILL after graceMs; then the container is deleted. */
  stop(graceMs?: number): Promise<void>;
}

export interface NodePodOptions {
  containerd: Containerd;
  project: string;
  image: BuiltImage;
  nodeName: string;
  /** Host dirs of the volumes that are not hostPath (configMap, projected). */
  volumeDirs: Record<string, string>;
  /** What kubelet puts into every container's environment (the API server's service). */
  serviceEnv: Record<string, string>;
  logDir: string;
}

export class NodePod {
  readonly ds: DaemonSetObject;

  constructor(private readonly o: NodePodOptions) {
    this.ds = loadDaemonSet(readFileSync(join(o.project, 'deploy/40-daemonset.yaml'), 'utf8'), 'deploy/40-daemonset.yaml');
  }

  spec(name: string): CtrRun {
    return ctrRunFor(this.ds, name, { entrypoint: this.o.image.entrypoint, imageUser: this.o.image.user, nodeName: this.o.nodeName, volumeDirs: this.o.volumeDirs });
  }

  private args(s: CtrRun): string[] {
    const env = Object.entries(this.o.serviceEnv).flatMap(([k, v]) => ['--env', `${k}=${v}`]);
    for (const d of s.create) mkdirSync(d, { recursive: true }); // hostPath type DirectoryOrCreate, as kubelet does
    return [...s.flags, ...env];
  }

  /** An init container: run to completion (`ctr run --rm`), its output returned. */
  async runToCompletion(name: string): Promise<string> {
    const s = this.spec(name);
    return this.o.containerd.ctr('-n', IMAGE_NS, 'run', '--rm', ...this.args(s), this.o.image.ref, `sriov-underlay-${name}`, ...s.process);
  }

  /** A long-running container: `ctr run -d`, its stdout/stderr to <logDir>/<name>.log (the shim writes it). */
  async start(name: string, n = 1): Promise<PodContainer> {
    const s = this.spec(name);
    const id = `sriov-underlay-${name}-${n}`;
    const logFile = join(this.o.logDir, `${name}-${n}.log`);
    const ctr = this.o.containerd;
    await ctr.ctr('-n', IMAGE_NS, 'run', '-d', '--log-uri', `file://${logFile}`, ...this.args(s), this.o.image.ref, id, ...s.process);
    const pid = async (): Promise<number | null> => {
      const r = await run('/usr/bin/ctr', ['--address', ctr.address, '-n', IMAGE_NS, 'task', 'ls']);
      const line = r.stdout.split('\n').find((l) => l.split(/\s+/)[0] === id);
      const [, p, status] = line?.split(/\s+/) ?? [];
      return status === 'RUNNING' && p ? Number(p) : null;
    };
    return {
      id,
      spec: s,
      logFile,
      pid,
      async stop(graceMs = 10_000) {
        await run('/usr/bin/ctr', ['--address', ctr.address, '-n', IMAGE_NS, 'task', 'kill', '-s', 'SIGTERM', id]);
        await waitFor(`${id} to exit after SIGTERM`, async () => (await pid()) === null || null, graceMs, 200).catch(async () => {
          await run('/usr/bin/ctr', ['--address', ctr.address, '-n', IMAGE_NS, 'task', 'kill', '-s', 'SIGKILL', id]);
          await waitFor(`${id} to exit after SIGKILL`, async () => (await pid()) === null || null, 10_000, 200);
        });
        await run('/usr/bin/ctr', ['--address', ctr.address, '-n', IMAGE_NS, 'task', 'delete', id]);
        await run('/usr/bin/ctr', ['--address', ctr.address, '-n', IMAGE_NS, 'container', 'delete', id]);
      },
    };
  }
}

/**
 * A path inside a container as its mountinfo names it: symlinks in the image resolved (the image's
 * /var/run is ../run), read through /proc/<pid>/root without following that magic link itself.
 */
export function resolveInContainer(pid: number, path: string): string {
  const root = `/proc/${pid}/root`;
  let parts = path.split('/').filter(Boolean);
  let done: string[] = [];
  for (let hops = 0; parts.length > 0; ) {
    const next = parts.shift()!;
    const at = `/${[...done, next].join('/')}`;
    let st;
    try {
      st = lstatSync(root + at);
    } catch {
      return `/${[...done, next, ...parts].join('/')}`; // not there (yet): the mount would create it
    }
    if (!st.isSymbolicLink()) {
      done.push(next);
      continue;
    }
    if (++hops > 40) throw new Error(`${path} in the container of pid ${pid}: too many symlinks`);
    const target = readlinkSync(root + at);
    const base = target.startsWith('/') ? '/' : `/${done.join('/')}`;
    parts = [...posix.normalize(posix.join(base, target)).split('/').filter(Boolean), ...parts];
    done = [];
  }
  return `/${done.join('/')}`;
}

/**
 * What the kernel says the container's process holds, against what the manifest asks: the effective
 * capabilities, and for each volume mount the mount point with its ro/rw. Returns the differences.
 */
export function differencesFromManifest(pid: number, spec: CtrRun): string[] {
  const out: string[] = [];
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const eff = capsOfMask(/^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? '0');
  if (eff.join(',') !== spec.caps.join(',')) out.push(`capabilities: the process holds [${eff.join(', ')}], the manifest says [${spec.caps.join(', ')}]`);
  const mounts = new Map<string, string[]>();
  for (const l of readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n')) {
    const f = l.split(' ');
    if (f[4]) mounts.set(f[4], (f[5] ?? '').split(','));
  }
  for (const m of spec.mounts) {
    const dst = resolveInContainer(pid, m.dst);
    const opts = mounts.get(dst);
    if (!opts) out.push(`mount ${m.volume}: nothing is mounted at ${m.dst}${dst === m.dst ? '' : ` (${dst})`}`);
    else if (opts.includes('ro') !== m.readOnly) out.push(`mount ${m.volume}: ${m.dst} is ${opts.includes('ro') ? 'ro' : 'rw'}, the manifest says ${m.readOnly ? 'readOnly' : 'writable'}`);
  }
  const root = mounts.get('/');
  const wantRo = spec.flags.includes('--read-only');
  if (!root || root.includes('ro') !== wantRo) out.push(`root: ${root?.includes('ro') ? 'ro' : 'rw'}, the manifest says readOnlyRootFilesystem ${wantRo}`);
  return out;
}
