/**
 * The benchmark's results as a plain-text table for people and as JSON for scripts. Throughput is
 * compared only as ratios between targets measured in the same run, at the same point, so that
 * the noise of a shared machine affects numerator and denominator alike.
 */
import { table } from '../src/cli/table.js';
import { IDLE_WAIT_MS } from './memory.js';
import type { MemoryResult } from './memory.js';
import type { PgbenchResult, QueryMode, Workload } from './pgbench.js';

/**
 * CPU the proxy process used during one pgbench run (utime + stime from /proc, so it counts the
 * proxy's system calls too), per completed transaction: unlike TPS, barely affected by how busy
 * the rest of the host was, so it compares two proxies (or two versions of one) more steadily.
 */
export interface ProxyCpu {
  cpuS: number;
  usPerTx: number | null;
  /** Seconds the proxy was runnable but waited for a core, per second of the run. */
  runqueueWait: number | null;
}

export type Outcome = { result: PgbenchResult; proxyCpu?: ProxyCpu } | { skipped: string };

export interface Point {
  workload: Workload;
  mode: QueryMode;
  clients: number;
  /** By target name, for every target of the run. */
  outcomes: Record<string, Outcome>;
}

const ok = (o: Outcome | undefined): PgbenchResult | null => (o && 'result' in o ? o.result : null);

function hasErrors(r: PgbenchResult): boolean {
  return r.failed > 0 || r.aborted > 0 || r.errorLines > 0 || r.exitCode !== 0 || r.tps === null;
}

export function tpsOf(o: Outcome | undefined): number | null {
  const r = ok(o);
  return r && r.tps !== null && r.tps > 0 ? r.tps : null;
}

function fmtTps(o: Outcome | undefined): string {
  if (!o) return '-';
  if ('skipped' in o) return o.skipped;
  if (o.result.tps === null) return 'error';
  // A star: the run had errors, so its TPS counts only what completed.
  return `${o.result.tps.toFixed(0)}${hasErrors(o.result) ? '*' : ''}`;
}

function fmtLat(o: Outcome | undefined): string {
  const r = ok(o);
  if (!r || r.p50Ms === null || r.p99Ms === null) return '-';
  const f = (ms: number) => (ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0));
  return `${f(r.p50Ms)}/${f(r.p99Ms)}`;
}

function fmtCpu(o: Outcome | undefined): string {
  const us = o && 'result' in o ? o.proxyCpu?.usPerTx : undefined;
  return us === undefined || us === null ? '-' : us.toFixed(0);
}

function ratio(a: Outcome | undefined, b: Outcome | undefined): string {
  const x = tpsOf(a);
  const y = tpsOf(b);
  return x !== null && y !== null ? (x / y).toFixed(2) : '-';
}

function cpuOf(o: Outcome | undefined): number | null {
  const us = o && 'result' in o ? o.proxyCpu?.usPerTx : null;
  return us !== undefined && us !== null && us > 0 ? us : null;
}

/** Proxy CPU per transaction of `a` over that of `b`: above 1, `a` costs more. */
function cpuRatio(a: Outcome | undefined, b: Outcome | undefined): string {
  const x = cpuOf(a);
  const y = cpuOf(b);
  return x !== null && y !== null ? (x / y).toFixed(2) : '-';
}

function fmtErrors(outcomes: Record<string, Outcome>): string {
  const parts: string[] = [];
  for (const [name, o] of Object.entries(outcomes)) {
    const r = ok(o);
    if (!r || !hasErrors(r)) continue;
    const what = [
      r.aborted ? `${r.aborted} aborted` : '',
      r.failed ? `${r.failed} failed` : '',
      !r.aborted && !r.failed ? (r.firstError ?? `exit ${r.exitCode}`) : '',
    ].filter(Boolean);
    parts.push(`${name}: ${what.join(', ')}`);
  }
  return parts.length ? parts.join('; ') : '0';
}

