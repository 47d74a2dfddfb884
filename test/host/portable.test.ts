/**
 * Every shipped executable (the C shim included) must start on any x86-64 CPU Node 20 runs on, not
 * only on one like the build machine's. Each runs under Debian's qemu-user with CPU models unlike this machine's (an AMD
 * EPYC with AVX-512 when this was written), through the kernel's ordinary exec path: no snapshot
 * whose V8 tag names the build CPU's features, and program headers where every loader looks.
 *
 * The models span Node 20's range: qemu64 is the x86-64 baseline (SSE2/SSE3, no SSSE3, no
 * SSE4); Node 20 runs even with SSE3 masked off. Nehalem adds SSE4.2/POPCNT (x86-64-v2),
 * SandyBridge AVX, Haswell-noTSX AVX2/BMI/FMA (x86-64-v3) with no AVX-512. The snapshot build
 * exited 14 on the first three; Haswell-noTSX has every feature V8 hashed on this machine, so it
 * checks only the rest (program headers, addon, code cache) at the AVX2 level.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PATH_PREFIXES_ENV, TEST_PATH_PREFIXES } from '../fixtures/cni';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'dist', 'bin');
/** The standalone Node CNI; the shim kubelet runs is SHIM (a static C program, no Node). */
const CNI = path.join(BIN, 'sriov-underlay-cni');
const SHIM = path.join(BIN, 'sriov-underlay');
const NODE_DAEMON = path.join(BIN, 'sriov-underlay-node');
const CLI = path.join(BIN, 'kubectl-sriov');
const BARE_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

/** CPU model → the features (sse4_2 avx avx2 avx512f) a program sees on it. */
const MODELS: Record<string, string> = {
  qemu64: '0 0 0 0',
  Nehalem: '1 0 0 0',
  SandyBridge: '1 1 0 0',
  'Haswell-noTSX': '1 1 1 0',
};

interface Run {
  status: number | null;
  stdout: string;
  /** qemu's own warnings about features TCG cannot emulate removed */
  stderr: string;
}

function underQemu(cpu: string, file: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): Run {
  const r = spawnSync('qemu-x86_64', ['-cpu', cpu, file, ...args], {
    env: { ...BARE_ENV, ...opts.env },
    input: opts.input ?? '',
    encoding: 'utf8',
    timeout: 120_000,
  });
  const stderr = r.stderr
    .split('\n')
    .filter((l) => l && !l.startsWith('qemu-x86_64: warning: TCG doesn'))
    .join('\n');
  return { status: r.status, stdout: r.stdout, stderr };
}

