/**
 * `pgscale demo --runs N`: each scenario runs N times in a row, and the report shows how far its
 * key figures (those each scenario names in `keyFigures`: reads/s, write pause, lost commits …)
 * moved between the runs — every value, the min–max range and the median — so that a reader can
 * tell a difference from noise. Pure: the runner hands in the outcomes of the runs.
 */
import type { KeyFigure, ScenarioOutcome } from './scenario.js';

export interface SpreadRow {
  name: string;
  unit: string;
  /** The value of each run, in order (null: that run did not report it). */
  values: (number | null)[];
  min: number;
  max: number;
  median: number;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** One row per key figure named by any run, in the order the first run names them. */
export function spread(runs: readonly Pick<ScenarioOutcome, 'keyFigures'>[]): SpreadRow[] {
  const names: KeyFigure[] = [];
  for (const r of runs)
    for (const k of r.keyFigures ?? []) if (!names.some((n) => n.name === k.name)) names.push(k);
  return names.flatMap((k) => {
    const values = runs.map((r) => r.keyFigures?.find((x) => x.name === k.name)?.value ?? null);
    const known = values.filter((v): v is number => v !== null && Number.isFinite(v));
    if (known.length === 0) return [];
    return [
      {
        name: k.name,
        unit: k.unit,
        values,
        min: Math.min(...known),
        max: Math.max(...known),
        median: median(known),
      },
    ];
  });
}

/** A value for the spread table: integers grouped, small numbers with 2 significant decimals. */
export function fmtValue(v: number): string {
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en-US');
  return String(Number(v.toPrecision(3)));
}

/** "min–max (median m)" of a row. */
export function rangeText(r: SpreadRow): string {
  return r.min === r.max
    ? `${fmtValue(r.min)} (all runs)`
    : `${fmtValue(r.min)}–${fmtValue(r.max)} (median ${fmtValue(r.median)})`;
}
