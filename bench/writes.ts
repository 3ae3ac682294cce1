/**
 * `npm run bench:writes`: write throughput through pgscale's sharding proxy with 1, 2 and 4
 * groups (no replicas), every group's primary capped at the same CPU share with the cgroup v1 cpu
 * controller (to emulate separate machines on one host), and the proxy's CPU per transaction
 * sharded against the same workload on an unsharded 1-group cluster (tables not distributed).
 * Each configuration is its own `pgscale up` cluster (bench/writes-cluster.ts): two tables,
 * `accounts` and `history`, loaded through the proxy while local, then distributed by `aid` and
 * colocated (`create_distributed_table`) through the proxy; each pgbench transaction is
 * `BEGIN; UPDATE accounts … WHERE aid = :aid; INSERT INTO history … (:aid …); END;` with a
 * random aid — one group per transaction. The unsharded and the sharded 1-group clusters run at
 * the same time, their runs alternating (the proxy's CPU is compared under the same host load);
 * then the 2-group cluster, then the 4-group one. Per cluster: a discarded warm-up, then measured
 * runs at each client count in the first query mode and at --mode-clients in the others. Reports TPS,
 * the ratios to 1 group, the proxy's CPU per transaction (utime + stime of the controller process,
 * which runs the proxy, from /proc/<pid>/stat, its idle rate subtracted) and where the CPU went.
 * Every cluster and cgroup is removed at the end, on failure and on Ctrl-C.
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus, getPriority, loadavg, release, setPriority, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { capsUnavailable, createCpuCaps } from './cgroup.js';
import type { CapStat, CpuCaps } from './cgroup.js';
import { runMain } from './cleanup.js';
import { procCpuS, startCpuMeter } from './cpu-usage.js';
import { runPgbench } from './pgbench.js';
import type { QueryMode } from './pgbench.js';
import { startWritesCluster } from './writes-cluster.js';
import type { GroupPrimary, WritesCluster } from './writes-cluster.js';
import { CONFIGS, PHASES, report, summarize } from './writes-report.js';
import type { Config, Options, RunRecord } from './writes-report.js';
import { int } from './options.js';

const USAGE = `Usage: npm run bench:writes -- [options]
       node --import tsx bench/writes.ts [options]

  --duration S      seconds of transactions per measured pgbench run (default 12; 4 with --quick)
  --clients L       pgbench client counts, comma-separated (default 8,16,32; 16 with --quick)
  --modes L         pgbench -M modes, comma-separated: the first at every client count, the others
                    at --mode-clients (default simple,extended; simple with --quick)
  --mode-clients N  clients of the runs in the other modes (default 16)
  --quota-us N      CPU quota of each group's primary per period, in µs (default 10000: 0.1 core,
                    so that on a 2-core host 4 capped primaries, the proxy and pgbench fit); 0: uncapped
  --period-us N     CFS period of those caps, in µs (default 100000)
  --accounts N      rows of accounts (default 100000; 20000 with --quick)
  --shard-count N   create_distributed_table's shard_count (default 32)
  --pool-size N     proxy.default_pool_size (default 20, the proxy's default)
  --configs L       configurations to run, comma-separated (default all: unsharded-1g,sharded-1g,
                    sharded-2g,sharded-4g; the ratios need sharded-1g, the CPU comparison both 1-group ones)
  --nice=N          nice value of this process, inherited by everything it starts (pgbench, the
                    controller with its proxy, PostgreSQL): -10 favours them over the rest of a
                    shared host, to tell its load from the proxy's own limits (default 0: unchanged)
  --quick           a short check: --duration 4, --clients 16, --modes simple, --accounts 20000
  --json FILE       also write every number to FILE
  -h, --help        this text
`;

/** Seconds of discarded warm-up on every cluster before its measured runs. */
const WARMUP_S = 3;
/** Seconds the controller's CPU is sampled with no load, to subtract its background work. */
const IDLE_S = 3;

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      clients: { type: 'string' },
      modes: { type: 'string' },
      'mode-clients': { type: 'string' },
      'quota-us': { type: 'string' },
      'period-us': { type: 'string' },
      accounts: { type: 'string' },
      'shard-count': { type: 'string' },
      'pool-size': { type: 'string' },
      configs: { type: 'string' },
      nice: { type: 'string' },
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return null;
  const quick = values.quick ?? false;
  const modes = (values.modes ?? (quick ? 'simple' : 'simple,extended')).split(',');
  for (const m of modes)
    if (!['simple', 'extended', 'prepared'].includes(m))
      throw new Error(`--modes: expected simple, extended or prepared, got "${m}"`);
  const clients = (values.clients ?? (quick ? '16' : '8,16,32'))
    .split(',')
    .map((c) => int(c, 0, 'clients', 1));
  const quotaUs = int(values['quota-us'], 10_000, 'quota-us');
  if (quotaUs > 0 && quotaUs < 1000)
    throw new Error('--quota-us: the kernel accepts 1000 µs at least (or 0)');
  const configs = values.configs?.split(',') ?? CONFIGS.map((c) => c.name);
  for (const c of configs)
    if (!CONFIGS.some((x) => x.name === c))
      throw new Error(`--configs: unknown configuration "${c}" (${CONFIGS.map((x) => x.name).join(', ')})`);
  const nice = values.nice === undefined ? null : Number(values.nice);
  if (nice !== null && (!Number.isInteger(nice) || nice < -20 || nice > 19))
    throw new Error(`--nice: expected an integer from -20 to 19, got "${values.nice}"`);
  return {
    configs,
    nice,
    durationS: int(values.duration, quick ? 4 : 12, 'duration', 1),
    clients,
    modes: modes as QueryMode[],
    modeClients: int(values['mode-clients'], 16, 'mode-clients', 1),
    quotaUs,
    periodUs: int(values['period-us'], 100_000, 'period-us', 1000),
    accounts: int(values.accounts, quick ? 20_000 : 100_000, 'accounts', 1),
    shardCount: int(values['shard-count'], 32, 'shard-count', 1),
    poolSize: int(values['pool-size'], 20, 'pool-size', 1),
    quick,
    json: values.json ?? null,
  };
}

