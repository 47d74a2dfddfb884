/**
 * Watch a directory for any change, with a safety rescan: fs.watch can miss events (and dies when
 * the directory itself is removed), so the callback also runs every `rescanMs`, and the watch is
 * re-armed whenever the directory exists again.
 */
import * as fs from 'node:fs';

export class DirWatch {
  private watcher: fs.FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;

  constructor(
    private readonly dir: string,
    private readonly onChange: (why: 'event' | 'rescan') => void,
    private readonly rescanMs: number,
    private readonly debounceMs = 10,
  ) {}

  start(): void {
    this.arm();
    this.timer = setInterval(() => {
      this.arm();
      this.onChange('rescan');
    }, this.rescanMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.debounce) clearTimeout(this.debounce);
    this.timer = this.debounce = null;
    this.watcher?.close();
    this.watcher = null;
  }

  private arm(): void {
    if (this.watcher) return;
    try {
      const w = fs.watch(this.dir, { persistent: false }, () => this.fire());
      w.on('error', () => {
        w.close();
        if (this.watcher === w) this.watcher = null;
      });
      this.watcher = w;
    } catch {
      // directory not there (yet): the next rescan tries again
    }
  }

  private fire(): void {
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = null;
      this.onChange('event');
    }, this.debounceMs);
  }
}

/**
 * Identity of a file: inode plus change time. Inode numbers alone get reused right away on some
 * file systems, so a re-created socket could look like the old one.
 */
export function fileIdentity(p: string): string | null {
  try {
    const st = fs.statSync(p, { bigint: true });
    return `${st.ino}:${st.ctimeNs}`;
  } catch {
    return null;
  }
}
