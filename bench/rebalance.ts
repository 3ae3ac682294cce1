/**
 * `npm run bench:rebalance` (issue #17): shard moves under a steady write load. A 3-group cluster
 * (one primary per group, no replicas, wal_level=logical) gets `users` (bigint key, a ~1 KB text
 * payload; shard_count 32); `pgscale drain-group 2` empties group 2 while the table is still
 * empty, so that group 2 plays a newly added group. About --mb MB (PGSCALE_REBALANCE_MB, default
 * 1024) are then loaded straight into groups 0 and 1 (each group's parent table routes every row
 * to its partition; a row of a shard the group does not hold is never generated there), and 32
 * shards' worth of them will be spread over three groups by `pgscale rebalance`.
 *
 * Measured, in one run on one machine:
 * - the copy baseline: `pg_dump -t <shard> … | psql` of about as many bytes as the rebalance
 *   will move, from groups 0 and 1 into a scratch database on group 2 (no load running);
 * - a write load through the proxy (bench/rebalance-load.ts) alone for --seconds: its throughput
 *   and latency before (and again after the rebalance, to see the host's drift);
 * - `pgscale rebalance` under the same load: each move's write pause (pause_ms of its record:
 *   hold start → release), the load's latency and throughput during the job, the job's total
 *   time, and the copy rate (source bytes over the time each move spent in its copy step, seen
 *   by polling GET /sharding/moves every 100 ms; and over each move's whole duration);
 * - afterwards: every acknowledged insert present once, sum(v) equal to the acknowledged
 *   updates, every shard on exactly one group, no subscription or logical slot left.
 *
 *   npm run bench:rebalance -- [--mb N] [--clients N] [--seconds N] [--shard-count N]
 *                              [--param NAME=VALUE]… [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { runMain } from './cleanup.js';
import { int } from './options.js';
import { baseline } from './rebalance-baseline.js';
import { startWriteLoad, windowStats } from './rebalance-load.js';
import type { Window, WriteLoad } from './rebalance-load.js';
import { startWritesCluster } from './writes-cluster.js';
import type { WritesCluster } from './writes-cluster.js';
import { binarySets } from '../test/harness.js';
import { controllerCall } from '../src/cli/controller-api.js';
import type { PgBinaries } from '../src/cluster/binaries.js';
import type { JobRecord, MoveRecord } from '../src/cli/sharding-moves.js';

const USAGE = `Usage: npm run bench:rebalance -- [options]

  --mb N            MB of table data to load (default: PGSCALE_REBALANCE_MB, else 1024)
  --clients N       clients of the write load (default 4)
  --seconds N       seconds of the load measured before the rebalance (default 20)
  --shard-count N   shard_count of the table (default 32)
  --build B         the PostgreSQL build: system (default: the newest one with pgbench) or
                    embedded (the npm package's; it has no pg_dump: no baseline then)
  --param NAME=VALUE  a PostgreSQL parameter of every node (repeatable), e.g.
                    wal_retrieve_retry_interval=200ms (see docs/benchmarks.md)
  --json FILE       where to write every number (default bench/results/rebalance-<date>.json)
  -h, --help        this text
`;

interface Options {
  mb: number;
  clients: number;
  seconds: number;
  shardCount: number;
  params: Record<string, string>;
  build: 'system' | 'embedded';
  json: string | null;
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      mb: { type: 'string' },
      clients: { type: 'string' },
      seconds: { type: 'string' },
      'shard-count': { type: 'string' },
      param: { type: 'string', multiple: true },
      build: { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return null;
  const params: Record<string, string> = {};
  for (const p of values.param ?? []) {
    const m = /^([a-z_][a-z0-9_.]*)=(.*)$/i.exec(p);
    if (!m) throw new Error(`--param: expected NAME=VALUE, got "${p}"`);
    params[m[1]!] = m[2]!;
  }
  const build = values.build ?? 'system';
  if (build !== 'system' && build !== 'embedded')
    throw new Error(`--build: expected system or embedded, got "${build}"`);
  return {
    build,
    mb: int(values.mb ?? process.env.PGSCALE_REBALANCE_MB, 1024, 'mb', 1),
    clients: int(values.clients, 4, 'clients', 1),
    seconds: int(values.seconds, 20, 'seconds', 1),
    shardCount: int(values['shard-count'], 32, 'shard-count', 3),
    params,
    json: values.json ?? null,
  };
}

function embeddedBinaries(): PgBinaries {
  const b = binarySets().find((x) => x.source === 'embedded');
  if (!b) throw new Error('--build embedded: the embedded PostgreSQL package is not installed');
  return b;
}

const log = (s: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MB = 1048576;
/** The payload: 30 md5s, 960 characters (no compression, no TOAST): 8 rows a page, about 1 KB a row. */
const PAYLOAD = 'repeat(md5(i::text), 30)';
const FIRST_INSERT_ID = 10_000_000_000;
/** How often GET /sharding/moves is polled for the steps' times (their resolution). */
const POLL_MS = 100;

