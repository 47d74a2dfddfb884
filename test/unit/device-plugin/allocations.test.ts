import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AllocationTracker } from '../../../node/device-plugin/allocations';

let dir: string;
let file: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpc-'));
  file = path.join(dir, 'kubelet_internal_checkpoint');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function writeCheckpoint(entries: unknown[], mtimeMs: number): void {
  fs.writeFileSync(file, JSON.stringify({ Data: { PodDeviceEntries: entries, RegisteredDevices: {} }, Checksum: 1 }));
  fs.utimesSync(file, mtimeMs / 1000, mtimeMs / 1000);
}

describe('AllocationTracker', () => {
  it('reads both checkpoint formats (NUMA map and plain list)', () => {
    writeCheckpoint(
      [
        { PodUID: 'p1', ContainerName: 'c', ResourceName: 'x.io/a', DeviceIDs: { '0': ['0000:81:10.0'], '1': ['0000:82:10.0'] } },
        { PodUID: 'p2', ContainerName: 'c', ResourceName: 'x.io/b', DeviceIDs: ['0000:83:10.0'] },
      ],
      Date.now(),
    );
    const t = new AllocationTracker(file);
    expect(t.refresh()).toBe(true);
    expect(t.isAllocated('x.io/a', '0000:82:10.0')).toBe(true);
    expect(t.isAllocated('x.io/b', '0000:83:10.0')).toBe(true);
    expect(t.isAllocated('x.io/b', '0000:81:10.0')).toBe(false); // resource matters
    expect(t.refresh()).toBe(false); // unchanged file is not re-read
  });

  it('an answered Allocate counts until a later checkpoint settles it', () => {
    const t = new AllocationTracker(file);
    const now = Date.now();
    t.recordAllocate('x.io/a', ['0000:81:10.1'], now - 5000);
    expect(t.isAllocated('x.io/a', '0000:81:10.1')).toBe(true); // no checkpoint yet
    writeCheckpoint([{ PodUID: 'p', ContainerName: 'c', ResourceName: 'x.io/a', DeviceIDs: { '-1': ['0000:81:10.1'] } }], now - 4000);
    t.refresh();
    expect(t.isAllocated('x.io/a', '0000:81:10.1')).toBe(true); // listed by kubelet
    writeCheckpoint([], now - 1000); // the pod is gone
    t.refresh();
    expect(t.isAllocated('x.io/a', '0000:81:10.1')).toBe(false);
  });

  it('keeps what it knew when the checkpoint is unreadable', () => {
    writeCheckpoint([{ PodUID: 'p', ContainerName: 'c', ResourceName: 'x.io/a', DeviceIDs: null }], Date.now() - 2000);
    const t = new AllocationTracker(file);
    t.refresh();
    writeCheckpoint([{ PodUID: 'p', ContainerName: 'c', ResourceName: 'x.io/a', DeviceIDs: { '0': ['0000:81:10.0'] } }], Date.now() - 1000);
    t.refresh();
    fs.writeFileSync(file, '{"Data": {"PodDeviceEnt');
    expect(t.refresh()).toBe(false);
    expect(t.isAllocated('x.io/a', '0000:81:10.0')).toBe(true);
    expect(t.lastCheckpointError).toMatch(/JSON/);
  });

  it('never reads a checkpoint that is oversized, or a symlink, and keeps what it knew', () => {
    writeCheckpoint([{ PodUID: 'p', ContainerName: 'c', ResourceName: 'x.io/a', DeviceIDs: ['0000:81:10.0'] }], Date.now() - 3000);
    const t = new AllocationTracker(file);
    expect(t.refresh()).toBe(true);
    // 16 MiB and one byte of valid-looking JSON (padding in a string)
    fs.writeFileSync(file, `{"Data":{"PodDeviceEntries":[]},"pad":"${'x'.repeat(16 * 1024 * 1024)}"}`);
    fs.utimesSync(file, (Date.now() - 2000) / 1000, (Date.now() - 2000) / 1000);
    expect(t.refresh()).toBe(false);
    expect(t.isAllocated('x.io/a', '0000:81:10.0')).toBe(true);
    expect(t.lastCheckpointError).toMatch(/bytes, more than the 16777216 allowed/);
    // a symlink to another file (which would list nothing) is refused, not followed
    const other = path.join(dir, 'other');
    fs.writeFileSync(other, JSON.stringify({ Data: { PodDeviceEntries: [] } }));
    fs.rmSync(file);
    fs.symlinkSync(other, file);
    expect(t.refresh()).toBe(false);
    expect(t.isAllocated('x.io/a', '0000:81:10.0')).toBe(true);
    expect(t.lastCheckpointError).toMatch(/symlink/);
  });
});
