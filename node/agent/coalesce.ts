/**
 * A pass that runs at most once at a time: a call while one runs asks for one more pass after it
 * and shares its promise (the reservation sync, the release queue's scan).
 */
export class CoalescedPass {
  private running: Promise<void> | null = null;
  private again = false;

  constructor(private readonly pass: () => Promise<void>) {}

  run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass();
      } while (this.again);
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Resolves when no pass is running. */
  async idle(): Promise<void> {
    await this.running;
  }
}
