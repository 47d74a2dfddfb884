/**
 * A minimal, deterministic OCI image archive writer for the runtime tier's sandbox (pause) image:
 * an OCI image layout (oci-layout, index.json, blobs/sha256/...) in a ustar archive, every entry
 * owned by 0:0 with mtime 0, so the same input gives the same bytes and digests. One uncompressed
 * layer; `ctr images import` reads it as it reads any OCI archive. The tar bytes come from
 * scripts/oci-tar.mjs, the writer `npm run image` uses.
 */
import { createHash } from 'node:crypto';
import { writeTar, type TarEntry } from '../../scripts/oci-tar.mjs';

export type { TarEntry };

/** A ustar archive of `entries` (sorted by path), every mtime the epoch: the image's one tar writer. */
export const tar = (entries: TarEntry[]): Buffer => writeTar(entries, 0);

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface OciImage {
  /** Full reference the importer names the image by, e.g. `localhost/sriov-underlay-test/pause:1`. */
  ref: string;
  /** The root filesystem: one layer (`path` relative, directories without a trailing '/'). */
  files: TarEntry[];
  entrypoint: string[];
  labels?: Record<string, string>;
}

export interface OciArchive {
  archive: Buffer;
  manifestDigest: string;
  configDigest: string;
}

const json = (o: unknown): Buffer => Buffer.from(JSON.stringify(o));

export function ociArchive(img: OciImage): OciArchive {
  const layer = tar(img.files);
  const config = json({
    architecture: 'amd64',
    os: 'linux',
    config: { Entrypoint: img.entrypoint, Labels: img.labels ?? {} },
    rootfs: { type: 'layers', diff_ids: [sha256(layer)] },
  });
  const manifest = json({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
  });
  const tag = img.ref.slice(img.ref.lastIndexOf(':') + 1);
  const index = json({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: sha256(manifest),
      size: manifest.length,
      annotations: { 'io.containerd.image.name': img.ref, 'org.opencontainers.image.ref.name': tag },
    }],
  });
  const file = (path: string, data: Buffer): TarEntry => ({ path, type: 'file', mode: 0o644, data });
  const blob = (b: Buffer): TarEntry => file(`blobs/sha256/${sha256(b).slice(7)}`, b);
  const archive = tar([
    file('oci-layout', json({ imageLayoutVersion: '1.0.0' })),
    file('index.json', index),
    { path: 'blobs', type: 'dir', mode: 0o755 },
    { path: 'blobs/sha256', type: 'dir', mode: 0o755 },
    blob(config),
    blob(layer),
    blob(manifest),
  ]);
  return { archive, manifestDigest: sha256(manifest), configDigest: sha256(config) };
}
