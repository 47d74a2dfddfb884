/**
 * Which VFs are allocated to pods. The device-plugin API never tells a plugin that a device was
 * freed, so this combines two sources:
 *  - kubelet's device-manager checkpoint (device-plugins/kubelet_internal_checkpoint), which kubelet
 *    rewrites after every allocation and when it drops terminated pods from its books;
 *  - the Allocate calls this daemon answered, for the moment between our answer and kubelet's next
 *    checkpoint write. An answer is forgotten once a checkpoint written after it no longer lists it.
 * Without a checkpoint file (or one that cannot be parsed) the answered calls are all we know, and
 * they count as allocated until the daemon restarts. See docs/device-plugin.md for the limits.
 */
import * as fs from 'node:fs';
import { readKubeletCheckpoint } from '../../src/state/kubelet-checkpoint';

export const CHECKPOINT_FILE = 'kubelet_internal_checkpoint';

const SETTLE_MARGIN_MS = 20;

const key = (resource: string, pci: string) => `${resource}\u0000${pci}`;

export class AllocationTracker {
  private fromCheckpoint = new Set<string>();
  private checkpointMtime = -1;
  private checkpointError: string | null = null;
  /** key -> wall-clock ms of our Allocate answer */
  private answered = new Map<string, number>();

  constructor(private readonly checkpointPath: string) {}

  recordAllocate(resource: string, pcis: readonly string[], now = Date.now()): void {
    for (const p of pcis) this.answered.set(key(resource, p), now);
  }

  /** Re-read the checkpoint if it changed. Returns true when the allocated set may have changed. */
  refresh(): boolean {
    let st: fs.Stats;
    try {
      st = fs.statSync(this.checkpointPath);
    } catch {
      const had = this.checkpointMtime !== -1;
      this.checkpointMtime = -1;
      this.fromCheckpoint.clear();
      return had;
    }
    if (st.mtimeMs === this.checkpointMtime) return false;
    this.checkpointMtime = st.mtimeMs;
    const next = new Set<string>();
    try {
      for (const e of readKubeletCheckpoint(this.checkpointPath) ?? []) for (const id of e.deviceIds) next.add(key(e.resource, id));
      this.checkpointError = null;
    } catch (err) {
      // A half-written or unknown-format checkpoint: keep what we knew rather than free everything.
      this.checkpointError = (err as Error).message;
      return false;
    }
    this.fromCheckpoint = next;
    // Answers older than this checkpoint are settled by it: listed there, or freed. The margin
    // covers the file system's coarse clock; a write within it settles the answer next time.
    for (const [k, at] of this.answered) if (at < this.checkpointMtime - SETTLE_MARGIN_MS) this.answered.delete(k);
    return true;
  }

  isAllocated(resource: string, pci: string): boolean {
    const k = key(resource, pci);
    return this.fromCheckpoint.has(k) || this.answered.has(k);
  }

  allocatedCount(resource: string, pcis: Iterable<string>): number {
    let n = 0;
    for (const p of pcis) if (this.isAllocated(resource, p)) n++;
    return n;
  }

  get lastCheckpointError(): string | null {
    return this.checkpointError;
  }
}
