/**
 * `npm run bench:reads`: read-only throughput through pgscale's proxy with 0, 1 and 2 replicas,
 * against the primary alone, with every PostgreSQL node capped to the same CPU share by the
 * cgroup cpu controller (to emulate separate machines on one host), plus the cost of classifying
 * a statement. One cluster (primary + 2 streaming replicas, the project's `Cluster` code),
 * `pgbench -i`, then for each round and each configuration — the primary directly (the
 * single-node baseline), a replica directly, the proxy with 0, 1, 2 replicas — a fresh proxy process, a short discarded warm-up and a measured
 * `pgbench -S` run. The order of the configurations alternates from round to round so that drift
 * on a shared host hits all of them alike. Reports TPS, p50/p99, ratios, how the reads were
 * spread over the nodes (PostgreSQL's own xact_commit counters and the proxy's SHOW NODES), and
 * where the CPU went. Everything is torn down at the end, on failure and on Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { table } from '../src/cli/table.js';
import { capsUnavailable, createCpuCaps } from './cgroup.js';
import type { CapStat, CpuCaps } from './cgroup.js';
import { runMain } from './cleanup.js';
import { startCluster } from './cluster.js';
import type { BenchCluster, BenchNode } from './cluster.js';
import { startCpuMeter } from './cpu-usage.js';
import type { CpuReport } from './cpu-usage.js';
import { initPgbench, runPgbench } from './pgbench.js';
import type { PgbenchResult, QueryMode } from './pgbench.js';
import { startReadProxy } from './read-proxy.js';
import type { NodeRow, ReadProxy } from './read-proxy.js';
import { classificationFigures } from './reads-classify.js';
import { levelsTable, runLevels, summarizeLevels } from './reads-levels.js';
import type { ClassificationFigures } from './reads-classify.js';
import { int } from './options.js';

const USAGE = `Usage: npm run bench:reads -- [options]
       node --import tsx bench/reads.ts [options]

  --duration S      seconds of transactions per measured pgbench run (default 20; 5 with --quick)
  --quota-us N      CPU quota of each PostgreSQL node per period, in µs (default 15000: 0.15 core,
                    so that on a 2-core host the capped nodes, not the host, are the limit);
                    0 runs uncapped
  --period-us N     CFS period of those caps, in µs (default 100000); a shorter period makes each
                    throttled stall shorter (a node then behaves more like a slower machine than
                    one that stops for most of every 100 ms)
  --clients N       pgbench clients (default 32)
  --rounds N        passes over the five configurations (default 2; 1 with --quick)
  --mode M          pgbench -M: prepared (default), extended or simple
  --pool-size N     proxy server connections per server (default: the client count)
  --primary-weight N  proxy.primary_read_weight: the primary's share of reads next to each replica's 1
                    (default 1: the target is about a primary and 2 replicas together; 0 keeps reads off it)
  --balance B       proxy.balance: least-outstanding (default) or round-robin
  --node-concurrency C  proxy.node_concurrency: 0 (the proxy's default: as many as the pool has
                    connections), a number of transactions each node runs at once, or auto
  --scale N         pgbench -i -s N (default 10)
  --levels L        instead of the scaling configurations: the cost of read consistency levels
                    (comma-separated: eventual, read-your-writes, causal, linearizable, primary;
                    "all" for every one) through the proxy with 2 replicas, on a mixed workload
  --write-rate P    with --levels: percent of writes in the mix, comma-separated (default 10,50)
  --quick           --duration 5, one round (a smoke test)
  --json FILE       also write every number to FILE
  -h, --help        this text
`;

interface Options {
  durationS: number;
  quotaUs: number;
  periodUs: number;
  clients: number;
  rounds: number;
  mode: QueryMode;
  poolSize: number;
  primaryWeight: number;
  balance: 'round-robin' | 'least-outstanding';
  /** proxy.node_concurrency; null: the product's default. */
  nodeConcurrency: 'auto' | number | null;
  scale: number;
  quick: boolean;
  json: string | null;
  /** --levels: consistency levels to compare (empty: the scaling configurations). */
  levels: string[];
  writeRates: number[];
}

