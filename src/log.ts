/**
 * pino, configured once. The CNI logs to a file with a synchronous destination (the process exits
 * right after its result, and stdout carries that result, so logs never go there). The daemons log
 * to stderr, which their supervisor collects.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
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

/** A logger with its own file descriptor; close() releases it (the CNI server opens one per call). */
export interface FileLogger {
  log: Logger;
  close(): void;
}

/**
 * Append synchronously to `file` (its dir is created): every line is on disk before the call
 * answers, and concurrent calls (processes, or one CNI server) append whole lines with O_APPEND.
 */
export function fileLogger(file: string, level: string, base: Record<string, unknown>): FileLogger {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o644);
  const log = pino({ level: PINO_LEVEL[level] ?? 'info', base, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd, sync: true }));
  let open = true;
  return {
    log,
    close() {
      if (!open) return;
      open = false;
      log.level = 'silent'; // a late line after close must not write to a reused fd number
      fs.closeSync(fd);
    },
  };
}

export function stderrLogger(level: string, base: Record<string, unknown>): Logger {
  return pino({ level: PINO_LEVEL[level] ?? 'info', base, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
}

/** A logger that drops everything (logFile set to ""). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
