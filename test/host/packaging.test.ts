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
const BIN = path.join(ROOT, 'dist', 'bin');
const EXE = path.join(BIN, 'sriov-underlay-node');

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
    expect(out).toMatchObject({ sea: true, locked: true, execPath: installed });
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

describe('the one executable (dist/bin/sriov-underlay-node and its names)', () => {
  let scratch: string;
  beforeAll(() => {
    if (!fs.existsSync(EXE)) throw new Error(`${EXE} not built: run npm run build`);
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'pk-one-'));
  });
  afterAll(() => {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  const cniVersion = (file: string, args: string[] = [], argv0?: string) => {
    const r = spawnSync(file, args, { input: '{"cniVersion":"1.1.0"}', env: { CNI_COMMAND: 'VERSION' }, encoding: 'utf8', ...(argv0 ? { argv0 } : {}) });
    return { ...r, reply: r.status === 0 ? (JSON.parse(r.stdout) as { supportedVersions?: string[] }) : null };
  };

  it('a SEA sees a link\'s name in argv0 (argv[1]); argv[0] and execPath are the resolved file', () => {
    const link = path.join(scratch, 'kubectl-sriov');
    fs.symlinkSync(PROBE, link);
    const r = spawnSync(link, ['x'], { cwd: scratch, env: BARE_ENV, encoding: 'utf8' });
    expect(JSON.parse(r.stdout)).toMatchObject({ execPath: PROBE, argv0: link, argv: [PROBE, link, 'x'] });
  });

  it('dist/bin holds it once; the other names are links to it', () => {
    expect(fs.lstatSync(EXE).isFile()).toBe(true);
    for (const l of ['kubectl-sriov', 'sriov-underlay-cni']) expect(fs.readlinkSync(path.join(BIN, l))).toBe('sriov-underlay-node');
  });

  it('runs the program its name or first argument says, through links and as a copy installed alone', () => {
    expect(cniVersion(path.join(BIN, 'sriov-underlay-cni')).reply?.supportedVersions).toContain('1.1.0');
    expect(cniVersion(EXE, ['cni']).reply?.supportedVersions).toContain('1.1.0');
    // As the installer puts it on a node: a copy alone in /opt/cni/bin, run with a bare environment.
    const copy = path.join(scratch, 'sriov-underlay-cni');
    fs.copyFileSync(EXE, copy);
    fs.chmodSync(copy, 0o755);
    expect(cniVersion(copy).reply?.supportedVersions).toContain('1.1.0');
    // A shim that execs it with its own argv[0] (the CNI type's name) still gets the CNI.
    expect(cniVersion(copy, [], '/opt/cni/bin/sriov-underlay').reply?.supportedVersions).toContain('1.1.0');
    const cli = spawnSync(path.join(BIN, 'kubectl-sriov'), ['--help'], { encoding: 'utf8' });
    expect(cli.stdout).toContain('Usage: kubectl sriov COMMAND');
    expect(spawnSync(EXE, ['cli', '--help'], { encoding: 'utf8' }).stdout).toContain('Usage: kubectl sriov COMMAND');
    const daemon = spawnSync(EXE, ['--help'], { encoding: 'utf8' });
    expect(daemon.stdout).toContain('Usage: sriov-underlay-node');
    // Under the CLI's name, "daemon" is an unknown CLI command: no daemon started from kubectl.
    const notDaemon = spawnSync(path.join(BIN, 'kubectl-sriov'), ['daemon', '--help'], { encoding: 'utf8', timeout: 20_000 });
    expect(notDaemon.status).toBe(2);
    expect(notDaemon.stderr).toContain('unknown command "daemon"');
  });

  it('its main script is the CNI alone: the daemon and the CLI are assets the CNI path never compiles', () => {
    // The bundle the SEA runs as its main script, as the build left it.
    const main = fs.readFileSync(path.join(ROOT, 'dist', '.build', 'sriov-underlay-node.cjs'), 'utf8');
    expect(main).toContain('supportedVersions');
    for (const daemonOrCli of ['device plugin starting', 'Usage: kubectl sriov', 'prom-client', 'KubeConfig']) expect(main, daemonOrCli).not.toContain(daemonOrCli);
    const blob = fs.readFileSync(EXE);
    for (const inAsset of ['device plugin starting', 'Usage: kubectl sriov']) expect(blob.includes(inAsset), inAsset).toBe(true);
    expect(main.length).toBeLessThan(1e6);
  });
});
