/**
 * Assertion recorder for VM scenarios. Every check prints one TAP-like line on stdout, prefixed with
 * the scenario name, which the guest runner forwards to the host:
 *   ok - <scenario>: <name>
 *   not ok - <scenario>: <name>: <why>
 */
import { isDeepStrictEqual, inspect } from 'node:util';

/** Thrown by `step` after it recorded the failure: the rest of the scenario depends on that step. */
export class ScenarioAborted extends Error {}

const fmt = (v: unknown): string => inspect(v, { breakLength: Infinity, depth: 6 });
const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, ' | ').trim();

export class T {
  passed = 0;
  failed = 0;

  constructor(
    private readonly scenario: string,
    private readonly write: (line: string) => void = (l) => process.stdout.write(l + '\n'),
  ) {}

  ok(cond: boolean, name: string, why = 'assertion failed'): boolean {
    if (cond) {
      this.passed++;
      this.write(`ok - ${this.scenario}: ${name}`);
    } else {
      this.failed++;
      this.write(`not ok - ${this.scenario}: ${name}: ${oneLine(why)}`);
    }
    return cond;
  }

  equal<V>(actual: V, expected: V, name: string): boolean {
    return this.ok(isDeepStrictEqual(actual, expected), name, `got ${fmt(actual)}, expected ${fmt(expected)}`);
  }

  match(actual: string, re: RegExp, name: string): boolean {
    return this.ok(re.test(actual), name, `${fmt(actual)} does not match ${re}`);
  }

  comment(text: string): void {
    this.write(`# ${this.scenario}: ${oneLine(text)}`);
  }

  /**
   * Run an operation the rest of the scenario depends on. Success is recorded as `ok` (the operation
   * really happened on the real driver); failure is recorded and aborts the scenario.
   */
  async step<R>(name: string, fn: () => Promise<R> | R): Promise<R> {
    try {
      const r = await fn();
      this.ok(true, name);
      return r;
    } catch (err) {
      this.ok(false, name, err instanceof Error ? err.message : String(err));
      throw new ScenarioAborted(name);
    }
  }
}
