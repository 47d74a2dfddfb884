import { describe, expect, it } from 'vitest';
import { renderTable } from '../../../demo/table';
import { Teardown } from '../../../demo/teardown';

describe('demo Teardown', () => {
  it('undoes in reverse order, every step even after a failure, and reports the failures', async () => {
    const t = new Teardown();
    const done: string[] = [];
    t.push('a', () => void done.push('a'));
    t.push('b', () => {
      throw new Error('boom');
    });
    t.push('c', async () => void done.push('c'));
    expect(await t.run()).toEqual(['b: boom']);
    expect(done).toEqual(['c', 'a']);
  });

  it('runs once; something registered while it runs is undone too; check() throws once started', async () => {
    const t = new Teardown();
    const done: string[] = [];
    t.push('first', async () => {
      await new Promise((r) => setTimeout(r, 5));
      done.push('first');
    });
    expect(() => t.check()).not.toThrow();
    const run = t.run();
    expect(() => t.check()).toThrow('interrupted');
    t.push('late', () => void done.push('late'));
    const again = t.run();
    expect(await run).toEqual([]);
    expect(await again).toEqual([]);
    expect(done).toEqual(['first', 'late']);
  });
});

describe('demo renderTable', () => {
  it('pads every column to its widest cell and rules the header', () => {
    expect(renderTable(['pod', 'IP'], [['a', '10.0.0.1/24'], ['long-name', '']])).toEqual([
      'pod        IP',
      '─────────  ───────────',
      'a          10.0.0.1/24',
      'long-name',
    ]);
  });
});