const log = (s: string) => process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function script(accounts: number): { name: string; text: string } {
  return {
    name: `writes-${accounts}`,
    text:
      `\\set aid random(1, ${accounts})\n` +
      '\\set delta random(-5000, 5000)\n' +
      'BEGIN;\n' +
      'UPDATE accounts SET balance = balance + :delta WHERE aid = :aid;\n' +
      'INSERT INTO history (aid, delta, at) VALUES (:aid, :delta, now());\n' +
      'END;\n',
  };
}

/** Creates and loads the tables through the proxy, then distributes them (or not). */
async function load(o: Options, c: WritesCluster, distributed: boolean): Promise<Record<string, number>> {
  const app = new pg.Client(c.app);
  app.on('error', () => undefined);
  await app.connect();
  try {
    await app.query(
      'CREATE TABLE accounts (aid bigint PRIMARY KEY, balance int NOT NULL DEFAULT 0, filler text)',
    );
    await app.query(
      'CREATE TABLE history (aid bigint NOT NULL, delta int NOT NULL, at timestamptz NOT NULL)',
    );
    // Loaded while the table is local (group 0): create_distributed_table moves the rows.
    await app.query(
      `INSERT INTO accounts (aid, balance, filler) SELECT g, 0, repeat('x', 84) FROM generate_series(1, ${o.accounts}) g`,
    );
    if (distributed) {
      await app.query(`SELECT create_distributed_table('accounts', 'aid', shard_count => ${o.shardCount})`);
      await app.query("SELECT create_distributed_table('history', 'aid', colocate_with => 'accounts')");
    }
  } finally {
    await app.end();
  }
  const rows: Record<string, number> = {};
  for (const p of c.primaries) {
    const s = await c.superClient(p);
    try {
      await s.query('VACUUM ANALYZE');
      await s.query('CHECKPOINT');
      rows[p.name] = Number((await s.query<{ n: string }>('SELECT count(*) AS n FROM accounts')).rows[0]!.n);
    } finally {
      await s.end();
    }
  }
  return rows;
}

function capStats(caps: CpuCaps | null, st: Stand): Record<string, CapStat> | null {
  return caps
    ? Object.fromEntries(st.cluster.primaries.map((p) => [p.name, caps.stat(capName(st.config, p))]))
    : null;
}

