/**
 * The writes the node policy makes to sysfs: sriov_numvfs and VF driver binding. Everything is
 * read back through src/sysfs/pci.ts (the one reader); this file only writes. The writer is
 * injectable so the host tier can put a kernel emulation behind a generated tree
 * (test/fixtures/sysfs-kernel.ts); the daemon uses plain file writes on /sys.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sysfsDevicePath } from '../../src/sysfs/pci';

export interface SysfsWriter {
  /** Write `value` to the sysfs attribute at `file` (absolute). Throws the kernel's errno. */
  write(file: string, value: string): void;
}

export const fileWriter: SysfsWriter = {
  write(file, value) {
    fs.writeFileSync(file, value);
  },
};

/** "write 8 to .../sriov_numvfs: EBUSY (Device or resource busy)": the driver's refusal, verbatim. */
export class SysfsWriteError extends Error {
  override name = 'SysfsWriteError';
  constructor(
    readonly file: string,
    readonly value: string,
    readonly code: string | undefined,
    detail: string,
  ) {
    super(`write ${JSON.stringify(value.trim())} to ${file}: ${detail}`);
  }
}

function write(w: SysfsWriter, file: string, value: string): void {
  try {
    w.write(file, value);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new SysfsWriteError(file, value, err.code, err.message);
  }
}

/** Set a PF's VF count. Drivers refuse one non-zero count to another: this goes through 0. */
export function writeNumVfs(w: SysfsWriter, root: string, pfPci: string, from: number, to: number): void {
  const file = path.join(sysfsDevicePath(root, pfPci), 'sriov_numvfs');
  if (from !== 0) write(w, file, '0');
  if (to !== 0) write(w, file, String(to));
}

/**
 * Bind a VF to `driver` ("vfio-pci"), or with null back to the kernel's own VF driver: set (or clear)
 * driver_override, unbind from the current driver, and ask the PCI core to probe it again.
 */
export function rebindVf(w: SysfsWriter, root: string, vfPci: string, current: string | null, driver: string | null): void {
  const dev = sysfsDevicePath(root, vfPci);
  write(w, path.join(dev, 'driver_override'), driver === null ? '\n' : driver);
  if (current !== null) write(w, path.join(root, 'bus/pci/drivers', current, 'unbind'), vfPci);
  write(w, path.join(root, 'bus/pci/drivers_probe'), vfPci);
}
