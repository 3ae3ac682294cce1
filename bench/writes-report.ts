/**
 * The write-scaling benchmark's configurations, records and report (bench/writes.ts): the best
 * TPS of each group count, the ratios to 1 group, every run with where its CPU went, and the
 * proxy's CPU per transaction sharded against unsharded at the same mode and client count.
 */
import { table } from '../src/cli/table.js';
import type { CpuReport } from './cpu-usage.js';
import type { PgbenchResult, QueryMode } from './pgbench.js';

export interface Options {
  /** Names of the configurations to run (CONFIGS). */
  configs: string[];
  /** Nice value set at start (null: unchanged). */
  nice: number | null;
  durationS: number;
  clients: number[];
  modes: QueryMode[];
  /** Clients of the runs in modes after the first. */
  modeClients: number;
  quotaUs: number;
  periodUs: number;
  accounts: number;
  shardCount: number;
  poolSize: number;
  quick: boolean;
  json: string | null;
}

export interface Config {
  name: string;
  groups: number;
  /** Whether accounts and history are distributed (false: plain tables on group 0). */
  distributed: boolean;
}

export const CONFIGS: readonly Config[] = [
  { name: 'unsharded-1g', groups: 1, distributed: false },
  { name: 'sharded-1g', groups: 1, distributed: true },
  { name: 'sharded-2g', groups: 2, distributed: true },
  { name: 'sharded-4g', groups: 4, distributed: true },
];

/** Clusters up at the same time, phase after phase. */
export const PHASES: readonly (readonly string[])[] = [
  ['unsharded-1g', 'sharded-1g'],
  ['sharded-2g'],
  ['sharded-4g'],
];

/** Statements a client sends per transaction: BEGIN, UPDATE, INSERT, END. */
export const STATEMENTS_PER_TX = 4;

export interface RunRecord {
  config: string;
  groups: number;
  mode: QueryMode;
  clients: number;
  pgbench: PgbenchResult;
  wallS: number;
  /** CPU seconds (user + system) of the controller process (which runs the proxy) over the run. */
  proxyCpuS: number | null;
  /** proxyCpuS per completed transaction, µs. */
  proxyUsPerTx: number | null;
  /** The same after subtracting the controller's idle CPU rate (measured before the runs). */
  proxyUsPerTxNet: number | null;
  cpu: CpuReport;
  /** Per primary: cores used (cpuacct) and share of CFS periods throttled, null uncapped. */
  nodes: Record<string, { cores: number | null; throttled: number | null }>;
  strays: number;
  /**
   * Cores busy on the host besides the proxy, pgbench and the primaries (other processes: on a
   * shared host, other people's work), or null without cpuacct.
   */
  otherCores: number | null;
}

export interface CpuPair {
  mode: QueryMode;
  clients: number;
  unshardedUsPerTx: number;
  shardedUsPerTx: number;
  /** (sharded − unsharded) per transaction / STATEMENTS_PER_TX. */
  diffUsPerStatement: number;
}

export interface Summary {
  /** Best TPS of each configuration in the first mode, and the client count that gave it. */
  best: Record<string, { tps: number; clients: number }>;
  ratio2g: number;
  ratio4g: number;
  cpuPairs: CpuPair[];
  /** Mean of the pairs' diffUsPerStatement. */
  diffUsPerStatement: number;
}

export function summarize(o: Options, runs: readonly RunRecord[]): Summary {
  const best: Summary['best'] = {};
  for (const c of CONFIGS.filter((x) => o.configs.includes(x.name))) {
    const rs = runs.filter((r) => r.config === c.name && r.mode === o.modes[0]);
    const b = rs.reduce<RunRecord | null>(
      (a, r) => (!a || (r.pgbench.tps ?? 0) > (a.pgbench.tps ?? 0) ? r : a),
      null,
    );
    best[c.name] = { tps: b?.pgbench.tps ?? NaN, clients: b?.clients ?? 0 };
  }
  const cpuPairs: CpuPair[] = [];
  for (const u of runs.filter((r) => r.config === 'unsharded-1g')) {
    const s = runs.find((r) => r.config === 'sharded-1g' && r.mode === u.mode && r.clients === u.clients);
    if (!s || u.proxyUsPerTxNet === null || s.proxyUsPerTxNet === null) continue;
    cpuPairs.push({
      mode: u.mode,
      clients: u.clients,
      unshardedUsPerTx: u.proxyUsPerTxNet,
      shardedUsPerTx: s.proxyUsPerTxNet,
      diffUsPerStatement: (s.proxyUsPerTxNet - u.proxyUsPerTxNet) / STATEMENTS_PER_TX,
    });
  }
  const tps = (name: string) => best[name]?.tps ?? NaN;
  return {
    best,
    ratio2g: tps('sharded-2g') / tps('sharded-1g'),
    ratio4g: tps('sharded-4g') / tps('sharded-1g'),
    cpuPairs,
    diffUsPerStatement: cpuPairs.reduce((a, p) => a + p.diffUsPerStatement, 0) / (cpuPairs.length || NaN),
  };
}

const f0 = (n: number | null | undefined) =>
  n !== null && n !== undefined && Number.isFinite(n) ? n.toFixed(0) : '-';
const f1 = (n: number | null | undefined) =>
  n !== null && n !== undefined && Number.isFinite(n) ? n.toFixed(1) : '-';
const f2 = (n: number | null | undefined) =>
  n !== null && n !== undefined && Number.isFinite(n) ? n.toFixed(2) : '-';