const ALL_LEVELS = ['eventual', 'read-your-writes', 'causal', 'linearizable', 'primary'];

/** Seconds of discarded warm-up before every measured run (pools, caches, JIT). */
const WARMUP_S = 3;
/**
 * Wait after a run before reading pg_stat_database: a backend that went idle less than 1 s after
 * its last report flushes its counters only 10 s later (PGSTAT_IDLE_INTERVAL, PostgreSQL ≥ 15).
 */
const STATS_SETTLE_MS = 11_000;

function levelsOption(v: string | undefined): string[] {
  if (v === undefined) return [];
  const levels = v === 'all' ? ALL_LEVELS : v.split(',');
  for (const l of levels)
    if (!ALL_LEVELS.includes(l)) throw new Error(`--levels: unknown level "${l}" (${ALL_LEVELS.join(', ')})`);
  // eventual is the baseline of the ratios
  return levels.includes('eventual') ? levels : ['eventual', ...levels];
}

function balanceOption(v: string | undefined): Options['balance'] {
  if (v === undefined) return 'least-outstanding';
  if (v === 'round-robin' || v === 'least-outstanding') return v;
  throw new Error(`--balance: expected round-robin or least-outstanding, got "${v}"`);
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      'quota-us': { type: 'string' },
      'period-us': { type: 'string' },
      clients: { type: 'string' },
      rounds: { type: 'string' },
      mode: { type: 'string' },
      'pool-size': { type: 'string' },
      'primary-weight': { type: 'string' },
      balance: { type: 'string' },
      'node-concurrency': { type: 'string' },
      scale: { type: 'string' },
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
      levels: { type: 'string' },
      'write-rate': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return null;
  const quick = values.quick ?? false;
  const mode = values.mode ?? 'prepared';
  if (!['simple', 'extended', 'prepared'].includes(mode))
    throw new Error(`--mode: expected simple, extended or prepared, got "${mode}"`);
  const quotaUs = int(values['quota-us'], 15_000, 'quota-us');
  if (quotaUs > 0 && quotaUs < 1000)
    throw new Error('--quota-us: the kernel accepts 1000 µs at least (or 0)');
  const clients = int(values.clients, 32, 'clients', 1);
  return {
    durationS: int(values.duration, quick ? 5 : 20, 'duration', 1),
    quotaUs,
    periodUs: int(values['period-us'], 100_000, 'period-us', 1000),
    clients,
    rounds: int(values.rounds, quick ? 1 : 2, 'rounds', 1),
    mode: mode as QueryMode,
    poolSize: int(values['pool-size'], clients, 'pool-size', 1),
    primaryWeight: int(values['primary-weight'], 1, 'primary-weight', 0),
    balance: balanceOption(values.balance),
    nodeConcurrency:
      values['node-concurrency'] === undefined
        ? null
        : values['node-concurrency'] === 'auto'
          ? 'auto'
          : int(values['node-concurrency'], 0, 'node-concurrency'),
    scale: int(values.scale, 10, 'scale', 1),
    quick,
    json: values.json ?? null,
    levels: levelsOption(values.levels),
    writeRates: (values['write-rate'] ?? '10,50').split(',').map((x) => {
      const n = Number(x);
      if (!Number.isInteger(n) || n < 0 || n > 100)
        throw new Error(`--write-rate: expected percentages 0-100, got "${x}"`);
      return n;
    }),
  };
}

const log = (s: string) => process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The configurations: without the proxy, pgbench talks to one node (`direct`: the primary, the
 * single-node baseline; `replica-direct`: a replica, to tell what a standby costs per read from
 * what the proxy costs); with it, `replicas` is how many replicas the proxy may read from.
 */
interface Config {
  name: string;
  replicas: number | null;
  /** Without the proxy: the index of the node pgbench connects to. */
  node?: number;
  /** pgbench clients as a share of --clients (default 1). */
  clientShare?: number;
}
const CONFIGS: readonly Config[] = [
  { name: 'direct', replicas: null, node: 0 },
  // The primary alone with the concurrency each of 3 nodes sees in proxy-2: a capped node can do
  // more with fewer backends competing for its quota, so the target is judged against the better
  // of the two direct runs, not against an overloaded one.
  { name: 'direct-third', replicas: null, node: 0, clientShare: 1 / 3 },
  { name: 'replica-direct', replicas: null, node: 1 },
  { name: 'proxy-0', replicas: 0 },
  { name: 'proxy-1', replicas: 1 },
  { name: 'proxy-2', replicas: 2 },
];