describe('the executables start on CPUs unlike the build machine', () => {
  let scratch: string;
  let cpuProbe: string;

  beforeAll(() => {
    if (spawnSync('qemu-x86_64', ['--version']).error) {
      execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'qemu-user'], {
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
        stdio: 'pipe',
      });
    }
    for (const f of [SHIM, CNI, NODE_DAEMON, CLI]) expect(fs.existsSync(f), `${f} missing: run npm run build`).toBe(true);
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'portable-'));
    // The control: proves each model really hides the features the build machine has.
    const src = path.join(scratch, 'cpu.c');
    fs.writeFileSync(
      src,
      `#include <stdio.h>
int main(void) {
  __builtin_cpu_init();
  printf("%d %d %d %d\\n", !!__builtin_cpu_supports("sse4.2"), !!__builtin_cpu_supports("avx"),
         !!__builtin_cpu_supports("avx2"), !!__builtin_cpu_supports("avx512f"));
  return 0;
}
`,
    );
    cpuProbe = path.join(scratch, 'cpu');
    execFileSync('gcc', ['-O0', '-o', cpuProbe, src]);
  }, 300_000);

  afterAll(() => {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  it('places the program headers where load bias + e_phoff says (Linux < 5.18, qemu-user)', () => {
    for (const f of [CNI, NODE_DAEMON, CLI]) {
      const out = execFileSync('readelf', ['-hlW', f], { encoding: 'utf8' });
      const phoff = Number(/Start of program headers:\s+(\d+)/.exec(out)?.[1]);
      const load = /^\s+LOAD\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)/m.exec(out);
      const phdr = /^\s+PHDR\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)/m.exec(out);
      expect(load && phdr, `${f}: no LOAD or PHDR in\n${out}`).toBeTruthy();
      expect(Number(phdr![1]), f).toBe(Number(load![2]) - Number(load![1]) + phoff);
    }
  });

  it('the shim is static: no interpreter, no shared library, so no glibc floor', () => {
    const out = execFileSync('readelf', ['-hldW', SHIM], { encoding: 'utf8' });
    expect(out).toMatch(/Type:\s+DYN/); // static-pie: position independent, no loader
    expect(out).toMatch(/^\s+LOAD\s/m);
    expect(out).not.toMatch(/INTERP|\(NEEDED\)/);
  });

  it('carries no path of the build tree, and the addon needs no glibc newer than node (2.28)', () => {
    for (const f of [SHIM, CNI, NODE_DAEMON, CLI]) expect(fs.readFileSync(f).indexOf(ROOT), f).toBe(-1);
    const addon = path.join(ROOT, 'native', 'build', 'Release', 'sriov_native.node');
    const versions = [...execFileSync('objdump', ['-T', addon], { encoding: 'utf8' }).matchAll(/GLIBC_(\d+)\.(\d+)/g)];
    expect(versions.length).toBeGreaterThan(0);
    for (const [v, major, minor] of versions) expect(Number(major) * 1000 + Number(minor), v).toBeLessThanOrEqual(2028);
  });

  for (const [cpu, features] of Object.entries(MODELS)) {
    describe(`-cpu ${cpu}`, () => {
      it('hides the features it should (the control)', () => {
        const host = execFileSync(cpuProbe, { encoding: 'utf8' }).trim();
        const r = underQemu(cpu, cpuProbe, []);
        expect(r.stdout.trim(), `host: ${host}`).toBe(features);
      });

      it('the CNI answers VERSION, and STATUS (which loads the native addon and opens netlink)', () => {
        const version = underQemu(cpu, CNI, [], { env: { CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.1.0"}' });
        expect(version.stderr).toBe('');
        expect(version.status).toBe(0);
        expect(JSON.parse(version.stdout)).toMatchObject({ supportedVersions: expect.arrayContaining(['1.1.0']) });

        const netconf = { cniVersion: '1.1.0', name: 'portable', type: 'sriov-underlay', logFile: '', stateDir: path.join(scratch, `state-${cpu}`) };
        const status = underQemu(cpu, CNI, [], { env: { CNI_COMMAND: 'STATUS', CNI_PATH: '/opt/cni/bin', [PATH_PREFIXES_ENV]: TEST_PATH_PREFIXES }, input: JSON.stringify(netconf) });
        expect(status.stderr + status.stdout).toBe('');
        expect(status.status).toBe(0);
      });

      it('the shim runs: its own CNI error when nothing can serve, and VERSION through the fallback', () => {
        // qemu-user runs the shim on this CPU model; the standalone CNI it execs runs natively.
        const lone = path.join(scratch, `lone-${cpu}`);
        fs.mkdirSync(lone, { recursive: true });
        fs.copyFileSync(SHIM, path.join(lone, 'sriov-underlay'));
        fs.chmodSync(path.join(lone, 'sriov-underlay'), 0o755);
        const down = { SRIOV_UNDERLAY_CNI_SOCKET: path.join(scratch, 'absent.sock') };
        const alone = underQemu(cpu, path.join(lone, 'sriov-underlay'), [], { env: { ...down, CNI_COMMAND: 'ADD' }, input: '{"cniVersion":"0.4.0"}' });
        expect(alone.stderr).toBe('');
        expect(alone.status).toBe(1);
        expect(JSON.parse(alone.stdout)).toMatchObject({ cniVersion: '0.4.0', code: 11, details: expect.stringContaining('no-socket') });
        const version = underQemu(cpu, SHIM, [], { env: { ...down, CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.1.0"}' });
        expect(version.stderr).toBe('');
        expect(version.status).toBe(0);
        expect(JSON.parse(version.stdout)).toMatchObject({ supportedVersions: expect.arrayContaining(['1.1.0']) });
      });

      it('the node daemon and kubectl-sriov answer --help', () => {
        const daemon = underQemu(cpu, NODE_DAEMON, ['--help']);
        expect(daemon.stderr).toBe('');
        expect(daemon.status).toBe(0);
        expect(daemon.stdout).toMatch(/^Usage: sriov-underlay-node /);
        const cli = underQemu(cpu, CLI, ['--help']);
        expect(cli.stderr).toBe('');
        expect(cli.status).toBe(0);
        expect(cli.stdout).toMatch(/^Usage: kubectl sriov /);
      });
    });
  }
});
