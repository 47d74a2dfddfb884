/** The opt-in per-step timing of a CNI call (cni/step-times.ts), through a real pino logger. */
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { stepTimes } from '../../cni/step-times';

function capture(level: string) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level }, sink), lines };
}

const spin = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* busy: the steps must measure wall time */
  }
};

describe('stepTimes', () => {
  it('at debug: one line naming each step with its milliseconds, repeated steps added up', async () => {
    const { log, lines } = capture('debug');
    const t = stepTimes(log, 'ADD');
    spin(3);
    t.mark('a');
    spin(2);
    t.mark('b');
    spin(2);
    t.mark('a');
    t.done();
    t.mark('late');
    t.done();
    await new Promise((r) => setImmediate(r));
    expect(lines).toHaveLength(1);
    const l = lines[0] as { msg: string; steps: Record<string, number>; totalMs: number };
    expect(l.msg).toBe('ADD step times');
    expect(Object.keys(l.steps)).toEqual(['a', 'b']);
    expect(l.steps.a).toBeGreaterThanOrEqual(5);
    expect(l.steps.b).toBeGreaterThanOrEqual(2);
    expect(l.totalMs).toBeCloseTo((l.steps.a as number) + (l.steps.b as number), 1);
  });

  it('counts from the given start, so work before the logger existed is charged to the first step', async () => {
    const { log, lines } = capture('debug');
    const start = Number(process.hrtime.bigint()) / 1e6;
    spin(4);
    const t = stepTimes(log, 'DEL', start);
    t.mark('parse');
    t.done();
    await new Promise((r) => setImmediate(r));
    expect((lines[0] as { steps: { parse: number } }).steps.parse).toBeGreaterThanOrEqual(4);
  });

  it('at info (the default): records and logs nothing', async () => {
    const { log, lines } = capture('info');
    const t = stepTimes(log, 'ADD');
    t.mark('a');
    t.done();
    log.info('other');
    await new Promise((r) => setImmediate(r));
    expect(lines.map((l) => l.msg)).toEqual(['other']);
  });
});