export function resultsTable(points: readonly Point[], targets: readonly string[]): string {
  const has = (t: string) => targets.includes(t);
  const proxies = targets.filter((t) => t !== 'direct');
  const ratios: [string, string, string][] = [];
  if (has('pgscale') && has('pgbouncer')) ratios.push(['pgscale/pgbouncer', 'pgscale', 'pgbouncer']);
  if (has('pgscale') && has('direct')) ratios.push(['pgscale/direct', 'pgscale', 'direct']);
  if (has('pgbouncer') && has('direct')) ratios.push(['pgbouncer/direct', 'pgbouncer', 'direct']);
  if (has('node-pipe') && has('pgbouncer')) ratios.push(['node-pipe/pgbouncer', 'node-pipe', 'pgbouncer']);
  if (has('pgscale') && has('node-pipe')) ratios.push(['pgscale/node-pipe', 'pgscale', 'node-pipe']);
  if (has('min-pooler') && has('pgbouncer')) ratios.push(['min-pooler/pgbouncer', 'min-pooler', 'pgbouncer']);
  if (has('pgscale') && has('min-pooler')) ratios.push(['pgscale/min-pooler', 'pgscale', 'min-pooler']);
  const cpuRatios: [string, string, string][] = [];
  if (has('pgscale') && has('min-pooler'))
    cpuRatios.push(['CPU pgscale/min-pooler', 'pgscale', 'min-pooler']);
  if (has('pgscale-baseline') && has('pgbouncer'))
    ratios.push(['baseline/pgbouncer', 'pgscale-baseline', 'pgbouncer']);
  if (has('pgscale-baseline') && has('pgscale'))
    ratios.push(['pgscale/baseline', 'pgscale', 'pgscale-baseline']);
  const headers = [
    'workload',
    'mode',
    'clients',
    ...targets.map((t) => `TPS ${t}`),
    ...targets.map((t) => `p50/p99 ms ${t}`),
    ...proxies.map((t) => `CPU µs/tx ${t}`),
    ...ratios.map(([h]) => h),
    ...cpuRatios.map(([h]) => h),
    'errors',
  ];
  const rows = points.map((p) => [
    p.workload,
    p.mode,
    p.clients,
    ...targets.map((t) => fmtTps(p.outcomes[t])),
    ...targets.map((t) => fmtLat(p.outcomes[t])),
    ...proxies.map((t) => fmtCpu(p.outcomes[t])),
    ...ratios.map(([, a, b]) => ratio(p.outcomes[a], p.outcomes[b])),
    ...cpuRatios.map(([, a, b]) => cpuRatio(p.outcomes[a], p.outcomes[b])),
    fmtErrors(p.outcomes),
  ]);
  return table(headers, rows);
}

/** The first error of each target, once per distinct message (the table only counts them). */
export function errorNotes(points: readonly Point[]): string[] {
  const seen = new Set<string>();
  const notes: string[] = [];
  for (const p of points) {
    for (const [name, o] of Object.entries(p.outcomes)) {
      const r = ok(o);
      if (!r?.firstError) continue;
      const first = r.firstError.replace(/^(pgbench:\s*)+/, 'pgbench: ');
      const msg = first.replace(/client \d+/g, 'client N').replace(/"P\d+_\d+"/g, '"Pn_n"');
      const key = `${name}\0${msg}`;
      if (seen.has(key)) continue;
      seen.add(key);
      notes.push(`${name} (${p.workload} ${p.mode} ${p.clients} clients, first seen): ${first}`);
    }
  }
  return notes;
}

export function memoryTable(rows: readonly MemoryResult[]): string {
  return table(
    [
      'target',
      'idle clients',
      'RSS before',
      'RSS after',
      'per idle client',
      'marginal (2nd half)',
      `RSS after ${IDLE_WAIT_MS / 1000} s idle`,
      'per idle client then',
      'stopped by',
    ],
    rows.map((m) => [
      m.target,
      m.reached === m.wanted ? m.reached : `${m.reached} of ${m.wanted}`,
      `${(m.rssBeforeKb / 1024).toFixed(1)} MB`,
      `${(m.rssAfterKb / 1024).toFixed(1)} MB`,
      m.perClientKb === null ? '-' : `${m.perClientKb.toFixed(2)} kB`,
      m.marginalKb == null ? '-' : `${m.marginalKb.toFixed(2)} kB`,
      `${(m.rssIdleKb / 1024).toFixed(1)} MB`,
      m.perClientIdleKb == null ? '-' : `${m.perClientIdleKb.toFixed(2)} kB`,
      m.stoppedBy ?? '-',
    ]),
  );
}
