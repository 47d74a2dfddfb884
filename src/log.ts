/**
 * pino, configured once. The CNI logs to a file with a synchronous destination (the process exits
 * right after its result, and stdout carries that result, so logs never go there). The daemons log
 * to stderr, which their supervisor collects.
 */
import pino from 'pino';

export type Logger = pino.Logger;

const PINO_LEVEL: Record<string, pino.Level> = {
  panic: 'fatal',
  error: 'error',
  warning: 'warn',
  warn: 'warn',
  info: 'info',
  debug: 'debug',
};

export function fileLogger(file: string, level: string, base: Record<string, unknown>): Logger {
  const dest = pino.destination({ dest: file, sync: true, mkdir: true });
  return pino({ level: PINO_LEVEL[level] ?? 'info', base, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}

export function stderrLogger(level: string, base: Record<string, unknown>): Logger {
  return pino({ level: PINO_LEVEL[level] ?? 'info', base, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
}

/** A logger that drops everything (logFile set to ""). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