interface Shard {
  name: string;
  remainder: number;
  bytes: number;
}

/** The partitions of `users` on a primary: name, remainder, pg_table_size. */
async function shardsOn(s: pg.Client): Promise<Shard[]> {
  const r = await s.query<{ name: string; bound: string; bytes: string }>(
    `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound, pg_table_size(c.oid)::text AS bytes
       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'users'::regclass ORDER BY c.relname`,
  );
  return r.rows.map((x) => ({
    name: x.name,
    remainder: Number(/remainder (\d+)/.exec(x.bound)![1]),
    bytes: Number(x.bytes),
  }));
}

async function withSuper<T>(c: WritesCluster, g: number, f: (s: pg.Client) => Promise<T>): Promise<T> {
  const s = await c.superClient(c.primaries[g]!);
  try {
    return await f(s);
  } finally {
    await s.end().catch(() => undefined);
  }
}

/** Loads rows 1..n into groups 0 and 1, each only the keys of the shards it holds. */
async function loadRows(c: WritesCluster, o: Options, n: number, held: Shard[][]): Promise<void> {
  const chunk = 65536;
  for (let a = 1; a <= n; a += chunk) {
    const b = Math.min(n, a + chunk - 1);
    const counts = await Promise.all(
      [0, 1].map((g) =>
        withSuper(c, g, async (s) => {
          const r = await s.query(
            `INSERT INTO users (user_id, v, payload)
             SELECT i, 0, ${PAYLOAD} FROM generate_series($1::bigint, $2::bigint) i
              WHERE EXISTS (SELECT FROM unnest($3::int[]) r
                             WHERE satisfies_hash_partition('users'::regclass, ${o.shardCount}, r, i))`,
            [a, b, held[g]!.map((x) => x.remainder)],
          );
          return r.rowCount ?? 0;
        }),
      ),
    );
    if (counts[0]! + counts[1]! !== b - a + 1)
      throw new Error(`rows ${a}..${b}: groups 0 and 1 took ${counts.join(' + ')}, not ${b - a + 1}`);
    if (Math.floor(b / chunk) % 4 === 0 || b === n) log(`  loaded ${b} of ${n} rows`);
  }
  await Promise.all(
    [0, 1].map((g) =>
      withSuper(c, g, async (s) => {
        await s.query('VACUUM (ANALYZE) users');
        await s.query('CHECKPOINT');
      }),
    ),
  );
}

/** Follows the job by polling: when each move was first seen in each step (ms, performance.now()). */
function watchSteps(c: WritesCluster): { stop(): Promise<Map<string, Map<string, number>>> } {
  const seen = new Map<string, Map<string, number>>();
  let stopping = false;
  const run = (async () => {
    while (!stopping) {
      try {
        const r = await controllerCall(c.cluster, 'GET', '/sharding/moves');
        const now = performance.now();
        const job = r.body.current as JobRecord | null;
        for (const m of job?.moves ?? []) {
          const s = seen.get(m.id) ?? new Map<string, number>();
          seen.set(m.id, s);
          const key = m.state === 'running' ? (m.step ?? 'running') : m.state;
          if (!s.has(key)) s.set(key, now);
        }
      } catch {
        /* the next poll */
      }
      await sleep(POLL_MS);
    }
  })();
  return {
    async stop() {
      stopping = true;
      await run;
      return seen;
    },
  };
}

const epochToPerf = (iso: string) => Date.parse(iso) - performance.timeOrigin;
const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : NaN;
};