interface NodeFigures {
  /** pg_stat_database.xact_commit delta of the app database, over the run and the settle wait. */
  xacts: number;
  /** CPU used by the node (cores on average over the run), null without cpuacct or caps. */
  cores: number | null;
  /** Share of CFS periods in which the node hit its quota, null uncapped. */
  throttled: number | null;
}

interface RunRecord {
  round: number;
  config: string;
  pgbench: PgbenchResult;
  nodes: Record<string, NodeFigures>;
  /** Reads the proxy sent to each replica (SHOW NODES reads_served, by address), proxy runs only. */
  readsServed: Record<string, number> | null;
  cpu: CpuReport;
  /** Processes of a node found outside its cgroup before the run (and moved in). */
  strays: number;
  /** node_concurrency in force per pool after the run (SHOW POOLS), proxy runs only. */
  limits: number[] | null;
}

async function xactCommits(cluster: BenchCluster): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const n of cluster.nodes) {
    const c = await cluster.superClient(n);
    try {
      const r = await c.query<{ n: string }>(
        'SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = current_database()',
      );
      out[n.name] = Number(r.rows[0]!.n);
    } finally {
      await c.end();
    }
  }
  return out;
}

function capStats(caps: CpuCaps | null, nodes: readonly BenchNode[]): Record<string, CapStat> | null {
  if (!caps) return null;
  return Object.fromEntries(nodes.map((n) => [n.name, caps.stat(n.name)]));
}

/** Moves every process of every node into its cgroup (a no-op for those already there). */
function sweep(caps: CpuCaps | null, nodes: readonly BenchNode[]): number {
  if (!caps) return 0;
  let strays = 0;
  for (const n of nodes) {
    const pid = n.postmasterPid();
    if (pid === null) throw new Error(`${n.name} is not running`);
    strays += caps.strays(n.name, pid).length;
    caps.move(n.name, pid);
  }
  return strays;
}

async function waitReadSet(proxy: ReadProxy, replicas: number, cluster: BenchCluster): Promise<void> {
  // The first client of a pool creates its router (and the replicas' monitors).
  const c = new pg.Client({
    host: proxy.host,
    port: proxy.port,
    user: cluster.info.user,
    password: cluster.info.password,
    database: cluster.info.database,
  });
  c.on('error', () => undefined);
  await c.connect();
  await c.query('SELECT 1');
  await c.end();
  const deadline = Date.now() + 20_000;
  let rows: NodeRow[] = [];
  while (Date.now() < deadline) {
    rows = await proxy.showNodes();
    if (rows.filter((r) => r.role === 'replica' && r.inReadSet).length === replicas) return;
    await sleep(100);
  }
  throw new Error(`the proxy's read set did not reach ${replicas} replicas: ${JSON.stringify(rows)}`);
}

function servedByReplica(rows: readonly NodeRow[]): Record<string, number> {
  return Object.fromEntries(rows.filter((r) => r.role === 'replica').map((r) => [r.addr, r.readsServed]));
}

