/**
 * Printing benchmark figures. A ratio is only ever taken between two figures measured in this
 * process: figures are created by measured(), stamped with this run's id, and ratio() refuses
 * anything else, so no hard-coded or remembered reference can slip in.
 */
const RUN_ID = Symbol(`bench-run-${process.pid}-${Date.now()}`);

export interface Figure {
  readonly label: string;
  readonly value: number;
  readonly unit: 'ms' | 'MB';
  readonly run: symbol;
}

export function measured(label: string, value: number, unit: Figure['unit']): Figure {
  if (!Number.isFinite(value)) throw new RangeError(`${label}: not a measurement (${value})`);
  return { label, value, unit, run: RUN_ID };
}

export function ratio(ours: Figure, reference: Figure): number {
  if (ours.run !== RUN_ID || reference.run !== RUN_ID) {
    throw new Error(`ratio ${ours.label}/${reference.label}: both figures must be measured in this run`);
  }
  if (ours.unit !== reference.unit) throw new Error(`ratio of ${ours.unit} to ${reference.unit}`);
  return ours.value / reference.value;
}

export const fmt = (f: Figure): string => `${f.value.toFixed(1)} ${f.unit}`;

export interface Goal {
  /** ours/reference must be at most this */
  maxRatio?: number;
  /** ours must be at most this, in the figure's unit */
  max?: number;
}

function goalText(goal: Goal | undefined, unit: string): string {
  if (!goal) return '';
  const parts: string[] = [];
  if (goal.maxRatio !== undefined) parts.push(`≤ ${goal.maxRatio}×`);
  if (goal.max !== undefined) parts.push(`≤ ${goal.max} ${unit}`);
  return parts.join(', ');
}

function meets(ours: Figure, r: number, goal: Goal | undefined): boolean | undefined {
  if (!goal) return undefined;
  if (goal.maxRatio !== undefined && r > goal.maxRatio) return false;
  if (goal.max !== undefined && ours.value > goal.max) return false;
  return true;
}

/** One line: metric, ours, reference, ratio, goal and whether it is met. */
export function compareLine(metric: string, ours: Figure, reference: Figure, goal?: Goal): string {
  const r = ratio(ours, reference);
  const met = meets(ours, r, goal);
  return [
    metric.padEnd(14),
    `ours ${fmt(ours).padStart(9)}`,
    `ref ${fmt(reference).padStart(9)}`,
    `ratio ${r.toFixed(2).padStart(5)}×`,
    goal ? `goal ${goalText(goal, ours.unit).padEnd(8)} ${met ? 'met' : 'MISSED'}` : '',
  ]
    .join('  ')
    .trimEnd();
}

/** A plain table with a header row; columns padded to their widest cell. */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ')).join('\n');
}
