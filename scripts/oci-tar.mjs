/**
 * A deterministic tar writer for OCI layers and archives: POSIX ustar headers only (no pax
 * extended headers, so no atime/ctime), entries in byte order of their path, every field given by
 * the caller (mode, uid/gid 0, one mtime). The same entries always give the same bytes.
 */

const BLOCK = 512;

function octal(value, width) {
  const s = value.toString(8);
  if (s.length > width - 1) throw new Error(`tar: ${value} does not fit in ${width - 1} octal digits`);
  return s.padStart(width - 1, '0') + '\0';
}

/** ustar splits a long path into prefix (≤155) + '/' + name (≤100). */
function splitPath(p) {
  const bytes = Buffer.byteLength(p);
  if (bytes <= 100) return { name: p, prefix: '' };
  for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) {
    const prefix = p.slice(0, i);
    const name = p.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name.length > 0) return { name, prefix };
  }
  throw new Error(`tar: path too long for ustar: ${p}`);
}

function header({ path: p, type, mode, size, mtime, linkname = '' }) {
  const h = Buffer.alloc(BLOCK);
  const { name, prefix } = splitPath(p);
  if (Buffer.byteLength(linkname) > 100) throw new Error(`tar: link target too long for ustar: ${linkname}`);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 8, 'ascii');
  h.write(octal(0, 8), 108, 8, 'ascii'); // uid
  h.write(octal(0, 8), 116, 8, 'ascii'); // gid
  h.write(octal(size, 12), 124, 12, 'ascii');
  h.write(octal(mtime, 12), 136, 12, 'ascii');
  h.write('        ', 148, 8, 'ascii'); // checksum placeholder: spaces while summing
  h.write(type, 156, 1, 'ascii');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write(octal(0, 8), 329, 8, 'ascii'); // devmajor
  h.write(octal(0, 8), 337, 8, 'ascii'); // devminor
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return h;
}

/**
 * entries: { path (relative, no leading '/'), type: 'dir' | 'file' | 'symlink', mode, data?: Buffer,
 * target?: string }. Directories get a trailing '/'. Returns the whole archive.
 */
export function writeTar(entries, mtime) {
  const sorted = [...entries].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  const parts = [];
  for (const e of sorted) {
    if (e.path.startsWith('/') || e.path.split('/').includes('..')) throw new Error(`tar: bad path ${e.path}`);
    if (e.type === 'dir') {
      parts.push(header({ path: `${e.path}/`, type: '5', mode: e.mode, size: 0, mtime }));
    } else if (e.type === 'symlink') {
      parts.push(header({ path: e.path, type: '2', mode: e.mode, size: 0, mtime, linkname: e.target }));
    } else if (e.type === 'file') {
      parts.push(header({ path: e.path, type: '0', mode: e.mode, size: e.data.length, mtime }));
      parts.push(e.data);
      const pad = (BLOCK - (e.data.length % BLOCK)) % BLOCK;
      if (pad) parts.push(Buffer.alloc(pad));
    } else {
      throw new Error(`tar: unknown entry type ${e.type} for ${e.path}`);
    }
  }
  parts.push(Buffer.alloc(BLOCK * 2)); // end of archive
  return Buffer.concat(parts);
}