async function measure(
  o: Options,
  cluster: BenchCluster,
  caps: CpuCaps | null,
  config: Config,
  round: number,
): Promise<RunRecord> {
  let proxy: ReadProxy | null = null;
  try {
    const target = cluster.nodes[config.node ?? 0]!;
    let endpoint = { host: target.host, port: target.port };
    if (config.replicas !== null) {
      proxy = await startReadProxy(cluster.info, {
        replicas: cluster.nodes.slice(1, 1 + config.replicas),
        poolSize: o.poolSize,
        maxClients: o.clients,
        primaryWeight: o.primaryWeight,
        balance: o.balance,
        ...(o.nodeConcurrency !== null ? { nodeConcurrency: o.nodeConcurrency } : {}),
      });
      await waitReadSet(proxy, config.replicas, cluster);
      endpoint = { host: proxy.host, port: proxy.port };
    }
    const run = (durationS: number) =>
      runPgbench({
        pgbench: cluster.bins.pgbench,
        ...endpoint,
        user: cluster.info.user,
        password: cluster.info.password,
        database: cluster.info.database,
        workload: 'select-only',
        mode: o.mode,
        clients: Math.max(1, Math.round(o.clients * (config.clientShare ?? 1))),
        durationS,
      });
    const strays = sweep(caps, cluster.nodes);
    await run(WARMUP_S); // discarded: fills the proxy's pools and warms every cache
    sweep(caps, cluster.nodes);
    const x0 = await xactCommits(cluster);
    const s0 = proxy ? servedByReplica(await proxy.showNodes()) : null;
    const c0 = capStats(caps, cluster.nodes);
    const meter = startCpuMeter(proxy?.pid ?? null);
    const res = await run(o.durationS);
    const cpu = meter.stop();
    const c1 = capStats(caps, cluster.nodes);
    const s1 = proxy ? servedByReplica(await proxy.showNodes()) : null;
    const limits = proxy ? await proxy.poolLimits() : null;
    await sleep(STATS_SETTLE_MS);
    const x1 = await xactCommits(cluster);
    const nodes: Record<string, NodeFigures> = {};
    for (const n of cluster.nodes) {
      const a = c0?.[n.name];
      const b = c1?.[n.name];
      nodes[n.name] = {
        xacts: x1[n.name]! - x0[n.name]!,
        cores:
          a && b && a.usageNs !== null && b.usageNs !== null
            ? (b.usageNs - a.usageNs) / 1e9 / cpu.wallS
            : null,
        throttled:
          a && b && b.nrPeriods > a.nrPeriods
            ? (b.nrThrottled - a.nrThrottled) / (b.nrPeriods - a.nrPeriods)
            : null,
      };
    }
    const readsServed =
      s0 && s1 ? Object.fromEntries(Object.entries(s1).map(([k, v]) => [k, v - (s0[k] ?? 0)])) : null;
    return { round, config: config.name, pgbench: res, nodes, readsServed, cpu, strays, limits };
  } finally {
    await proxy?.stop();
  }
}

/**
 * Issue #14's targets, judged in every round against the primary alone at its better client count
 * in that round: proxy-0 >= 0.95 x it (the pool runs the node at its best concurrency), proxy-2 >= 2.7 x.
 */
function perRoundTargets(runs: readonly RunRecord[]): string[] {
  const rounds = [...new Set(runs.map((r) => r.round))];
  const tps = (round: number, config: string) =>
    runs.find((r) => r.round === round && r.config === config)?.pgbench.tps ?? NaN;
  const lines = [
    ['proxy-0', 0.95],
    ['proxy-2', 2.7],
  ].map(([config, want]) => {
    const ratios = rounds.map(
      (r) => tps(r, config as string) / Math.max(tps(r, 'direct'), tps(r, 'direct-third')),
    );
    const met = ratios.every((x) => x >= (want as number));
    return `target: ${config} >= ${want} x the primary alone at its better client count, in every round: ${ratios.map(f2).join(', ')} -> ${met ? 'met' : 'NOT met'}`;
  });
  return lines;
}

/** Round r's order: forwards on even rounds, backwards on odd ones (linear drift cancels out). */
function orderOf(round: number): Config[] {
  return round % 2 === 0 ? [...CONFIGS] : [...CONFIGS].reverse();
}

const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const f0 = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '-');
const f2 = (n: number | null) => (n !== null && Number.isFinite(n) ? n.toFixed(2) : '-');
const pct = (n: number | null) => (n !== null && Number.isFinite(n) ? `${(n * 100).toFixed(0)}%` : '-');

interface Summary {
  config: string;
  tps: number;
  tpsRounds: number[];
  p50Ms: number;
  p99Ms: number;
  vsDirect: number;
  vsDirectRounds: number[];
  vsProxy0: number;
  errors: string | null;
  /** Share of the runs' xact_commit delta per node. */
  spread: Record<string, number>;
  readsServed: Record<string, number> | null;
  nodeCores: Record<string, number | null>;
  nodeThrottled: Record<string, number | null>;
  proxyCores: number | null;
  proxyWait: number | null;
  pgbenchCores: number | null;
  hostBusy: number;
  load1: number;
}

