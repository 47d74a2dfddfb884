/**
 * Everything the demo creates registers how to undo it here, right after creating it. run() undoes
 * in reverse order, every step even when an earlier one fails, and only once (Ctrl-C during a
 * normal teardown does not start a second one).
 */
export class Teardown {
  private steps: Array<{ what: string; fn: () => Promise<void> | void }> = [];
  private running: Promise<string[]> | null = null;

  push(what: string, fn: () => Promise<void> | void): void {
    this.steps.push({ what, fn });
  }

  /** Undo everything; resolves to the failures (what + message), empty when all went well. */
  run(): Promise<string[]> {
    this.running ??= (async () => {
      const failures: string[] = [];
      for (const s of this.steps.reverse()) {
        try {
          await s.fn();
        } catch (e) {
          failures.push(`${s.what}: ${(e as Error).message}`);
        }
      }
      this.steps = [];
      return failures;
    })();
    return this.running;
  }
}