/** Time in the copy step: from its first sighting to the first sighting of a later one. */
function copyMs(m: MoveRecord, steps: Map<string, number> | undefined): number | null {
  const start = steps?.get('copy');
  if (start === undefined) return null;
  const later = ['catchup', 'cutover', 'cleanup', 'done']
    .map((k) => steps!.get(k))
    .filter((x): x is number => x !== undefined);
  const end = later.length ? Math.min(...later) : m.finished_at ? epochToPerf(m.finished_at) : null;
  return end === null ? null : end - start;
}

async function check(c: WritesCluster, o: Options, rows: number, load: WriteLoad): Promise<string[]> {
  const problems: string[] = [];
  const acked = new Set(load.insertedIds);
  const found = new Map<number, number>();
  let total = 0;
  let sumV = 0;
  const where = new Map<string, number>();
  for (let g = 0; g < c.primaries.length; g++) {
    await withSuper(c, g, async (s) => {
      const agg = await s.query<{ n: string; v: string }>(
        'SELECT count(*)::text AS n, coalesce(sum(v), 0)::text AS v FROM users',
      );
      total += Number(agg.rows[0]!.n);
      sumV += Number(agg.rows[0]!.v);
      const ids = await s.query<{ id: string }>('SELECT user_id::text AS id FROM users WHERE user_id >= $1', [
        FIRST_INSERT_ID,
      ]);
      for (const { id } of ids.rows) found.set(Number(id), (found.get(Number(id)) ?? 0) + 1);
      for (const sh of await shardsOn(s)) {
        if (where.has(sh.name)) problems.push(`${sh.name} on groups ${where.get(sh.name)} and ${g}`);
        where.set(sh.name, g);
      }
      const left = await s.query<{ x: string }>(
        `SELECT subname AS x FROM pg_subscription
          UNION ALL SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'logical'`,
      );
      if (left.rows.length) problems.push(`group ${g}: left behind: ${left.rows.map((r) => r.x).join(', ')}`);
    });
  }
  if (where.size !== o.shardCount) problems.push(`${where.size} shards found, not ${o.shardCount}`);
  let lost = 0;
  for (const id of acked) if (found.get(id) !== 1) lost++;
  if (lost) problems.push(`${lost} acknowledged inserts missing or duplicated`);
  const extra = [...found.keys()].filter((id) => !acked.has(id)).length;
  if (extra && load.errors.length === 0)
    problems.push(`${extra} rows inserted that no client saw acknowledged`);
  if (load.errors.length === 0) {
    if (total !== rows + acked.size) problems.push(`${total} rows, expected ${rows} + ${acked.size}`);
    if (sumV !== load.updates) problems.push(`sum(v) is ${sumV}, ${load.updates} updates acknowledged`);
  }
  return problems;
}