function summarize(runs: readonly RunRecord[], nodes: readonly BenchNode[]): Summary[] {
  const by = (name: string) => runs.filter((r) => r.config === name);
  const tpsOf = (r: RunRecord) => r.pgbench.tps ?? 0;
  const direct = by('direct');
  const proxy0 = by('proxy-0');
  return CONFIGS.map((c) => {
    const rs = by(c.name);
    const tpsRounds = rs.map(tpsOf);
    const totalX = nodes.map((n) => rs.reduce((a, r) => a + r.nodes[n.name]!.xacts, 0));
    const sumX = totalX.reduce((a, b) => a + b, 0);
    const served: Record<string, number> = {};
    for (const r of rs)
      for (const [k, v] of Object.entries(r.readsServed ?? {})) served[k] = (served[k] ?? 0) + v;
    const avgOrNull = (xs: (number | null)[]) => (xs.every((x) => x !== null) && xs.length ? mean(xs) : null);
    const errs = rs.filter((r) => r.pgbench.errorLines > 0 || r.pgbench.failed > 0 || r.pgbench.tps === null);
    return {
      config: c.name,
      tps: mean(tpsRounds),
      tpsRounds,
      p50Ms: mean(rs.map((r) => r.pgbench.p50Ms ?? NaN)),
      p99Ms: mean(rs.map((r) => r.pgbench.p99Ms ?? NaN)),
      vsDirect: mean(tpsRounds) / mean(direct.map(tpsOf)),
      // Per round: this configuration against direct in the same round.
      vsDirectRounds: rs.map((r) => tpsOf(r) / tpsOf(direct.find((d) => d.round === r.round)!)),
      vsProxy0: mean(tpsRounds) / mean(proxy0.map(tpsOf)),
      errors: errs.length
        ? errs.map((r) => r.pgbench.firstError ?? `exit ${r.pgbench.exitCode}`).join('; ')
        : null,
      spread: Object.fromEntries(nodes.map((n, i) => [n.name, sumX > 0 ? totalX[i]! / sumX : NaN])),
      readsServed: c.replicas ? served : null,
      nodeCores: Object.fromEntries(
        nodes.map((n) => [n.name, avgOrNull(rs.map((r) => r.nodes[n.name]!.cores))]),
      ),
      nodeThrottled: Object.fromEntries(
        nodes.map((n) => [n.name, avgOrNull(rs.map((r) => r.nodes[n.name]!.throttled))]),
      ),
      proxyCores: avgOrNull(rs.map((r) => r.cpu.proxyCores)),
      proxyWait: avgOrNull(rs.map((r) => r.cpu.proxyRunqueueWait)),
      pgbenchCores: avgOrNull(rs.map((r) => r.cpu.pgbenchCores)),
      hostBusy: mean(rs.map((r) => r.cpu.hostBusy)),
      load1: mean(rs.map((r) => r.cpu.load1)),
    };
  });
}

function describeConfig(name: string, nodes: readonly BenchNode[]): string {
  const c = CONFIGS.find((x) => x.name === name)!;
  if (c.replicas === null) {
    const n = nodes[c.node ?? 0]!;
    return `${n.name} (${n.role}) directly${c.clientShare ? `, ${c.clientShare === 1 / 3 ? 'a third of the' : c.clientShare} clients` : ''}`;
  }
  if (c.replicas === 0) return `proxy -> ${nodes[0]!.name}; no replicas`;
  return `proxy -> ${nodes[0]!.name} + ${nodes
    .slice(1, 1 + c.replicas)
    .map((n) => n.name)
    .join(', ')}`;
}

function throughputTable(s: readonly Summary[], nodes: readonly BenchNode[]): string {
  return table(
    [
      'config',
      'servers',
      'TPS',
      'TPS per round',
      'p50/p99 ms',
      'x direct',
      'x direct per round',
      'x proxy-0',
      'errors',
    ],
    s.map((x) => [
      x.config,
      describeConfig(x.config, nodes),
      f0(x.tps),
      x.tpsRounds.map(f0).join(', '),
      `${f2(x.p50Ms)}/${f2(x.p99Ms)}`,
      f2(x.vsDirect),
      x.vsDirectRounds.map(f2).join(', '),
      f2(x.vsProxy0),
      x.errors ?? '0',
    ]),
  );
}

