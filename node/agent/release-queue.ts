/**
 * The agent's side of queued claim releases (see cni/claim-release.ts). Each note is retried until
 * the release succeeds, then removed; the directory is re-scanned on change and on a timer, so a
 * note written while the agent was down or the API unreachable is handled later. Notes are read
 * through the schema, bounded in size, never through a symlink (src/state/bounded-file.ts). A note
 * that is not valid is set aside (`*.bad-<ms>`) and logged, so it cannot block the queue; one of a
 * newer format (a rollback) is logged once and left for the release that wrote it. The CNI's temp
 * files (`.<random>.tmp`) that a killed DEL left are removed once stale (listEntries).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../src/log';
import { listEntries, removeFileDurable, setAside } from '../../src/state/atomic-file';
import { CLAIM_RELEASE_MAX_BYTES, claimReleaseSchema, type ClaimRelease } from '../../src/schemas/claim-release';
import { readJsonFile } from '../../src/state/bounded-file';
import { isTooNew } from '../../src/state/formats';
import { CoalescedPass } from './coalesce';

export interface ReleaseQueueOptions {
  dir: string;
  release: (rec: ClaimRelease) => Promise<void>;
  log: Logger;
  /** Rescan period; failed notes are retried at this pace. */
  intervalMs?: number;
}

export class ReleaseQueue {
  private timer: NodeJS.Timeout | null = null;
  private watcher: fs.FSWatcher | null = null;
  private readonly passes = new CoalescedPass(() => this.pass());
  /** Notes handled by the last scans, for tests and metrics. */
  released = 0;
  failures = 0;
  /** Notes of a newer format, already logged; they stay in the queue for the release that wrote them. */
  readonly tooNew = new Set<string>();

  constructor(private readonly opts: ReleaseQueueOptions) {}

  start(): void {
    fs.mkdirSync(this.opts.dir, { recursive: true, mode: 0o700 });
    this.watcher = fs.watch(this.opts.dir, () => void this.scan());
    this.timer = setInterval(() => void this.scan(), this.opts.intervalMs ?? 10_000);
    this.timer.unref();
    void this.scan();
  }

  async stop(): Promise<void> {
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    this.watcher = null;
    this.timer = null;
    await this.passes.idle();
  }

  /** Process every note once; concurrent calls coalesce into one more pass. */
  scan(): Promise<void> {
    return this.passes.run();
  }

  private async pass(): Promise<void> {
    // Temp files of a killed CNI are skipped, and removed once stale (listEntries).
    for (const n of listEntries(this.opts.dir, '.json')) {
      const file = path.join(this.opts.dir, n);
      let rec: ClaimRelease | undefined;
      try {
        rec = readJsonFile(file, claimReleaseSchema, CLAIM_RELEASE_MAX_BYTES, 'claim release note', 'claim-release');
      } catch (e) {
        if (isTooNew(e)) {
          // A newer release's note: left for it (after a rollback), logged once per file.
          if (!this.tooNew.has(n)) this.opts.log.error({ file, details: e.details }, e.message);
          this.tooNew.add(n);
          continue;
        }
        // setAside renames a symlink itself, never its target.
        this.opts.log.error({ file, setAside: setAside(file), err: (e as Error).message }, 'invalid claim release note; set aside');
        continue;
      }
      if (!rec) continue; // removed meanwhile
      try {
        await this.opts.release(rec);
        removeFileDurable(file);
        this.released++;
      } catch (e) {
        this.failures++;
        this.opts.log.warn({ file, containerId: rec.containerId, ifName: rec.ifName, err: (e as Error).message }, 'claim release failed; will retry');
      }
    }
  }
}
