/**
 * A compromised node daemon, as the trust map says it is: uid 0, no capabilities (bounding,
 * inheritable and ambient sets empty, no_new_privs), a root filesystem of its own, and exactly the
 * host directories that deploy/40-daemonset.yaml mounts into one of its containers (`node` unless
 * told). Each hostPath P maps to `<hostRoot>/P` (a fake host tree in the test's temp dir) except
 * /sys, which is the real one; an emptyDir becomes an empty tmpfs (read-only when the mount is: the
 * mask over the CNI server's socket dir); /usr comes read-only so the attacker has a shell and
 * coreutils.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO } from '../../fixtures/cni';

export interface DaemonMount {
  /** null: an emptyDir */
  hostPath: string | null;
  mountPath: string;
  readOnly: boolean;
}

interface Manifest {
  kind?: string;
  spec?: { template?: { spec?: { containers?: Array<{ name: string; volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }> }>; volumes?: Array<{ name: string; hostPath?: { path: string }; emptyDir?: object }> } } };
}

/** A container's hostPath and emptyDir mounts, read from the manifest the cluster gets. */
export function daemonSetMounts(file = path.join(REPO, 'deploy/40-daemonset.yaml'), container = 'node'): DaemonMount[] {
  const ds = parseAllDocuments(fs.readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as Manifest)
    .find((d) => d.kind === 'DaemonSet');
  const pod = ds?.spec?.template?.spec;
  const node = pod?.containers?.find((c) => c.name === container);
  if (!pod || !node) throw new Error(`${file}: no DaemonSet with a "${container}" container`);
  const out: DaemonMount[] = [];
  for (const m of node.volumeMounts ?? []) {
    const v = pod.volumes?.find((x) => x.name === m.name);
    if (v?.hostPath) out.push({ hostPath: v.hostPath.path, mountPath: m.mountPath, readOnly: m.readOnly === true });
    else if (v?.emptyDir) out.push({ hostPath: null, mountPath: m.mountPath, readOnly: m.readOnly === true });
  }
  return out;
}

export interface AttackRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run `script` (sh) as the compromised daemon. `files` are copied into its own root first (its
 * payloads); `env` is passed to the script.
 */
export function runAsDaemon(hostRoot: string, mounts: DaemonMount[], script: string, opts: { files?: Record<string, string>; env?: Record<string, string> } = {}): AttackRun {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const setup: string[] = ['set -e', 'R=$(mktemp -d)', 'mount -t tmpfs attacker-root "$R"', 'mkdir -p "$R/usr" "$R/proc" "$R/dev" "$R/tmp"'];
  setup.push('mount --rbind /usr "$R/usr"', 'mount -o remount,bind,ro "$R/usr"');
  for (const l of ['bin', 'sbin', 'lib', 'lib64']) setup.push(`ln -s usr/${l} "$R/${l}"`);
  setup.push('mount -t proc proc "$R/proc"', 'touch "$R/dev/null"', 'mount --bind /dev/null "$R/dev/null"');
  // Parents before children, as the runtime mounts them.
  for (const m of [...mounts].sort((a, b) => a.mountPath.split('/').length - b.mountPath.split('/').length)) {
    if (m.hostPath === null) {
      setup.push(`mkdir -p "$R"${q(m.mountPath)}`, `mount -t tmpfs ${m.readOnly ? '-o ro ' : ''}emptydir "$R"${q(m.mountPath)}`);
      continue;
    }
    const src = m.hostPath === '/sys' ? '/sys' : path.join(hostRoot, m.hostPath);
    if (src !== '/sys') fs.mkdirSync(src, { recursive: true });
    setup.push(`mkdir -p "$R"${q(m.mountPath)}`, `mount --bind ${q(src)} "$R"${q(m.mountPath)}`);
    if (m.readOnly) setup.push(`mount -o remount,bind,ro "$R"${q(m.mountPath)}`);
  }
  for (const [dest, src] of Object.entries(opts.files ?? {})) setup.push(`cp ${q(src)} "$R"${q(dest)}`);
  setup.push(`exec chroot "$R" setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all --no-new-privs -- sh -c ${q(script)}`);
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', setup.join('\n')], {
    encoding: 'utf8',
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...opts.env },
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A shared object whose constructor writes `marker`: proof that someone loaded it. */
export function buildEvilSo(dir: string, marker: string): string {
  const c = path.join(dir, 'evil.c');
  const so = path.join(dir, 'evil.so');
  fs.writeFileSync(
    c,
    `#include <stdio.h>\n#include <unistd.h>\n__attribute__((constructor)) static void pwn(void) { FILE *f = fopen(${JSON.stringify(marker)}, "a"); if (f) { fprintf(f, "uid %d ran attacker code\\n", (int)getuid()); fclose(f); } }\n`,
  );
  const r = spawnSync('gcc', ['-shared', '-fPIC', '-o', so, c], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc: ${r.stderr}`);
  return so;
}
