/**
 * Everything the demo creates registers how to undo it here, right after creating it. run() undoes
 * in reverse order, every step even when an earlier one fails, and only once (Ctrl-C during a
 * normal teardown does not start a second one). Something registered after run() started (the demo
 * was interrupted mid-step) is undone at once, and run() waits for it too.
 */
export class Teardown {
  private steps: Array<{ what: string; fn: () => Promise<void> | void }> = [];
  private running: Promise<string[]> | null = null;
  private failures: string[] = [];

  /** True once teardown has begun: the demo must not start anything new. */
  get started(): boolean {
    return this.running !== null;
  }

  push(what: string, fn: () => Promise<void> | void): void {
    this.steps.push({ what, fn });
  }

  /** Throw if teardown has begun (checked between the demo's steps). */
  check(): void {
    if (this.started) throw new Error('interrupted');
  }

  /** Undo everything; resolves to the failures (what + message), empty when all went well. */
  run(): Promise<string[]> {
    this.running ??= (async () => {
      // Steps may still be pushed while earlier ones are undone: drain until none is left.
      for (let s = this.steps.pop(); s; s = this.steps.pop()) {
        try {
          await s.fn();
        } catch (e) {
          this.failures.push(`${s.what}: ${(e as Error).message}`);
        }
      }
      return this.failures;
    })();
    return this.running;
  }
}
