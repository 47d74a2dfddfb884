/**
 * Per-VF exclusive lock on a file in the state dir, taken with flock(2). The kernel drops it when
 * the holder dies, so a SIGKILLed plugin never leaves a VF locked.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../native';
import { CniCode, UnderlayError } from '../errors';

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

export class VfLock {
  private constructor(private fd: number) {}

  /** Wait up to timeoutMs for the lock; the wait is a blocking sleep since the CNI has nothing else to do. */
  static acquire(stateDir: string, pciAddr: string, timeoutMs: number): VfLock {
    const dir = path.join(stateDir, 'locks');
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const fd = fs.openSync(path.join(dir, `${pciAddr}.lock`), fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
    const deadline = Date.now() + timeoutMs;
    const nap = new Int32Array(new SharedArrayBuffer(4));
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
      Atomics.wait(nap, 0, 0, 5);
    }
  }

  release(): void {
    if (this.fd < 0) return;
    native().flock(this.fd, LOCK_UN);
    fs.closeSync(this.fd);
    this.fd = -1;
  }
}