async function main(o: Options): Promise<number> {
  const meta = {
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
  const tStart = performance.now();
  log('starting a 3-group cluster (one primary each, wal_level=logical)…');
  const c = await startWritesCluster({
    groups: 3,
    poolSize: 20,
    maxConnections: 100,
    sharedBuffers: '256MB',
    name: 'benchrebalance',
    ...(o.build === 'embedded' ? { bins: embeddedBinaries() } : {}),
    synchronousCommit: 'on',
    parameters: { wal_level: 'logical', max_wal_size: '4GB', checkpoint_timeout: '15min', ...o.params },
  });
  try {
    const app = new pg.Client(c.app);
    app.on('error', () => undefined);
    await app.connect();
    try {
      await app.query(
        'CREATE TABLE users (user_id bigint PRIMARY KEY, v bigint NOT NULL DEFAULT 0, payload text NOT NULL)',
      );
      await app.query(`SELECT create_distributed_table('users', 'user_id', shard_count => ${o.shardCount})`);
    } finally {
      await app.end();
    }
    log('pgscale drain-group 2 (the table is empty): group 2 plays the new group');
    const drain = await c.cli(['drain-group', '2']);
    if (drain.code !== 0) throw new Error(`drain-group 2 failed: ${drain.stderr}${drain.stdout}`);
    const held = await Promise.all([0, 1, 2].map((g) => withSuper(c, g, shardsOn)));
    if (held[2]!.length !== 0) throw new Error(`group 2 still holds ${held[2]!.length} shards`);

    const rows = Math.round(o.mb * 1024);
    log(`loading ${rows} rows (~${o.mb} MB) straight into groups 0 and 1…`);
    const tLoad = performance.now();
    await loadRows(c, o, rows, held);
    const loadS = (performance.now() - tLoad) / 1000;
    const sized = await Promise.all([0, 1].map((g) => withSuper(c, g, shardsOn)));
    const tableBytes = sized.flat().reduce((n, s) => n + s.bytes, 0);
    log(`  ${(tableBytes / MB).toFixed(0)} MB in ${loadS.toFixed(0)} s (pg_table_size of the shards)`);

    // Baseline: about the bytes the rebalance moves (a third), from both groups into group 2.
    const picked: string[][] = [[], []];
    const baseShards = Math.round(o.shardCount / 3);
    for (let i = 0; i < baseShards; i++)
      picked[i % 2]!.push(`public.${sized[i % 2]![Math.floor(i / 2)]!.name}`);
    const baseBytes = sized
      .flat()
      .filter((x) => picked.flat().includes(`public.${x.name}`))
      .reduce((n, x) => n + x.bytes, 0);
    log(`baseline: pg_dump | psql of ${baseShards} shards (${(baseBytes / MB).toFixed(0)} MB) into group 2…`);
    const baseS = await baseline(c, picked);
    if (baseS === null) log(`  skipped: no pg_dump in ${c.bins.dir}`);
    else log(`  ${baseS.toFixed(1)} s: ${(baseBytes / MB / baseS).toFixed(1)} MB/s`);

    log(`write load: ${o.clients} clients; ${o.seconds} s measured before the rebalance…`);
    const load = await startWriteLoad(c.app, {
      clients: o.clients,
      loadedRows: rows,
      firstInsertId: FIRST_INSERT_ID,
    });
    let job: JobRecord;
    let steps: Map<string, Map<string, number>>;
    let before: Window;
    let during: Window;
    let after: Window;
    try {
      await sleep(3000);
      const b0 = performance.now();
      await sleep(o.seconds * 1000);
      const b1 = performance.now();
      log('pgscale rebalance under the load…');
      const watch = watchSteps(c);
      const reb = await c.cli(['rebalance', '--json']);
      steps = await watch.stop();
      if (reb.code !== 0) throw new Error(`rebalance failed (exit ${reb.code}): ${reb.stderr}${reb.stdout}`);
      job = JSON.parse(reb.stdout) as JobRecord;
      // The same window after: on a shared host the load beside ours drifts; before and after
      // agreeing says the ratio is the rebalance's.
      await sleep(2000);
      const a0 = performance.now();
      await sleep(o.seconds * 1000);
      before = windowStats(load, b0, b1);
      during = windowStats(load, epochToPerf(job.started_at), epochToPerf(job.finished_at!));
      after = windowStats(load, a0, performance.now());
    } finally {
      await load.stop();
    }
    const moves = job.moves.filter((m) => m.state === 'done');
    const pauses = moves.map((m) => m.pause_ms ?? NaN);
    const movedBytes = moves.reduce((n, m) => n + (m.source_bytes ?? 0), 0);
    const copyTimes = moves.map((m) => copyMs(m, steps.get(m.id)));
    const copyS = copyTimes.reduce<number>((n, x) => n + (x ?? 0), 0) / 1000;
    const moveS =
      moves.reduce((n, m) => n + (Date.parse(m.finished_at!) - Date.parse(m.started_at!)), 0) / 1000;
    const totalS = (Date.parse(job.finished_at!) - Date.parse(job.started_at)) / 1000;
    const baseRate = baseS === null ? NaN : baseBytes / baseS;
    const copyRate = movedBytes / copyS;
    const moveRate = movedBytes / moveS;
    log('checking: acknowledged inserts, sum(v), shards, leftovers…');
    const problems = await check(c, o, rows, load);
    const summary = {
      tableMb: tableBytes / MB,
      moves: moves.length,
      planned: job.moves.length,
      jobState: job.state,
      pauseMs: { p50: pct(pauses, 0.5), p99: pct(pauses, 0.99), max: Math.max(...pauses), all: pauses },
      totalS,
      movedMb: movedBytes / MB,
      copyRateMbS: copyRate / MB,
      moveRateMbS: moveRate / MB,
      baseline: { mb: baseBytes / MB, seconds: baseS, rateMbS: baseRate / MB },
      copyRatio: copyRate / baseRate,
      moveRatio: moveRate / baseRate,
      throughputRatio: during.perSecond / before.perSecond,
      throughputRatioAfter: during.perSecond / after.perSecond,
      errors: load.errors.length,
      errorSamples: load.errors.slice(0, 5),
      acknowledged: { inserts: load.insertedIds.length, updates: load.updates },
      problems,
      runS: (performance.now() - tStart) / 1000,
    };
    const f = (x: number, d = 0) => x.toFixed(d);
    const command = `npm run bench:rebalance -- ${process.argv.slice(2).join(' ')}`.trim();
    process.stdout.write(
      [
        `# bench:rebalance (${command}); ${f(summary.tableMb)} MB over groups 0 and 1, ${o.shardCount} shards, ${o.clients} clients, PostgreSQL ${c.bins.version}, ${meta.nproc} cores, load at start ${meta.loadAtStart}${
          Object.keys(o.params).length
            ? `, ${Object.entries(o.params)
                .map(([k, v]) => `${k}=${v}`)
                .join(' ')}`
            : ''
        }`,
        `rebalance: ${job.state}, ${moves.length} of ${job.moves.length} moves, ${f(summary.movedMb)} MB moved in ${f(totalS, 1)} s`,
        `write pause per move (pause_ms): p50 ${summary.pauseMs.p50} ms, p99 ${summary.pauseMs.p99} ms, max ${summary.pauseMs.max} ms (target p99 ≤ 500 ms: ${summary.pauseMs.p99 <= 500 ? 'met' : 'not met'})`,
        `| load | statements/s | p50 ms | p99 ms | max ms | > 100 ms | > 500 ms |`,
        '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
        ...(
          [
            ['before', before],
            ['during the rebalance', during],
            ['after', after],
          ] as const
        ).map(
          ([k, w]) =>
            `| ${k} (${f(w.seconds, 1)} s) | ${f(w.perSecond)} | ${f(w.p50Ms, 2)} | ${f(w.p99Ms, 2)} | ${f(w.maxMs)} | ${w.over100} | ${w.over500} |`,
        ),
        `throughput during / before: ${f(summary.throughputRatio, 2)}× (during / after: ${f(summary.throughputRatioAfter, 2)}×); client errors: ${summary.errors}`,
        `copy rate: ${f(summary.copyRateMbS, 1)} MB/s in the copy step (${f(copyS, 1)} s), ${f(summary.moveRateMbS, 1)} MB/s over whole moves (${f(moveS, 1)} s)`,
        baseS === null
          ? `pg_dump | psql: skipped (no pg_dump in ${c.bins.dir})`
          : `pg_dump | psql: ${f(summary.baseline.mb)} MB in ${f(baseS, 1)} s = ${f(summary.baseline.rateMbS, 1)} MB/s; ratio ${f(summary.copyRatio, 2)}× (copy step), ${f(summary.moveRatio, 2)}× (whole moves)`,
        problems.length
          ? `CHECK FAILED: ${problems.join('; ')}`
          : `check: ${load.insertedIds.length} acknowledged inserts present once, sum(v) = ${load.updates} acknowledged updates, every shard on one group, nothing left behind`,
        `run: ${f(summary.runS)} s (load ${f(loadS)} s)`,
        '',
      ].join('\n'),
    );
    const out = o.json ?? `bench/results/rebalance-${new Date().toISOString().slice(0, 10)}.json`;
    writeFileSync(
      out,
      JSON.stringify(
        {
          meta: { ...meta, command, options: o },
          summary,
          load: { before, during, after },
          moves: job.moves.map((m) => ({ ...m, copy_ms: copyMs(m, steps.get(m.id)) })),
        },
        null,
        2,
      ) + '\n',
    );
    log(`wrote ${out}`);
    return problems.length === 0 && summary.errors === 0 && job.state === 'done' ? 0 : 1;
  } finally {
    log('stopping the cluster…');
    await c.stop();
  }
}

await runMain(parseOptions, USAGE, main);
