/**
 * A VM scenario is one file in test/vm/scenarios/ exporting `scenario`. The guest runner gives each
 * scenario a fresh VM state (no netns, sriov_numvfs = 0, PF down) and its own process, so a hung or
 * crashed scenario cannot take the others with it.
 *
 * A file whose scenario needs a build artefact declares it on a line of its own, and run.sh skips it
 * (loudly) while the artefact is absent:
 *   // vm-requires: dist/bin/sriov-underlay
 */
import type { T } from './tap';

export interface Ctx {
  t: T;
  /** The project checkout (read-only in the guest). */
  project: string;
  /** A writable directory for this scenario that comes back to the host (logs, state dumps). */
  outDir: string;
  /** Register teardown; run in reverse order even when the scenario fails. */
  defer(fn: () => Promise<void> | void): void;
}

export interface Scenario {
  /** Seconds before the runner kills it (default 150). TCG is slow: be generous. */
  timeoutSec?: number;
  run(ctx: Ctx): Promise<void>;
}
