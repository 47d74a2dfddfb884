// Types for oci-tar.mjs (the one ustar writer; the test tree's pause image uses it too).
export interface TarEntry {
  /** Relative, no leading '/' and no '..'; directories without their trailing '/'. */
  path: string;
  type: 'dir' | 'file' | 'symlink';
  mode: number;
  data?: Buffer;
  target?: string;
}
/** The whole archive: entries in byte order of their path, uid/gid 0, every mtime `mtime`. */
export function writeTar(entries: TarEntry[], mtime: number): Buffer;
