/**
 * `npm run release`: the tarball holds the executables, the manifests and examples, and checksums
 * that verify; the CNI shim inside answers VERSION from the unpacked tree through the standalone CNI
 * shipped beside it (no CNI server here).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect, it } from 'vitest';
import { REPO, requireBinary } from '../fixtures/cni';

it('assembles a verifiable release tarball', () => {
  requireBinary();
  const out = execFileSync('node', ['scripts/release.mjs'], { cwd: REPO, encoding: 'utf8' });
  const tarball = path.join(REPO, out.trim().split(/\s+/)[0] as string);
  expect(fs.existsSync(tarball)).toBe(true);
  const sum = fs.readFileSync(`${tarball}.sha256`, 'utf8');
  expect(spawnSync('sha256sum', ['-c', path.basename(`${tarball}.sha256`)], { cwd: path.dirname(tarball) }).status, sum).toBe(0);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'release-'));
  try {
    execFileSync('tar', ['-xzf', tarball, '-C', tmp]);
    const [top] = fs.readdirSync(tmp);
    const dir = path.join(tmp, top as string);
    for (const b of ['sriov-underlay', 'sriov-underlay-cni', 'sriov-underlay-node', 'kubectl-sriov']) expect(fs.statSync(path.join(dir, 'bin', b)).mode & 0o111).not.toBe(0);
    for (const f of ['deploy/40-daemonset.yaml', 'deploy/10-crds.yaml', 'configmaps/networks.yaml', 'docs/cni.md', 'README.md']) expect(fs.existsSync(path.join(dir, f)), f).toBe(true);
    expect(spawnSync('sha256sum', ['--quiet', '-c', 'SHA256SUMS'], { cwd: dir }).status).toBe(0);
    const v = spawnSync(path.join(dir, 'bin/sriov-underlay'), [], { input: '{"cniVersion":"1.1.0"}', env: { CNI_COMMAND: 'VERSION', SRIOV_UNDERLAY_CNI_SOCKET: path.join(tmp, 'absent.sock') }, encoding: 'utf8' });
    expect(JSON.parse(v.stdout)).toMatchObject({ cniVersion: '1.1.0', supportedVersions: expect.arrayContaining(['1.1.0']) });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}, 180_000);
