/**
 * The node daemon (uid 0, every capability dropped) must never get the CNI (root with every
 * capability) to run its code through the native addon. The attacker here is a real
 * capability-less uid 0 process (setpriv) with write access to the host directories the DaemonSet
 * mounts read-write into the daemon (deploy/40-daemonset.yaml); it replaces and plants shared
 * objects there, then the built CNI runs as the runtime would run it. The planted code writes a
 * marker file from its ELF constructor: the marker must never appear.
 *
 * Everything happens in a private mount namespace with fresh tmpfs over /run and /var/lib, so the
 * host's real directories are never touched.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PATH_PREFIXES_ENV, TEST_PATH_PREFIXES } from '../fixtures/cni';

const ROOT = path.resolve(__dirname, '..', '..');
const CNI = path.join(ROOT, 'dist', 'bin', 'sriov-underlay-cni');
/** The host directories the DaemonSet mounts read-write into the node daemon. */
const DAEMON_WRITABLE = [
  '/run/sriov-underlay',
  '/var/lib/cni/sriov-underlay',
  '/var/lib/kubelet/device-plugins',
  '/var/lib/kubelet/plugins_registry',
  '/run/k8s.cni.cncf.io/devinfo',
];
/** The daemon's rights: uid 0 and no capability at all, in any set. */
const AS_DAEMON = ['setpriv', '--reuid=0', '--regid=0', '--clear-groups', '--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-all', '--'];

describe('a capability-less uid 0 process with the daemon mounts cannot get code into the CNI', () => {
  let scratch: string;
  let evil: string;
  let marker: string;

  beforeAll(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'addon-trust-'));
    marker = path.join(scratch, 'PLANTED-CODE-RAN');
    const src = path.join(scratch, 'evil.c');
    fs.writeFileSync(
      src,
      `#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void planted(void) {
  int fd = open(${JSON.stringify(marker)}, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) { write(fd, "ran\\n", 4); close(fd); }
}
`,
    );
    evil = path.join(scratch, 'evil.so');
    execFileSync('gcc', ['-shared', '-fPIC', '-o', evil, src]);
  });

  afterAll(() => {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  it('replaces every file it can reach (same size, same name) and plants more: the next CNI call never runs them', () => {
    expect(fs.existsSync(CNI), `${CNI} missing: run npm run build`).toBe(true);
    const stateDir = path.join(scratch, 'state');
    const netconf = JSON.stringify({ cniVersion: '1.1.0', name: 'attack', type: 'sriov-underlay', logFile: '', stateDir });
    const cni = `printf '%s' '${netconf}' | CNI_COMMAND=STATUS CNI_PATH=/opt/cni/bin ${PATH_PREFIXES_ENV}=${TEST_PATH_PREFIXES} ${CNI}`;
    // The attacker: report its capabilities (to prove it has none), then swap every file it can
    // write for the planted object padded to the original's size, and leave copies under the
    // names an extractor would use.
    const attack = `
      grep '^Cap' /proc/self/status > ${scratch}/attacker-caps
      for d in ${DAEMON_WRITABLE.join(' ')}; do
        find "$d" -type f | while read -r f; do
          cp ${evil} "$f.new" && truncate -s "$(stat -c %s "$f")" "$f.new" && mv -f "$f.new" "$f" && echo "$f" >> ${scratch}/replaced
        done
        for n in sriov_native.node evil.node; do cp ${evil} "$d/$n"; done
      done`;
    const script = `
      set -eu
      mount -t tmpfs -o size=64m tmpfs /run
      mount -t tmpfs -o size=64m tmpfs /var/lib
      mkdir -p ${DAEMON_WRITABLE.join(' ')}
      chmod 0700 /run/sriov-underlay
      ${cni} > ${scratch}/first.out 2>&1
      ${AS_DAEMON.join(' ')} sh -c '${attack.replace(/'/g, `'\\''`)}'
      ${cni} > ${scratch}/second.out 2>&1
    `;
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { encoding: 'utf8' });
    const out = (f: string) => (fs.existsSync(path.join(scratch, f)) ? fs.readFileSync(path.join(scratch, f), 'utf8') : '');
    expect(fs.existsSync(marker), `planted code ran in the CNI; files the attacker replaced:\n${out('replaced')}`).toBe(false);
    expect(r.status, `${r.stderr}\nfirst: ${out('first.out')}\nsecond: ${out('second.out')}`).toBe(0);
    // The attacker really had no capability (so only uid 0 ownership let it write there).
    expect(out('attacker-caps')).toMatch(/CapPrm:\s+0+\n/);
    expect(out('attacker-caps')).toMatch(/CapEff:\s+0+\n/);
    expect(out('attacker-caps')).toMatch(/CapBnd:\s+0+\n/);
    // Both CNI calls loaded the addon and answered STATUS (ready: no output, exit 0).
    expect(out('first.out')).toBe('');
    expect(out('second.out')).toBe('');
    // The attack is real: the planted object does run when loaded (the control).
    // (node then refuses it, "did not self-register", after its constructor ran)
    spawnSync(process.execPath, ['-e', `process.dlopen({ exports: {} }, ${JSON.stringify(evil)})`], { stdio: 'ignore' });
    expect(fs.existsSync(marker)).toBe(true);
  });

  it("cannot reach a capable process's unnamed inode through /proc/<pid>/fd, the only handle it has", async () => {
    // A root process with every capability holds an O_TMPFILE inode, as the CNI does while it loads.
    const holder = spawn(
      process.execPath,
      ['-e', `const fs = require('fs'); const fd = fs.openSync('/dev/shm', 0o20000000 | fs.constants.O_DIRECTORY | fs.constants.O_RDWR | fs.constants.O_EXCL, 0o500); fs.writeSync(fd, 'secret'); console.log(fd); setInterval(() => {}, 1000);`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      const fd = await new Promise<number>((resolve, reject) => {
        holder.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
        holder.once('exit', (c) => reject(new Error(`holder exited ${c}`)));
      });
      const link = `/proc/${holder.pid}/fd/${fd}`;
      expect(fs.readFileSync(link, 'utf8')).toBe('secret'); // root with capabilities can: the path is right
      const asDaemon = (cmd: string) => spawnSync(AS_DAEMON[0]!, [...AS_DAEMON.slice(1), 'sh', '-c', cmd], { encoding: 'utf8' });
      for (const cmd of [`cat ${link}`, `echo x > ${link}`, `ln -L ${link} /dev/shm/stolen-${holder.pid}`]) {
        const r = asDaemon(cmd);
        expect(r.status, `${cmd} succeeded for the daemon: ${r.stdout}`).not.toBe(0);
        expect(r.stderr).toMatch(/Permission denied|Operation not permitted/);
      }
      expect(fs.existsSync(`/dev/shm/stolen-${holder.pid}`)).toBe(false);
    } finally {
      holder.kill('SIGKILL');
    }
  });
});
