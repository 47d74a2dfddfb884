/**
 * Opt-in per-step wall times of one CNI call, for profiling (bench/cni-server.bench.ts prints them):
 * with the netconf's logLevel "debug" the call logs one line `"<CMD> step times"` with the
 * milliseconds each named step took (time spent waiting on the event loop included: in the CNI
 * server that is the cost other calls impose). At any other level it records nothing.
 */
import type { Logger } from '../src/log';

export interface StepTimes {
  /** The time since the previous mark (or the start) is charged to `step` (added up if repeated). */
  mark(step: string): void;
  /** Log the steps (once); later marks are ignored. */
  done(): void;
}

const OFF: StepTimes = { mark() {}, done() {} };
export const noStepTimes = OFF;

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/** `startMs`: when the call started (process.hrtime in ms), so steps before the logger existed count. */
export function stepTimes(log: Logger, what: string, startMs = nowMs()): StepTimes {
  if (!log.isLevelEnabled('debug')) return OFF;
  const steps: Record<string, number> = {};
  let last = startMs;
  let open = true;
  return {
    mark(step) {
      if (!open) return;
      const t = nowMs();
      steps[step] = Math.round(((steps[step] ?? 0) + t - last) * 1000) / 1000;
      last = t;
    },
    done() {
      if (!open) return;
      open = false;
      log.debug({ steps, totalMs: Math.round((last - startMs) * 1000) / 1000 }, `${what} step times`);
    },
  };
}

export { nowMs as stepClockMs };
