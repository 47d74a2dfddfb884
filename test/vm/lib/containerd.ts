/**
 * The runtime tier's container runtime: Debian's containerd (CRI plugin) and runc, run in the guest
 * the way a node runs them, with the config file written here. The guest's root is the host's,
 * read-only, so the runtime's writable paths are tmpfs: /var/lib/containerd and /run/containerd
 * (the guest init's tmpfs), and /etc/cni/net.d and /opt/cni/bin (mounted here over the host's
 * empty dirs, which test/vm/run.sh creates).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CriClient } from '../../cri/client';
import { must, run, waitFor } from './sh';

export const CONTAINERD_SOCKET = '/run/containerd/containerd.sock';
export const CNI_CONF_DIR = '/etc/cni/net.d';
export const CNI_BIN_DIR = '/opt/cni/bin';
export const SANDBOX_IMAGE = 'localhost/sriov-underlay-test/pause:1';

const mounted = (path: string): boolean => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === path);

/**
 * cgroup v2 for runc, tmpfs for the CNI dirs. Returns the undo (lazy unmounts, in reverse), for the
 * scenario's teardown: the next scenario in this boot sees the host's dirs again.
 */
export async function mountRuntimeDirs(): Promise<() => Promise<void>> {
  const done: string[] = [];
  if (!mounted('/sys/fs/cgroup')) {
    await must('/bin/mount', ['-t', 'cgroup2', 'cgroup2', '/sys/fs/cgroup']);
    done.push('/sys/fs/cgroup');
  }
  for (const d of [CNI_CONF_DIR, CNI_BIN_DIR]) {
    if (!existsSync(d)) throw new Error(`${d} does not exist on the host (test/vm/run.sh creates it for the runtime tier)`);
    await must('/bin/mount', ['-t', 'tmpfs', '-o', 'mode=0755', 'tmpfs', d]);
    done.push(d);
  }
  return async () => {
    for (const d of done.reverse()) await run('/bin/umount', ['-l', d]);
  };
}

export interface ContainerdConfig {
  /** CRI plugin `cni.max_conf_num`: 1 = the first conflist only (primary), 2 = Multus-like. */
  maxConfNum: number;
}

/** containerd 1.6's config (version 2): the CRI plugin's CNI dirs, sandbox image, runc via shim v2. */
export function containerdToml(c: ContainerdConfig): string {
  return `version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
# Plugins that cannot work in the guest (no btrfs/zfs/devmapper; /opt is read-only) stay off.
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "${CONTAINERD_SOCKET}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${SANDBOX_IMAGE}"
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CNI_BIN_DIR}"
    conf_dir = "${CNI_CONF_DIR}"
    max_conf_num = ${c.maxConfNum}
`;
}

/** One containerd process; `restart` keeps the config, and the shims (and so the pods) live on. */
export class Containerd {
  private child: ChildProcess | null = null;
  private starts = 0;
  readonly cri: CriClient;

  constructor(
    private readonly dir: string,
    private readonly logDir: string,
  ) {
    mkdirSync(dir, { recursive: true });
    this.cri = new CriClient(CONTAINERD_SOCKET, 180_000);
  }

  get configPath(): string {
    return join(this.dir, 'config.toml');
  }

  get address(): string {
    return CONTAINERD_SOCKET;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  configure(c: ContainerdConfig): void {
    writeFileSync(this.configPath, containerdToml(c));
  }

  /** Start and wait until the CRI answers Version (the CRI plugin is up, not only the daemon). */
  async start(): Promise<{ ms: number; version: string }> {
    const t0 = Date.now();
    this.starts++;
    const child = spawn('/usr/bin/containerd', ['--config', this.configPath, '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.pipe(createWriteStream(join(this.logDir, `containerd-${this.starts}.log`)));
    this.child = child;
    const v = await waitFor('the CRI answering Version', async () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`containerd exited (${child.exitCode ?? child.signalCode}); see containerd-${this.starts}.log`);
      if (!existsSync(CONTAINERD_SOCKET)) return null;
      return this.cri.version(5_000).catch(() => null);
    }, 120_000, 250);
    return { ms: Date.now() - t0, version: `${v.runtimeName} ${v.runtimeVersion} (CRI ${v.runtimeApiVersion})` };
  }

  /** SIGTERM (a service restart) or SIGKILL (a crash); resolves when the daemon is gone. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const c = this.child;
    this.child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill(signal);
    const timer = setTimeout(() => c.kill('SIGKILL'), 30_000);
    await gone;
    clearTimeout(timer);
  }

  /** `ctr -n k8s.io images import`: what an operator does with an image archive on a node. */
  async importImage(archive: string): Promise<string> {
    return must('/usr/bin/ctr', ['--address', CONTAINERD_SOCKET, '-n', 'k8s.io', 'images', 'import', archive], { timeoutMs: 180_000 });
  }

  ctr(...args: string[]): Promise<string> {
    return must('/usr/bin/ctr', ['--address', CONTAINERD_SOCKET, ...args], { timeoutMs: 180_000 });
  }

  logs(): string {
    return Array.from({ length: this.starts }, (_, i) => join(this.logDir, `containerd-${i + 1}.log`))
      .filter((f) => existsSync(f))
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
  }
}