function resourceTable(s: readonly Summary[], nodes: readonly BenchNode[]): string {
  const names = nodes.map((n) => n.name);
  return table(
    [
      'config',
      `xact_commit share ${names.join('/')}`,
      'reads_served per replica',
      `PG cores ${names.join('/')}`,
      `throttled ${names.join('/')}`,
      'proxy cores',
      'proxy runq wait',
      'pgbench cores',
      'host busy',
      'load1',
    ],
    s.map((x) => [
      x.config,
      names.map((n) => pct(x.spread[n] ?? null)).join('/'),
      x.readsServed ? Object.values(x.readsServed).map(f0).join('/') || '-' : '-',
      names.map((n) => f2(x.nodeCores[n] ?? null)).join('/'),
      names.map((n) => pct(x.nodeThrottled[n] ?? null)).join('/'),
      f2(x.proxyCores),
      f2(x.proxyWait),
      f2(x.pgbenchCores),
      pct(x.hostBusy),
      x.load1.toFixed(1),
    ]),
  );
}

function classificationTable(c: ClassificationFigures): string {
  return table(
    [
      'classification, µs CPU per statement',
      'fast path',
      'parser, uncached',
      'miss (fast path on, no cache)',
      'cache hit',
    ],
    [['', f2(c.fastPathUs), f2(c.parsedUncachedUs), f2(c.mixedUncachedUs), f2(c.cachedUs)]],
  );
}

