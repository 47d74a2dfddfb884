/** Rendering: human tables (default), JSON or YAML on stdout; progress on stderr. */
import { stringify } from 'yaml';

export type Format = 'table' | 'json' | 'yaml';

export function table(header: string[], rows: string[][]): string {
  if (!rows.length) return '';
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return `${all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('   ').trimEnd()).join('\n')}\n`;
}

/** Machine formats print `data`; the table format prints what `human` returns. */
export function emit(format: Format, data: unknown, human: () => string): void {
  if (format === 'json') process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else if (format === 'yaml') process.stdout.write(stringify(data));
  else process.stdout.write(human());
}

export interface Progress {
  step(msg: string): void;
}

/** Progress lines on stderr: on a terminal, or when asked with --progress. */
export function progress(command: string, forced: boolean | undefined): Progress {
  const on = forced === true || process.stderr.isTTY === true;
  return { step: (msg) => on && process.stderr.write(`${command}: ${msg}\n`) };
}

export function since(iso: string | undefined, nowMs = Date.now()): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((nowMs - Date.parse(iso)) / 1000));
  if (!Number.isFinite(s)) return iso;
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}