async function measure(
  o: Options,
  st: Stand,
  caps: CpuCaps | null,
  mode: QueryMode,
  clients: number,
): Promise<RunRecord> {
  const { cluster: c, config, idleCores } = st;
  const strays = sweepStand(caps, st);
  const s0 = capStats(caps, st);
  const cpu0 = procCpuS(c.controllerPid);
  const t0 = performance.now();
  const meter = startCpuMeter(c.controllerPid);
  const res = await runPgbench({
    pgbench: c.pgbench,
    ...c.app,
    workload: 'script',
    script: script(o.accounts),
    mode,
    clients,
    durationS: o.durationS,
  });
  const cpu = meter.stop();
  const wallS = (performance.now() - t0) / 1000;
  const cpu1 = procCpuS(c.controllerPid);
  const s1 = capStats(caps, st);
  const proxyCpuS = cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null;
  const nodes: RunRecord['nodes'] = {};
  for (const p of c.primaries) {
    const a = s0?.[p.name];
    const b = s1?.[p.name];
    nodes[p.name] = {
      cores:
        a && b && a.usageNs !== null && b.usageNs !== null ? (b.usageNs - a.usageNs) / 1e9 / wallS : null,
      throttled:
        a && b && b.nrPeriods > a.nrPeriods
          ? (b.nrThrottled - a.nrThrottled) / (b.nrPeriods - a.nrPeriods)
          : null,
    };
  }
  const tx = res.transactions;
  return {
    config: config.name,
    groups: config.groups,
    mode,
    clients,
    pgbench: res,
    wallS,
    proxyCpuS,
    proxyUsPerTx: proxyCpuS !== null && tx > 0 ? (proxyCpuS / tx) * 1e6 : null,
    proxyUsPerTxNet:
      proxyCpuS !== null && tx > 0 ? (Math.max(0, proxyCpuS - idleCores * wallS) / tx) * 1e6 : null,
    cpu,
    nodes,
    strays,
    otherCores:
      Object.values(nodes).every((n) => n.cores !== null) && cpu.proxyCores !== null
        ? Math.max(
            0,
            cpu.hostBusy * availableParallelism() -
              cpu.proxyCores -
              (cpu.pgbenchCores ?? 0) -
              Object.values(nodes).reduce((a, n) => a + (n.cores ?? 0), 0),
          )
        : null,
  };
}

interface Stand {
  config: Config;
  cluster: WritesCluster;
  /** The controller's CPU use with no load, in cores. */
  idleCores: number;
}

/** The cgroup of a primary: one caps instance holds every cluster of a phase. */
const capName = (config: Config, p: GroupPrimary) => `${config.name}.${p.name}`;

function sweepStand(caps: CpuCaps | null, st: Stand): number {
  if (!caps) return 0;
  let strays = 0;
  for (const p of st.cluster.primaries) {
    const pid = p.postmasterPid();
    if (pid === null) throw new Error(`${st.config.name}: ${p.name} is not running`);
    strays += caps.strays(capName(st.config, p), pid).length;
    caps.move(capName(st.config, p), pid);
  }
  return strays;
}

/**
 * One phase: the clusters of `configs` up at the same time (the 1-group pair, so that the proxy's
 * CPU is compared under the same host load: their runs alternate), each loaded and warmed up; then
 * every client count in the first mode and --mode-clients in the others, configuration by
 * configuration in an order that alternates from one point to the next.
 */
