/**
 * `npm run bench:reads -- --levels …`: what each read consistency level costs (docs/proxy.md,
 * "Read consistency"). The proxy in front of the primary and both replicas runs a mixed pgbench
 * workload — single-statement transactions, each a point read or (at each --write-rate) a
 * one-row update — once per level and write rate, with a fresh proxy process each time, the
 * order alternating between rounds. Reports TPS and p99 (all transactions, and the reads alone:
 * the reads are what a level makes wait) as ratios to `eventual` at the same write rate.
 */
import { table } from '../src/cli/table.js';
import type { BenchCluster } from './cluster.js';
import { runPgbench } from './pgbench.js';
import type { PgbenchResult, QueryMode } from './pgbench.js';
import { startReadProxy } from './read-proxy.js';
import type { ReadProxy } from './read-proxy.js';

export interface LevelOptions {
  levels: string[];
  writeRates: number[];
  durationS: number;
  clients: number;
  rounds: number;
  mode: QueryMode;
  poolSize: number;
  primaryWeight: number;
  balance: 'round-robin' | 'least-outstanding';
}

export interface LevelRun {
  round: number;
  level: string;
  writePercent: number;
  pgbench: PgbenchResult;
}

const WARMUP_S = 3;
const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');
const f0 = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '-');

/** Runs the matrix; `waitReadSet` waits until the proxy reads from both replicas. */
export async function runLevels(
  o: LevelOptions,
  cluster: BenchCluster,
  waitReadSet: (p: ReadProxy) => Promise<void>,
  log: (s: string) => void,
): Promise<LevelRun[]> {
  const cells = o.writeRates.flatMap((w) => o.levels.map((level) => ({ level, w })));
  const runs: LevelRun[] = [];
  for (let round = 0; round < o.rounds; round++) {
    for (const { level, w } of round % 2 === 0 ? cells : [...cells].reverse()) {
      const proxy = await startReadProxy(cluster.info, {
        replicas: cluster.nodes.slice(1, 3),
        poolSize: o.poolSize,
        maxClients: o.clients,
        primaryWeight: o.primaryWeight,
        balance: o.balance,
        consistency: level,
      });
      try {
        await waitReadSet(proxy);
        const run = (durationS: number) =>
          runPgbench({
            pgbench: cluster.bins.pgbench,
            host: proxy.host,
            port: proxy.port,
            user: cluster.info.user,
            password: cluster.info.password,
            database: cluster.info.database,
            workload: 'mixed',
            writePercent: w,
            mode: o.mode,
            clients: o.clients,
            durationS,
          });
        await run(WARMUP_S);
        const res = await run(o.durationS);
        runs.push({ round, level, writePercent: w, pgbench: res });
        log(
          `[${runs.length}/${cells.length * o.rounds}] ${level} at ${w} % writes: ${f0(res.tps ?? NaN)} tps, ` +
            `p99 ${f2(res.p99Ms ?? NaN)} ms (reads ${f2(res.scriptP99Ms[0] ?? NaN)} ms)` +
            (res.errorLines ? `; ${res.errorLines} error lines (${res.firstError ?? ''})` : ''),
        );
      } finally {
        await proxy.stop();
      }
    }
  }
  return runs;
}

export interface LevelSummary {
  level: string;
  writePercent: number;
  tps: number;
  p99Ms: number;
  readP99Ms: number;
  writeP99Ms: number;
  tpsVsEventual: number;
  p99VsEventual: number;
  readP99VsEventual: number;
  errors: number;
}

export function summarizeLevels(runs: readonly LevelRun[]): LevelSummary[] {
  const keys = [...new Set(runs.map((r) => `${r.writePercent}\0${r.level}`))];
  const rows = keys.map((key) => {
    const [w, level] = key.split('\0') as [string, string];
    const rs = runs.filter((r) => r.level === level && r.writePercent === Number(w));
    return {
      level,
      writePercent: Number(w),
      tps: mean(rs.map((r) => r.pgbench.tps ?? NaN)),
      p99Ms: mean(rs.map((r) => r.pgbench.p99Ms ?? NaN)),
      readP99Ms: mean(rs.map((r) => r.pgbench.scriptP99Ms[0] ?? NaN)),
      writeP99Ms: mean(rs.map((r) => r.pgbench.scriptP99Ms[1] ?? NaN)),
      errors: rs.reduce((a, r) => a + r.pgbench.errorLines + r.pgbench.failed, 0),
    };
  });
  return rows.map((r) => {
    const base = rows.find((x) => x.level === 'eventual' && x.writePercent === r.writePercent);
    return {
      ...r,
      tpsVsEventual: base ? r.tps / base.tps : NaN,
      p99VsEventual: base ? r.p99Ms / base.p99Ms : NaN,
      readP99VsEventual: base ? r.readP99Ms / base.readP99Ms : NaN,
    };
  });
}

export function levelsTable(s: readonly LevelSummary[]): string {
  return table(
    [
      'writes',
      'level',
      'TPS',
      'x eventual',
      'p99 ms all/reads/writes',
      'p99 x eventual',
      'read p99 x eventual',
      'errors',
    ],
    s.map((x) => [
      `${x.writePercent} %`,
      x.level,
      f0(x.tps),
      f2(x.tpsVsEventual),
      `${f2(x.p99Ms)}/${f2(x.readP99Ms)}/${f2(x.writeP99Ms)}`,
      f2(x.p99VsEventual),
      f2(x.readP99VsEventual),
      String(x.errors),
    ]),
  );
}