const pct = (n: number | null | undefined) =>
  n !== null && n !== undefined && Number.isFinite(n) ? `${(n * 100).toFixed(0)}%` : '-';
const avg = (xs: (number | null)[]) => {
  const v = xs.filter((x): x is number => x !== null);
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
};

export function runsTable(runs: readonly RunRecord[]): string {
  return table(
    [
      'config',
      'mode',
      'clients',
      'TPS',
      'p50/p99 ms',
      'proxy µs/tx',
      'proxy cores',
      'proxy runq wait',
      'primary cores (each)',
      'primaries throttled',
      'pgbench cores',
      'host busy',
      'other cores',
      'errors',
    ],
    runs.map((r) => [
      r.config,
      r.mode,
      String(r.clients),
      f0(r.pgbench.tps),
      `${f2(r.pgbench.p50Ms)}/${f2(r.pgbench.p99Ms)}`,
      f0(r.proxyUsPerTxNet),
      f2(r.cpu.proxyCores),
      f2(r.cpu.proxyRunqueueWait),
      Object.values(r.nodes)
        .map((n) => f2(n.cores))
        .join('/'),
      pct(avg(Object.values(r.nodes).map((n) => n.throttled))),
      f2(r.cpu.pgbenchCores),
      pct(r.cpu.hostBusy),
      f2(r.otherCores),
      r.pgbench.errorLines || r.pgbench.failed ? (r.pgbench.firstError ?? `${r.pgbench.failed} failed`) : '0',
    ]),
  );
}

export function report(
  o: Options,
  meta: {
    date: string;
    nproc: number;
    cpu: string;
    memGb: number;
    kernel: string;
    node: string;
    loadAtStart: string;
  },
  command: string,
  noCaps: string | null,
  s: Summary,
  runs: readonly RunRecord[],
  rows: Record<string, Record<string, number>>,
): string {
  const one = s.best['sharded-1g'] ?? { tps: NaN, clients: 0 };
  const verdict = (x: number, ok: boolean) =>
    Number.isFinite(x) ? (ok ? 'met' : 'NOT met') : 'not measured';
  return [
    '',
    `command: ${command}`,
    `date: ${meta.date}; nproc ${meta.nproc} (${meta.cpu}), ${meta.memGb} GB, Linux ${meta.kernel}; node ${meta.node}; load at start ${meta.loadAtStart}`,
    noCaps
      ? `CPU caps: NONE (${noCaps}): the groups share the host's cores, so these figures do NOT emulate separate machines.`
      : `CPU caps: cgroup v1 cpu controller, each group's primary (postmaster and every backend) at ` +
        `${(o.quotaUs / o.periodUs).toFixed(2)} core (cfs_quota_us ${o.quotaUs} / cfs_period_us ${o.periodUs}); ` +
        'the proxy (inside the controller) and pgbench are uncapped.',
    `workload: pgbench -n -f (BEGIN; UPDATE accounts by aid; INSERT INTO history; END) with aid random in 1..${o.accounts}; ` +
      `${o.durationS} s per run after a ${WARMUP_NOTE}; clients ${o.clients.join('/')} in -M ${o.modes[0]}, ` +
      `${o.modes.slice(1).join(', ') || 'no other mode'} at ${o.modeClients} clients; tables distributed with shard_count ${o.shardCount}, ` +
      `history colocated with accounts; proxy pool ${o.poolSize} per server; synchronous_commit off, no replicas` +
      (o.nice !== null ? `; everything started at nice ${o.nice}.` : '.'),
    `accounts rows per group: ${Object.entries(rows)
      .map(([k, v]) => `${k} ${Object.values(v).join('/')}`)
      .join('; ')}`,
    '',
    table(
      ['config', 'best TPS', 'clients', 'x sharded-1g'],
      Object.entries(s.best).map(([k, b]) => [k, f0(b.tps), String(b.clients), f2(b.tps / one.tps)]),
    ),
    '',
    runsTable(runs),
    '',
    table(
      [
        'proxy CPU',
        'mode',
        'clients',
        'unsharded µs/tx',
        'sharded µs/tx',
        `diff µs per statement (${STATEMENTS_PER_TX}/tx)`,
      ],
      s.cpuPairs.map((p) => [
        'sharded-1g vs unsharded-1g',
        p.mode,
        String(p.clients),
        f1(p.unshardedUsPerTx),
        f1(p.shardedUsPerTx),
        f1(p.diffUsPerStatement),
      ]),
    ),
    '',
    'proxy µs/tx: CPU (user + system) of the controller process, which runs the proxy, per completed transaction, ' +
      'its idle rate subtracted; proxy runq wait: seconds runnable but waiting for a core, per second.',
    'primary cores: CPU each primary used (cpuacct); throttled: share of CFS periods in which a primary hit its quota.',
    'host busy: all cores, every process; other cores: what the rest of the host (not the proxy, pgbench or the primaries) used.',
    '',
    `target: 4 groups >= 3.4 x 1 group: ${f2(s.ratio4g)} -> ${verdict(s.ratio4g, s.ratio4g >= 3.4)} (2 groups: ${f2(s.ratio2g)})`,
    `target: sharded proxy CPU <= unsharded + 5 µs per statement: ${f1(s.diffUsPerStatement)} µs -> ` +
      verdict(s.diffUsPerStatement, s.diffUsPerStatement <= 5),
  ].join('\n');
}

const WARMUP_NOTE = '3 s discarded warm-up per cluster';
