import { describe, expect, it } from 'vitest';
import { compareLine, measured, ratio, type Figure } from '../../bench/lib/report';
import { percentile, summarize } from '../../bench/lib/stats';

describe('bench percentile (linear interpolation between closest ranks)', () => {
  it('matches hand-computed values', () => {
    const xs = [15, 20, 35, 40, 50];
    expect(percentile(xs, 0)).toBe(15);
    expect(percentile(xs, 50)).toBe(35);
    expect(percentile(xs, 100)).toBe(50);
    // rank 0.9 * 4 = 3.6 -> 40 + 0.6 * (50 - 40)
    expect(percentile(xs, 90)).toBeCloseTo(46, 10);
    // even count: the mean of the two middle values
    expect(percentile([4, 1, 3, 2], 50)).toBe(2.5);
  });

  it('does not depend on input order and does not reorder the input', () => {
    const xs = [9, 1, 5, 3, 7];
    expect(percentile(xs, 50)).toBe(5);
    expect(xs).toEqual([9, 1, 5, 3, 7]);
  });

  it('refuses an empty sample or a percentile out of range', () => {
    expect(() => percentile([], 50)).toThrow(RangeError);
    expect(() => percentile([1], 101)).toThrow(RangeError);
    expect(() => percentile([1], Number.NaN)).toThrow(RangeError);
  });

  it('summarizes', () => {
    expect(summarize([3, 1, 2])).toEqual({ n: 3, p50: 2, p90: 2.8, p99: 2.98, min: 1, max: 3 });
  });
});

describe('bench ratios', () => {
  it('divides ours by the reference and reports the goal', () => {
    const ours = measured('ours', 30, 'ms');
    const ref = measured('ref', 20, 'ms');
    expect(ratio(ours, ref)).toBe(1.5);
    expect(compareLine('ADD p50', ours, ref, { maxRatio: 1.3 })).toMatch(/1\.50×.*MISSED$/);
    expect(compareLine('ADD p50', ref, ours, { maxRatio: 1.3 })).toMatch(/0\.67×.*met$/);
  });

  it('refuses a figure that was not measured in this run, and mixed units', () => {
    const forged: Figure = { label: 'remembered', value: 24, unit: 'ms', run: Symbol('another run') };
    expect(() => ratio(measured('ours', 30, 'ms'), forged)).toThrow(/measured in this run/);
    expect(() => ratio(measured('a', 1, 'ms'), measured('b', 1, 'MB'))).toThrow(/ms to MB/);
    expect(() => measured('x', Number.NaN, 'ms')).toThrow(RangeError);
  });
});
