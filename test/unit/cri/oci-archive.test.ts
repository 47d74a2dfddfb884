/**
 * The runtime tier's pause image archive: reproducible byte for byte, readable by GNU tar (an
 * independent reader), and every blob stored under its own sha256 with the manifest, config and
 * layer pointing at each other as the OCI image layout requires.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { ociArchive, sha256, tar } from '../../cri/oci-archive';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

const image = (payload: string) => ({ ref: 'localhost/t/pause:1', entrypoint: ['/pause'], files: [{ path: 'pause', type: 'file' as const, data: Buffer.from(payload), mode: 0o755 }] });

function untar(archive: Buffer): { dir: string; listing: string } {
  const dir = mkdtempSync(join(tmpdir(), 'oci-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'a.tar'), archive);
  const list = spawnSync('tar', ['-tvf', join(dir, 'a.tar')], { encoding: 'utf8' });
  expect(list.status, list.stderr).toBe(0);
  const x = spawnSync('tar', ['-xf', join(dir, 'a.tar'), '-C', dir], { encoding: 'utf8' });
  expect(x.status, x.stderr).toBe(0);
  return { dir, listing: list.stdout };
}

it('the same input gives the same bytes; another input another manifest digest', () => {
  const a = ociArchive(image('x'.repeat(1000)));
  const b = ociArchive(image('x'.repeat(1000)));
  expect(b.archive.equals(a.archive)).toBe(true);
  expect(b.manifestDigest).toBe(a.manifestDigest);
  expect(ociArchive(image('y'.repeat(1000))).manifestDigest).not.toBe(a.manifestDigest);
});

it('GNU tar reads it: owned by uid/gid 0, epoch mtimes, the layout files and the blobs under their digests', () => {
  const img = ociArchive(image('#!pause'));
  const { dir, listing } = untar(img.archive);
  for (const line of listing.trim().split('\n')) expect(line).toMatch(/ 0\/0 .* 1970-01-01 00:00 /);
  expect(JSON.parse(readFileSync(join(dir, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string; size: number; annotations: Record<string, string> }[] };
  expect(index.manifests).toHaveLength(1);
  expect(index.manifests[0]!.annotations['io.containerd.image.name']).toBe('localhost/t/pause:1');
  const blob = (d: string) => readFileSync(join(dir, 'blobs/sha256', d.slice(7)));
  const m = blob(index.manifests[0]!.digest);
  expect(sha256(m)).toBe(img.manifestDigest);
  expect(m.length).toBe(index.manifests[0]!.size);
  const manifest = JSON.parse(m.toString()) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
  const config = blob(manifest.config.digest);
  expect([sha256(config), config.length]).toEqual([manifest.config.digest, manifest.config.size]);
  const layer = blob(manifest.layers[0]!.digest);
  expect([sha256(layer), layer.length]).toEqual([manifest.layers[0]!.digest, manifest.layers[0]!.size]);
  const cfg = JSON.parse(config.toString()) as { rootfs: { diff_ids: string[] }; config: { Entrypoint: string[] }; os: string; architecture: string };
  expect(cfg.rootfs.diff_ids).toEqual([sha256(layer)]);
  expect(cfg).toMatchObject({ os: 'linux', architecture: 'amd64', config: { Entrypoint: ['/pause'] } });
  // The layer itself: /pause, executable, with its content.
  const inner = untar(layer);
  expect(inner.listing).toMatch(/^-rwxr-xr-x 0\/0\s+7 1970-01-01 00:00 pause$/m);
  expect(readFileSync(join(inner.dir, 'pause'), 'utf8')).toBe('#!pause');
});

it('refuses a path ustar cannot hold instead of truncating it', () => {
  expect(() => tar([{ path: `d/${'f'.repeat(101)}`, type: 'file', mode: 0o644, data: Buffer.alloc(0) }])).toThrow(/path too long for ustar/);
});
