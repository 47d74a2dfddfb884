/**
 * A minimal, deterministic OCI image archive writer for the runtime tier's sandbox (pause) image:
 * an OCI image layout (oci-layout, index.json, blobs/sha256/...) in a ustar archive, every entry
 * owned by 0:0 with mtime 0, so the same input gives the same bytes and digests. One uncompressed
 * layer; `ctr images import` reads it as it reads any OCI archive. (Kept to what a one-file image
 * needs: names under 100 bytes, regular files and directories only.)
 */
import { createHash } from 'node:crypto';

export interface TarEntry {
  /** Relative path; directories end with '/'. */
  name: string;
  data?: Buffer;
  mode?: number;
}

const BLOCK = 512;

function header(name: string, size: number, mode: number, dir: boolean): Buffer {
  if (Buffer.byteLength(name) > 99) throw new Error(`tar entry name longer than 99 bytes: ${name}`);
  const h = Buffer.alloc(BLOCK);
  const put = (s: string, off: number, len: number) => h.write(s, off, len, 'ascii');
  const oct = (n: number, len: number) => n.toString(8).padStart(len - 1, '0') + '\0';
  h.write(name, 0, 100, 'utf8');
  put(oct(mode, 8), 100, 8);
  put(oct(0, 8), 108, 8); // uid
  put(oct(0, 8), 116, 8); // gid
  put(oct(size, 12), 124, 12);
  put(oct(0, 12), 136, 12); // mtime: the epoch, for reproducible archives
  put('        ', 148, 8); // checksum placeholder (spaces while summing)
  put(dir ? '5' : '0', 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  put('root', 265, 32);
  put('root', 297, 32);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}

/** A ustar archive of `entries`, in the order given, ending with the two zero blocks. */
export function tar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const dir = e.name.endsWith('/');
    const data = dir ? Buffer.alloc(0) : (e.data ?? Buffer.alloc(0));
    parts.push(header(e.name, data.length, e.mode ?? (dir ? 0o755 : 0o644), dir), data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface OciImage {
  /** Full reference the importer names the image by, e.g. `localhost/sriov-underlay-test/pause:1`. */
  ref: string;
  /** The root filesystem: one layer. */
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
  const blob = (b: Buffer): TarEntry => ({ name: `blobs/sha256/${sha256(b).slice(7)}`, data: b });
  const archive = tar([
    { name: 'oci-layout', data: json({ imageLayoutVersion: '1.0.0' }) },
    { name: 'index.json', data: index },
    { name: 'blobs/' },
    { name: 'blobs/sha256/' },
    blob(config),
    blob(layer),
    blob(manifest),
  ]);
  return { archive, manifestDigest: sha256(manifest), configDigest: sha256(config) };
}
