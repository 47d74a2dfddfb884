/**
 * A built single executable must work on its own, the way installers copy a CNI plugin into
 * /opt/cni/bin: copied alone into an empty directory, run from elsewhere with a bare environment,
 * it still loads its native addon (carried as a SEA asset) and never touches the repository.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..', '..');
const PROBE = path.join(ROOT, 'dist', 'test', 'sea-probe');
const BARE_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

describe('single executable (sea-probe, built by scripts/build.mjs)', () => {
  let scratch: string;
  let installDir: string;
  let workDir: string;
  let installed: string;

  beforeAll(() => {
    // The same code path as the real executables, through the test-only target.
    execFileSync(process.execPath, ['scripts/build.mjs', '--only', 'sea-probe'], { cwd: ROOT, stdio: 'pipe' });
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'pk-sea-'));
    installDir = path.join(scratch, 'opt-cni-bin');
    workDir = path.join(scratch, 'elsewhere');
    fs.mkdirSync(installDir);
    fs.mkdirSync(workDir);
    installed = path.join(installDir, 'sea-probe');
    fs.copyFileSync(PROBE, installed);
  });

  afterAll(() => {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  it('is one executable file, and stays executable when copied alone', () => {
    expect(fs.statSync(PROBE).mode & 0o111).toBe(0o111);
    expect(fs.readdirSync(installDir)).toEqual(['sea-probe']);
    expect(fs.statSync(installed).mode & 0o111).toBe(0o111);
  });

  it('runs from another directory with a bare environment and loads the addon from itself', () => {
    const r = spawnSync(installed, [], { cwd: workDir, env: BARE_ENV, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { sea: boolean; locked: boolean; execPath: string };
    // sea: the SEA path of src/native.ts ran (not the repository fallback); locked: the addon's
    // flock really ran on a file in the working directory.
    expect(out).toEqual({ sea: true, locked: true, execPath: installed });
    expect(fs.existsSync(path.join(workDir, 'sea-probe.lock'))).toBe(true);
  });

  it('loads its addon from its own directory when /run, /dev/shm and the tmp dir are all noexec', () => {
    // Outside the tmp dir, which the private mount namespace below hides.
    const dir = fs.mkdtempSync(path.join('/var/tmp', 'pk-sea-noexec-'));
    try {
      fs.copyFileSync(installed, path.join(dir, 'sea-probe'));
      fs.chmodSync(path.join(dir, 'sea-probe'), 0o755);
      const mounts = ['/run', '/dev/shm', os.tmpdir()].map((m) => `mount -t tmpfs -o noexec,size=8m tmpfs ${m}`).join(' && ');
      const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `${mounts} && cd ${dir} && ./sea-probe`], {
        env: BARE_ENV,
        encoding: 'utf8',
      });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ sea: true, locked: true });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('opens nothing under the repository while it runs', () => {
    const trace = path.join(scratch, 'strace.txt');
    const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=%file', '-o', trace, installed], {
      cwd: workDir,
      env: BARE_ENV,
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    const lines = fs.readFileSync(trace, 'utf8').split('\n');
    // The trace is real: it saw the executable being started and the addon being loaded.
    expect(lines.some((l) => l.includes(`execve("${installed}"`))).toBe(true);
    // The addon is written to an unnamed inode and loaded through /proc/self/fd (src/native.ts).
    expect(lines.some((l) => /openat\(.*O_TMPFILE/.test(l))).toBe(true);
    expect(lines.some((l) => /openat\(.*"\/proc\/self\/fd\/\d+"/.test(l))).toBe(true);
    expect(lines.filter((l) => l.includes(`${ROOT}/`) || l.includes(`"${ROOT}"`))).toEqual([]);
  });
});
