/**
 * Per-VF exclusive lock on a file in the state dir, taken with flock(2). The kernel drops it when
 * the holder dies, so a SIGKILLed plugin never leaves a VF locked.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { native } from '../native';
import { CniCode, UnderlayError } from '../errors';

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

export class VfLock {
  private constructor(private fd: number) {}

  /**
   * Wait up to timeoutMs for the lock. The wait yields to the event loop: in the CNI server other
   * calls run meanwhile, among them the one holding the lock, which may itself be waiting for the
   * agent or an IPAM plugin (a blocking sleep there would freeze both until the timeout). flock
   * conflicts between two open file descriptions of the same process too, so calls in one server
   * exclude each other as separate CNI processes do.
   */
  static async acquire(stateDir: string, pciAddr: string, timeoutMs: number): Promise<VfLock> {
    const dir = path.join(stateDir, 'locks');
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EROFS') throw e;
    }
    const fd = openLockFile(path.join(dir, `${pciAddr}.lock`));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (native().flock(fd, LOCK_EX | LOCK_NB)) return new VfLock(fd);
      if (Date.now() >= deadline) {
        fs.closeSync(fd);
        throw new UnderlayError(
          CniCode.DeviceBusy,
          `VF ${pciAddr} is locked by another CNI invocation for more than ${timeoutMs} ms`,
          'another ADD/DEL on the same VF is still running; the runtime will retry',
        );
      }
      await sleep(5);
    }
  }

  release(): void {
    if (this.fd < 0) return;
    native().flock(this.fd, LOCK_UN);
    fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/**
 * flock needs only a readable fd: on a read-only state dir (remounted after an error) an existing
 * lock file still locks, so DEL can restore the VF. A missing one there fails clearly.
 */
function openLockFile(file: string): number {
  try {
    return fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EROFS') throw e;
    try {
      return fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    } catch {
      throw new UnderlayError(CniCode.IoFailure, `state dir is read-only and has no lock file ${file}: ${(e as Error).message}`);
    }
  }
}