async function machine(cluster: BenchCluster) {
  const c = await cluster.superClient(cluster.nodes[0]!);
  const v = (await c.query<{ version: string }>('SELECT version()')).rows[0]!.version;
  await c.end();
  let pgbench = '';
  try {
    pgbench = execFileSync(cluster.bins.pgbench, ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    /* reported empty */
  }
  return {
    date: new Date().toISOString(),
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    memGb: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    postgres: v,
    pgbench,
    loadAtStart: loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
  };
}

/** Loads pgbench's tables into shared buffers on every node (pg_prewarm when it is installed). */
async function prewarm(cluster: BenchCluster): Promise<void> {
  const p = await cluster.superClient(cluster.nodes[0]!);
  try {
    await p.query('CREATE EXTENSION IF NOT EXISTS pg_prewarm');
  } catch (e) {
    log(
      `pg_prewarm unavailable (${e instanceof Error ? e.message : String(e)}); the warm-up runs fill the caches`,
    );
    return;
  } finally {
    await p.end();
  }
  await cluster.waitReplayed();
  for (const n of cluster.nodes) {
    const c = await cluster.superClient(n);
    try {
      await c.query(
        "SELECT pg_prewarm(r) FROM unnest(ARRAY['pgbench_accounts', 'pgbench_accounts_pkey', 'pgbench_branches', 'pgbench_tellers']::regclass[]) r",
      );
    } finally {
      await c.end();
    }
  }
}

async function main(o: Options): Promise<number> {
  const noCaps = o.quotaUs === 0 ? '--quota-us 0' : capsUnavailable();
  if (noCaps) log(`CPU caps: unavailable (${noCaps}); running UNCAPPED`);

  log('starting PostgreSQL: 1 primary + 2 streaming replicas…');
  const cluster = await startCluster({ replicas: 2, maxConnections: 300, sharedBuffers: '256MB' });
  log(
    `${cluster.nodes.map((n) => `${n.name} (${n.role}) :${n.port}`).join(', ')}; pgbench -i -s ${o.scale}…`,
  );
  await initPgbench(cluster.bins.pgbench, cluster.info, o.scale);
  {
    const c = await cluster.superClient(cluster.nodes[0]!);
    await c.query('VACUUM ANALYZE');
    await c.query('CHECKPOINT');
    await c.end();
  }
  await cluster.waitReplayed();
  await prewarm(cluster);
  const meta = await machine(cluster);

  let caps: CpuCaps | null = null;
  if (!noCaps) {
    caps = createCpuCaps(
      cluster.nodes.map((n) => n.name),
      o.quotaUs,
      o.periodUs,
    );
    sweep(caps, cluster.nodes);
    log(`CPU caps: ${caps.path}/<node>: cfs_quota_us ${o.quotaUs} per cfs_period_us ${o.periodUs}`);
  }

  if (o.levels.length > 0) return levelsMain(o, cluster, caps, meta, noCaps);

  const runs: RunRecord[] = [];
  const total = o.rounds * CONFIGS.length;
  for (let round = 0; round < o.rounds; round++) {
    for (const config of orderOf(round)) {
      const r = await measure(o, cluster, caps, config, round);
      runs.push(r);
      const spread = cluster.nodes.map((n) => r.nodes[n.name]!.xacts).join('/');
      log(
        `[${runs.length}/${total}] round ${round + 1} ${config.name}: ${r.pgbench.tps?.toFixed(0) ?? '-'} tps, ` +
          `p50 ${f2(r.pgbench.p50Ms)} ms, p99 ${f2(r.pgbench.p99Ms)} ms; xact_commit ${spread}; ` +
          `proxy ${f2(r.cpu.proxyCores)} cores (runq wait ${f2(r.cpu.proxyRunqueueWait)}), pgbench ${f2(r.cpu.pgbenchCores)}, host busy ${pct(r.cpu.hostBusy)}` +
          (r.limits ? `; node_concurrency ${r.limits.join('/')}` : '') +
          (r.strays ? `; ${r.strays} processes moved into their cgroup` : '') +
          (r.pgbench.errorLines
            ? `; ${r.pgbench.errorLines} error lines (${r.pgbench.firstError ?? ''})`
            : ''),
      );
    }
  }
  caps?.remove();
  caps = null;

  log('measuring classification cost…');
  const classification = await classificationFigures();

  const summary = summarize(runs, cluster.nodes);
  const d2 = summary.find((s) => s.config === 'proxy-2')!;
  const rd = summary.find((s) => s.config === 'replica-direct')!;
  const dr = summary.find((s) => s.config === 'direct')!;
  const dt = summary.find((s) => s.config === 'direct-third')!;
  const best = dt.tps > dr.tps ? dt : dr;
  const command = `npm run bench:reads -- ${process.argv.slice(2).join(' ')}`.trim();
  const capLine = noCaps
    ? `CPU caps: NONE (${noCaps}). Every node shares the host's ${meta.nproc} cores with the proxy and pgbench: ` +
      'these figures do NOT emulate separate machines, and read scaling cannot show.'
    : `CPU caps: cgroup v1 cpu controller, each PostgreSQL node (postmaster and every backend) capped at ` +
      `${(o.quotaUs / o.periodUs).toFixed(2)} core (cfs_quota_us ${o.quotaUs} / cfs_period_us ${o.periodUs}), ` +
      'to emulate separate, equally sized machines on one host; the proxy and pgbench are uncapped.';
  const out = [
    '',
    `command: ${command}`,
    `date: ${meta.date}; nproc ${meta.nproc} (${meta.cpu}), ${meta.memGb} GB, Linux ${meta.kernel}; node ${meta.node}; load at start ${meta.loadAtStart}`,
    meta.postgres,
    meta.pgbench,
    capLine,
    `workload: pgbench -S -n -M ${o.mode} -c ${o.clients} -j ${Math.min(o.clients, 4)}, ${o.durationS} s measured ` +
      `after a ${WARMUP_S} s warm-up, scale ${o.scale}; ${o.rounds} round(s), order alternating; ` +
      `proxy: transaction pooling, pool ${o.poolSize} per server, consistency read-your-writes (default), balance ${o.balance}, primary_read_weight ${o.primaryWeight}, node_concurrency ${o.nodeConcurrency ?? '0 (default)'}`,
    '',
    throughputTable(summary, cluster.nodes),
    '',
    resourceTable(summary, cluster.nodes),
    '',
    "TPS: mean over rounds; p50/p99: mean of the rounds' percentiles. x direct: TPS / TPS of the primary alone under the same cap.",
    "xact_commit share: of the app database's commits counted by each node during the runs (includes the proxy's health checks, ~50/s per node).",
    'PG cores: CPU each node used (cpuacct), in cores; throttled: share of 100 ms periods in which the node hit its quota.',
    'proxy runq wait: seconds the proxy was runnable but waiting for a core, per second (CPU starvation); host busy: all cores, every process on the host.',
    '',
    `target: proxy-2 >= 2.5 x the primary alone, at the better of its two client counts (${best.config}, ` +
      `${f0(best.tps)} TPS): ${f2(d2.tps / best.tps)} -> ${d2.tps / best.tps >= 2.5 ? 'met' : 'NOT met'}`,
    ...perRoundTargets(runs),
    o.primaryWeight === 0
      ? `The proxy reads from replicas only (primary_read_weight 0: the primary serves reads only when no replica is ` +
        `usable), so with 2 replicas its ceiling is 2 x one replica: proxy-2 / (2 x replica-direct) = ${f2(d2.tps / (2 * rd.tps))}.`
      : `The primary takes reads too (primary_read_weight ${o.primaryWeight}), so the ceiling is direct + 2 x replica-direct: ` +
        `proxy-2 / ceiling = ${f2(d2.tps / (best.tps + 2 * rd.tps))}.`,
    '',
    classificationTable(classification),
    `(${classification.source}; CPU time, median of trials)`,
  ];
  process.stdout.write(out.join('\n') + '\n');
  if (o.json) {
    writeFileSync(
      o.json,
      JSON.stringify(
        {
          meta: {
            ...meta,
            command,
            options: o,
            caps: noCaps ? { unavailable: noCaps } : { quotaUs: o.quotaUs, periodUs: o.periodUs },
          },
          nodes: cluster.nodes.map((n) => ({ name: n.name, role: n.role, port: n.port })),
          runs,
          summary,
          classification,
        },
        null,
        2,
      ) + '\n',
    );
    log(`wrote ${o.json}`);
  }
  await cluster.stop();
  return 0;
}

/** --levels: the consistency matrix instead of the scaling configurations. */
async function levelsMain(
  o: Options,
  cluster: BenchCluster,
  caps: CpuCaps | null,
  meta: Awaited<ReturnType<typeof machine>>,
  noCaps: string | null,
): Promise<number> {
  const runs = await runLevels(
    o,
    cluster,
    (p) => {
      sweep(caps, cluster.nodes);
      return waitReadSet(p, 2, cluster);
    },
    log,
  );
  caps?.remove();
  const summary = summarizeLevels(runs);
  const command = `npm run bench:reads -- ${process.argv.slice(2).join(' ')}`.trim();
  const out = [
    '',
    `command: ${command}`,
    `date: ${meta.date}; nproc ${meta.nproc} (${meta.cpu}), ${meta.memGb} GB, Linux ${meta.kernel}; node ${meta.node}; load at start ${meta.loadAtStart}`,
    meta.postgres,
    noCaps
      ? `CPU caps: NONE (${noCaps})`
      : `CPU caps: each PostgreSQL node at ${(o.quotaUs / o.periodUs).toFixed(2)} core (cgroup cpu controller)`,
    `workload: pgbench -n -M ${o.mode} -c ${o.clients}, single-statement transactions: point reads and one-row ` +
      `updates of pgbench_accounts (scale ${o.scale}); ${o.durationS} s measured after a 3 s warm-up; ` +
      `${o.rounds} round(s), order alternating; proxy: transaction pooling, primary + 2 replicas, ` +
      `pool ${o.poolSize} per server, balance ${o.balance}, primary_read_weight ${o.primaryWeight}, ryw_wait_ms 50 (default)`,
    '',
    levelsTable(summary),
    '',
    'x eventual: against eventual at the same write rate in the same run. p99 reads/writes: by pgbench script.',
  ];
  process.stdout.write(out.join('\n') + '\n');
  if (o.json) {
    writeFileSync(
      o.json,
      JSON.stringify({ meta: { ...meta, command, options: o }, runs, summary }, null, 2) + '\n',
    );
    log(`wrote ${o.json}`);
  }
  await cluster.stop();
  return 0;
}

await runMain(parseOptions, USAGE, main);
