/**
 * `npm run release`: the tarball holds the one executable once, its other names as links, the OCI
 * archive with its manifest digest, the manifests and examples, and checksums that verify; the standalone CNI, the shim (through the
 * standalone beside it: no CNI server here) and the CLI inside answer when run from the unpacked tree.
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
    expect(fs.statSync(path.join(dir, 'bin', 'sriov-underlay-node')).mode & 0o111).not.toBe(0);
    // Shipped once: the other names are links to it, not copies.
    for (const l of ['kubectl-sriov', 'sriov-underlay-cni']) expect(fs.readlinkSync(path.join(dir, 'bin', l))).toBe('sriov-underlay-node');
    const big = fs.readdirSync(path.join(dir, 'bin')).filter((b) => fs.lstatSync(path.join(dir, 'bin', b)).size > 10e6);
    expect(big).toEqual(['sriov-underlay-node']);
    // The shim: small, and a real file.
    expect(fs.lstatSync(path.join(dir, 'bin', 'sriov-underlay')).isFile()).toBe(true);
    // Links are summed by their target, once.
    expect(fs.readFileSync(path.join(dir, 'SHA256SUMS'), 'utf8').match(/ {2}bin\//g)?.length).toBe(2);
    // The image, and its digest: the one the archive's own index names.
    const version = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
    const archive = path.join(dir, 'image', `sriov-underlay-${version}.oci.tar`);
    const index = JSON.parse(execFileSync('tar', ['-xOf', archive, 'index.json'], { encoding: 'utf8' })) as { manifests: Array<{ digest: string }> };
    expect(fs.readFileSync(path.join(dir, 'image', `sriov-underlay-${version}.digest`), 'utf8')).toBe(`${index.manifests[0]?.digest}\n`);
    expect(fs.readFileSync(path.join(dir, 'SHA256SUMS'), 'utf8')).toContain(`  image/sriov-underlay-${version}.oci.tar\n`);
    for (const f of ['deploy/40-daemonset.yaml', 'deploy/10-crds.yaml', 'configmaps/networks.yaml', 'docs/cni.md', 'README.md']) expect(fs.existsSync(path.join(dir, f)), f).toBe(true);
    expect(spawnSync('sha256sum', ['--quiet', '-c', 'SHA256SUMS'], { cwd: dir }).status).toBe(0);
    const v = spawnSync(path.join(dir, 'bin/sriov-underlay-cni'), [], { input: '{"cniVersion":"1.1.0"}', env: { CNI_COMMAND: 'VERSION' }, encoding: 'utf8' });
    expect(JSON.parse(v.stdout)).toMatchObject({ cniVersion: '1.1.0', supportedVersions: expect.arrayContaining(['1.1.0']) });
    // The shim answers through the standalone shipped beside it (no CNI server here).
    const viaShim = spawnSync(path.join(dir, 'bin/sriov-underlay'), [], { input: '{"cniVersion":"1.1.0"}', env: { CNI_COMMAND: 'VERSION', SRIOV_UNDERLAY_CNI_SOCKET: path.join(tmp, 'absent.sock') }, encoding: 'utf8' });
    expect(JSON.parse(viaShim.stdout)).toMatchObject({ cniVersion: '1.1.0', supportedVersions: expect.arrayContaining(['1.1.0']) });
    const cli = spawnSync(path.join(dir, 'bin/kubectl-sriov'), ['--help'], { encoding: 'utf8' });
    expect(cli.stdout).toContain('Usage: kubectl sriov COMMAND');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
// The image build and the tarball took 733 s at load 24 on 2 cores.
}, 1_200_000);
