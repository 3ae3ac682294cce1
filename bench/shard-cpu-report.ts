/**
 * bench:shard-cpu's runs and their report: per proxy (pgscale, and the min-pooler floor of
 * bench/shard-cpu-floor.ts) and query mode, the pairs' differences sharded − unsharded in µs of
 * proxy CPU per statement (median, min, max) against issue #15's target of +5 µs.
 */
import { table } from '../src/cli/table.js';
import type { CpuReport } from './cpu-usage.js';
import type { PgbenchResult, QueryMode } from './pgbench.js';

/** Statements a client sends per transaction (UPDATE, INSERT, SELECT; autocommit). */
export const STATEMENTS_PER_TX = 3;

export type Side = 'sharded' | 'unsharded';
/** The proxy measured: pgscale's (in the controller), or the minimal Node.js pooler (the floor). */
export type ProxyName = 'pgscale' | 'min-pooler';
export const PROXIES: readonly ProxyName[] = ['pgscale', 'min-pooler'];

export interface Run {
  proxy: ProxyName;
  side: Side;
  mode: QueryMode;
  round: number;
  pgbench: PgbenchResult;
  wallS: number;
  proxyCpuS: number | null;
  /** Proxy CPU µs per statement, the process's idle rate subtracted. */
  usPerStatement: number | null;
  /** The same, user and system time apart (idle rate not subtracted). */
  userUsPerStatement: number | null;
  systemUsPerStatement: number | null;
  cpu: CpuReport;
  /** With --profile: the run's .cpuprofile. */
  profile?: string | null;
}

export interface ModeSummary {
  proxy: ProxyName;
  mode: QueryMode;
  /** Per round: sharded − unsharded, µs per statement. */
  diffs: number[];
  median: number | null;
  min: number | null;
  max: number | null;
  /** Medians of the pairs' differences in user and in system time (µs per statement). */
  userMedian: number | null;
  systemMedian: number | null;
  shardedMedian: number | null;
  unshardedMedian: number | null;
  met: boolean | null;
}

function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function summarize(
  o: { rounds: number; modes: readonly QueryMode[]; proxies: readonly ProxyName[] },
  runs: readonly Run[],
): ModeSummary[] {
  return o.proxies.flatMap((proxy) =>
    o.modes.map((mode) => {
      const of = (side: Side) =>
        runs.filter(
          (r) => r.proxy === proxy && r.mode === mode && r.side === side && r.usPerStatement !== null,
        );
      const pairs: [Run, Run][] = [];
      for (let round = 0; round < o.rounds; round++) {
        const a = of('sharded').find((r) => r.round === round);
        const b = of('unsharded').find((r) => r.round === round);
        if (a && b) pairs.push([a, b]);
      }
      const diffs = pairs.map(([a, b]) => a.usPerStatement! - b.usPerStatement!);
      const diffOf = (k: 'userUsPerStatement' | 'systemUsPerStatement') =>
        median(pairs.flatMap(([a, b]) => (a[k] !== null && b[k] !== null ? [a[k] - b[k]] : [])));
      const med = median(diffs);
      return {
        proxy,
        mode,
        diffs,
        median: med,
        min: diffs.length ? Math.min(...diffs) : null,
        max: diffs.length ? Math.max(...diffs) : null,
        userMedian: diffOf('userUsPerStatement'),
        systemMedian: diffOf('systemUsPerStatement'),
        shardedMedian: median(of('sharded').map((r) => r.usPerStatement!)),
        unshardedMedian: median(of('unsharded').map((r) => r.usPerStatement!)),
        met: med === null ? null : med <= 5,
      };
    }),
  );
}

export const f1 = (x: number | null) => (x === null ? null : x.toFixed(1));

export function report(runs: readonly Run[], summary: readonly ModeSummary[]): string {
  const perRun = table(
    [
      'proxy',
      'mode',
      'round',
      'side',
      'TPS',
      'statements',
      'proxy µs/stmt',
      'user',
      'system',
      'proxy cores',
      'host busy',
      'errors',
    ],
    runs.map((r) => [
      r.proxy,
      r.mode,
      r.round,
      r.side,
      f1(r.pgbench.tps),
      r.pgbench.transactions * STATEMENTS_PER_TX,
      f1(r.usPerStatement),
      f1(r.userUsPerStatement),
      f1(r.systemUsPerStatement),
      r.cpu.proxyCores === null ? null : r.cpu.proxyCores.toFixed(2),
      `${(r.cpu.hostBusy * 100).toFixed(0)}%`,
      r.pgbench.errorLines,
    ]),
  );
  const total = table(
    [
      'proxy',
      'mode',
      'unsharded µs/stmt',
      'sharded µs/stmt',
      'diff median',
      'min',
      'max',
      'of which user',
      'system',
      'target ≤ +5 µs',
    ],
    summary.map((s) => [
      s.proxy,
      s.mode,
      f1(s.unshardedMedian),
      f1(s.shardedMedian),
      f1(s.median),
      f1(s.min),
      f1(s.max),
      f1(s.userMedian),
      f1(s.systemMedian),
      s.proxy === 'pgscale' && s.met !== null ? (s.met ? 'met' : 'not met') : null,
    ]),
  );
  return `${perRun}\n\n${total}`;
}