async function runPhase(
  o: Options,
  configs: readonly Config[],
  noCaps: string | null,
  runs: RunRecord[],
  rowsByConfig: Record<string, Record<string, number>>,
  idle: Record<string, number>,
  idlePrimaries: Record<string, (number | null)[]>,
): Promise<void> {
  const stands: Stand[] = [];
  let caps: CpuCaps | null = null;
  try {
    for (const config of configs) {
      log(`${config.name}: starting a ${config.groups}-group cluster (pgscale up)…`);
      const cluster = await startWritesCluster({
        groups: config.groups,
        poolSize: o.poolSize,
        maxConnections: Math.max(100, o.poolSize + 20),
        sharedBuffers: '128MB',
      });
      stands.push({ config, cluster, idleCores: 0 });
      rowsByConfig[config.name] = await load(o, cluster, config.distributed);
      log(`  loaded ${o.accounts} accounts; rows per group: ${JSON.stringify(rowsByConfig[config.name])}`);
    }
    if (!noCaps) {
      caps = createCpuCaps(
        stands.flatMap((st) => st.cluster.primaries.map((p) => capName(st.config, p))),
        o.quotaUs,
        o.periodUs,
      );
      for (const st of stands) sweepStand(caps, st);
    }
    for (const st of stands) {
      const i0 = procCpuS(st.cluster.controllerPid);
      const n0 = capStats(caps, st);
      await sleep(IDLE_S * 1000);
      const i1 = procCpuS(st.cluster.controllerPid);
      const n1 = capStats(caps, st);
      // What the primaries do with no client: health checks, the controller's and proxy's queries.
      idlePrimaries[st.config.name] = st.cluster.primaries.map((p) => {
        const a = n0?.[p.name]?.usageNs;
        const b = n1?.[p.name]?.usageNs;
        return a !== undefined && b !== undefined && a !== null && b !== null ? (b - a) / 1e9 / IDLE_S : null;
      });
      st.idleCores = i0 !== null && i1 !== null ? (i1 - i0) / IDLE_S : 0;
      idle[st.config.name] = st.idleCores;
      // Discarded: fills the proxy's pools and the caches, and JIT-compiles the proxy's hot path.
      for (const mode of o.modes)
        await runPgbench({
          pgbench: st.cluster.pgbench,
          ...st.cluster.app,
          workload: 'script',
          script: script(o.accounts),
          mode,
          clients: Math.max(...o.clients),
          durationS: WARMUP_S,
        });
    }
    const points: [QueryMode, number][] = [
      ...o.clients.map((n): [QueryMode, number] => [o.modes[0]!, n]),
      ...o.modes.slice(1).map((m): [QueryMode, number] => [m, o.modeClients]),
    ];
    for (const [i, [mode, clients]] of points.entries()) {
      const order = i % 2 === 0 ? stands : [...stands].reverse();
      for (const st of order) {
        const r = await measure(o, st, caps, mode, clients);
        runs.push(r);
        log(
          `  ${st.config.name} -M ${mode} -c ${clients}: ${r.pgbench.tps?.toFixed(0) ?? '-'} tps, ` +
            `p50 ${r.pgbench.p50Ms?.toFixed(2) ?? '-'} ms; proxy ${r.proxyUsPerTxNet?.toFixed(0) ?? '-'} µs/tx ` +
            `(${r.cpu.proxyCores?.toFixed(2) ?? '-'} cores, runq wait ${r.cpu.proxyRunqueueWait?.toFixed(2) ?? '-'}); ` +
            `primaries ${Object.values(r.nodes)
              .map(
                (n) =>
                  `${n.cores?.toFixed(2) ?? '-'} cores/${n.throttled !== null ? (n.throttled * 100).toFixed(0) : '-'}% thr`,
              )
              .join(
                ', ',
              )}; pgbench ${r.cpu.pgbenchCores?.toFixed(2) ?? '-'}; host busy ${(r.cpu.hostBusy * 100).toFixed(0)}%` +
            (r.pgbench.errorLines ? `; ${r.pgbench.errorLines} errors (${r.pgbench.firstError ?? ''})` : '') +
            (r.strays ? `; ${r.strays} processes moved into their cgroup` : ''),
        );
      }
    }
  } finally {
    caps?.remove();
    for (const st of stands.reverse()) await st.cluster.stop();
  }
}

function machine() {
  return {
    date: new Date().toISOString(),
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    memGb: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    loadAtStart: loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
  };
}

async function main(o: Options): Promise<number> {
  const noCaps = o.quotaUs === 0 ? '--quota-us 0' : capsUnavailable();
  if (noCaps) log(`CPU caps: unavailable (${noCaps}); running UNCAPPED`);
  const meta = machine();
  const runs: RunRecord[] = [];
  const rows: Record<string, Record<string, number>> = {};
  const idle: Record<string, number> = {};
  const idlePrimaries: Record<string, (number | null)[]> = {};
  if (o.nice !== null) {
    setPriority(o.nice);
    log(`nice ${getPriority()}: inherited by pgbench, the controller and PostgreSQL`);
  }
  for (const phase of PHASES.map((p) => p.filter((n) => o.configs.includes(n))).filter((p) => p.length))
    await runPhase(
      o,
      phase.map((n) => CONFIGS.find((c) => c.name === n)!),
      noCaps,
      runs,
      rows,
      idle,
      idlePrimaries,
    );
  log(
    `with no load: controller ${JSON.stringify(idle)} cores; primaries ${JSON.stringify(idlePrimaries)} cores`,
  );
  const summary = summarize(o, runs);
  const command = `npm run bench:writes -- ${process.argv.slice(2).join(' ')}`.trim();
  process.stdout.write(report(o, meta, command, noCaps, summary, runs, rows) + '\n');
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
            script: script(o.accounts).text,
          },
          rowsPerGroup: rows,
          controllerIdleCores: idle,
          primaryIdleCores: idlePrimaries,
          runs,
          summary,
        },
        null,
        2,
      ) + '\n',
    );
    log(`wrote ${o.json}`);
  }
  return 0;
}

await runMain(parseOptions, USAGE, main);
