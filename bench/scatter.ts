/**
 * `npm run bench:scatter`: reads across groups on the fast path (sharding/scatter-*.ts). A table
 * of --rows rows (4 million by default) distributed over --groups groups (4) is read through the
 * proxy with `SELECT g, count(*), sum(x), avg(x) FROM facts GROUP BY g` (partial aggregates on
 * every group, combined on group 0) and `SELECT … ORDER BY x DESC, id LIMIT 100` (each group's
 * first 100, merged on group 0), against the same table on a 1-group cluster (a plain table,
 * answered by its one primary); every primary capped at the same CPU share with the cgroup v1
 * cpu controller (bench/cgroup.ts, as bench:writes does), to emulate separate machines on one
 * host. The aggregate also runs on the general path (the same statement inside a transaction
 * block: group 0 over the global tables through postgres_fdw) for comparison, once. Each query
 * runs --runs times after a discarded warm-up; the medians and their ratios are reported, and the
 * answers of both clusters are checked equal. Clusters and cgroups are removed at the end.
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { capsUnavailable, createCpuCaps } from './cgroup.js';
import type { CpuCaps } from './cgroup.js';
import { runMain } from './cleanup.js';
import { int } from './options.js';
import { startWritesCluster } from './writes-cluster.js';
import type { WritesCluster } from './writes-cluster.js';

const USAGE = `Usage: npm run bench:scatter -- [options]
       node --import tsx bench/scatter.ts [options]

  --rows N          rows of the table (default 4000000; 200000 with --quick)
  --groups N        groups of the sharded cluster (default 4)
  --keys N          distinct values of the GROUP BY column (default 100)
  --runs N          measured runs of each query (default 5; 3 with --quick)
  --quota-us N      CPU quota of each primary per period, in µs (default 25000: a quarter core);
                    0: uncapped
  --period-us N     CFS period of those caps, in µs (default 100000)
  --shard-count N   create_distributed_table's shard_count (default 32)
  --no-general      skip the general path's run of the aggregate (slow: every row through postgres_fdw)
  --quick           a short check: --rows 200000 --runs 3
  --json FILE       also write every number to FILE
  -h, --help        this text
`;

interface Options {
  rows: number;
  groups: number;
  keys: number;
  runs: number;
  quotaUs: number;
  periodUs: number;
  shardCount: number;
  general: boolean;
  quick: boolean;
  json: string | null;
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: 'string' },
      groups: { type: 'string' },
      keys: { type: 'string' },
      runs: { type: 'string' },
      'quota-us': { type: 'string' },
      'period-us': { type: 'string' },
      'shard-count': { type: 'string' },
      'no-general': { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return null;
  const quick = values.quick ?? false;
  const quotaUs = int(values['quota-us'], 25_000, 'quota-us');
  if (quotaUs > 0 && quotaUs < 1000)
    throw new Error('--quota-us: the kernel accepts 1000 µs at least (or 0)');
  return {
    rows: int(values.rows, quick ? 200_000 : 4_000_000, 'rows', 1),
    groups: int(values.groups, 4, 'groups', 2),
    keys: int(values.keys, 100, 'keys', 1),
    runs: int(values.runs, quick ? 3 : 5, 'runs', 1),
    quotaUs,
    periodUs: int(values['period-us'], 100_000, 'period-us', 1000),
    shardCount: int(values['shard-count'], 32, 'shard-count', 1),
    general: !(values['no-general'] ?? false),
    quick,
    json: values.json ?? null,
  };
}

const log = (s: string) => process.stderr.write(`${s}\n`);

const AGGREGATE = 'SELECT g, count(*), sum(x), avg(x) FROM facts GROUP BY g';
const TOP = 'SELECT id, g, x FROM facts ORDER BY x DESC, id LIMIT 100';

interface Timing {
  medianMs: number;
  runsMs: number[];
}

interface ClusterResult {
  groups: number;
  distributed: boolean;
  rowsPerGroup: Record<string, number>;
  aggregate: Timing;
  top: Timing;
  /** The aggregate on the general path (sharded cluster only). */
  general: Timing | null;
  answers: { aggregate: string[]; top: string[] };
}

/** Creates and fills `facts` through the proxy while local, then distributes it (or not). */
async function load(o: Options, c: WritesCluster, distributed: boolean): Promise<Record<string, number>> {
  const app = new pg.Client(c.app);
  app.on('error', () => undefined);
  await app.connect();
  try {
    await app.query('CREATE TABLE facts (id bigint PRIMARY KEY, g int NOT NULL, x int, note text)');
    await app.query(
      `INSERT INTO facts SELECT i, i % ${o.keys}, CASE WHEN i % 97 = 0 THEN NULL ELSE (i::bigint * 7919) % 100003 END, 'row ' || i
         FROM generate_series(1, ${o.rows}) i`,
    );
    if (distributed)
      await app.query(`SELECT create_distributed_table('facts', 'id', shard_count => ${o.shardCount})`);
  } finally {
    await app.end();
  }
  const rows: Record<string, number> = {};
  for (const p of c.primaries) {
    const s = await c.superClient(p);
    try {
      await s.query('VACUUM ANALYZE');
      await s.query('CHECKPOINT');
      rows[p.name] = Number((await s.query<{ n: string }>('SELECT count(*) AS n FROM facts')).rows[0]!.n);
    } finally {
      await s.end();
    }
  }
  return rows;
}

/** `sql`'s answer as sorted (or ordered) text rows, and the time it took. */
async function timed(c: pg.Client, sql: string, ordered: boolean): Promise<{ ms: number; rows: string[] }> {
  const t0 = performance.now();
  const r = await c.query({ text: sql, rowMode: 'array', types: { getTypeParser: () => (v: string) => v } });
  const ms = performance.now() - t0;
  const rows = (r.rows as unknown as unknown[][]).map((x) => JSON.stringify(x));
  return { ms, rows: ordered ? rows : rows.sort() };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function repeat(o: Options, c: pg.Client, sql: string, ordered: boolean, label: string) {
  await timed(c, sql, ordered); // warm-up: caches, the proxy's plans and pools
  const runsMs: number[] = [];
  let rows: string[] = [];
  for (let i = 0; i < o.runs; i++) {
    const r = await timed(c, sql, ordered);
    runsMs.push(r.ms);
    rows = r.rows;
    log(`    ${label} run ${i + 1}: ${r.ms.toFixed(0)} ms`);
  }
  return { timing: { medianMs: median(runsMs), runsMs }, rows };
}

async function runCluster(o: Options, groups: number, noCaps: string | null): Promise<ClusterResult> {
  const distributed = groups > 1;
  log(`${groups} group(s): starting a cluster (pgscale up)…`);
  const c = await startWritesCluster({
    groups,
    poolSize: 20,
    maxConnections: 100,
    sharedBuffers: '256MB',
    name: `benchscatter${groups}`,
  });
  let caps: CpuCaps | null = null;
  try {
    const rowsPerGroup = await load(o, c, distributed);
    log(`  loaded ${o.rows} rows; per group ${JSON.stringify(rowsPerGroup)}`);
    if (!noCaps) {
      caps = createCpuCaps(
        c.primaries.map((p) => `scatter${groups}.${p.name}`),
        o.quotaUs,
        o.periodUs,
      );
      for (const p of c.primaries) {
        const pid = p.postmasterPid();
        if (pid === null) throw new Error(`${p.name} is not running`);
        caps.move(`scatter${groups}.${p.name}`, pid);
      }
    }
    const app = new pg.Client(c.app);
    app.on('error', () => undefined);
    await app.connect();
    try {
      const agg = await repeat(o, app, AGGREGATE, false, 'aggregate');
      const top = await repeat(o, app, TOP, true, 'ORDER BY … LIMIT 100');
      let general: Timing | null = null;
      if (distributed && o.general) {
        // Inside a transaction block a read across groups takes the general path.
        await app.query('BEGIN');
        const g = await timed(app, AGGREGATE, false);
        await app.query('COMMIT');
        if (JSON.stringify(g.rows) !== JSON.stringify(agg.rows))
          throw new Error('the general path answered otherwise');
        general = { medianMs: g.ms, runsMs: [g.ms] };
        log(`    aggregate on the general path: ${g.ms.toFixed(0)} ms`);
      }
      return {
        groups,
        distributed,
        rowsPerGroup,
        aggregate: agg.timing,
        top: top.timing,
        general,
        answers: { aggregate: agg.rows, top: top.rows },
      };
    } finally {
      await app.end();
    }
  } finally {
    caps?.remove();
    await c.stop();
  }
}

async function main(o: Options): Promise<number> {
  const noCaps = o.quotaUs === 0 ? '--quota-us 0' : capsUnavailable();
  if (noCaps) log(`CPU caps: unavailable (${noCaps}); running UNCAPPED`);
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
  const one = await runCluster(o, 1, noCaps);
  const many = await runCluster(o, o.groups, noCaps);
  const same =
    JSON.stringify(one.answers.aggregate) === JSON.stringify(many.answers.aggregate) &&
    JSON.stringify(one.answers.top) === JSON.stringify(many.answers.top);
  if (!same) throw new Error('the sharded cluster answered otherwise than the 1-group one');
  const summary = {
    aggregateSpeedup: one.aggregate.medianMs / many.aggregate.medianMs,
    topSpeedup: one.top.medianMs / many.top.medianMs,
    generalOverFast: many.general ? many.general.medianMs / many.aggregate.medianMs : null,
  };
  const command = `npm run bench:scatter -- ${process.argv.slice(2).join(' ')}`.trim();
  const caps = noCaps ? `uncapped (${noCaps})` : `${o.quotaUs / o.periodUs} core per primary`;
  process.stdout.write(
    [
      `# bench:scatter (${command}); ${o.rows} rows, ${o.keys} keys, ${caps}, ${meta.nproc} cores, load ${meta.loadAtStart}`,
      `| query | 1 group (ms) | ${o.groups} groups (ms) | speed-up |`,
      '| --- | --- | --- | --- |',
      `| \`${AGGREGATE}\` | ${one.aggregate.medianMs.toFixed(0)} | ${many.aggregate.medianMs.toFixed(0)} | ${summary.aggregateSpeedup.toFixed(2)}× |`,
      `| \`${TOP}\` | ${one.top.medianMs.toFixed(0)} | ${many.top.medianMs.toFixed(0)} | ${summary.topSpeedup.toFixed(2)}× |`,
      many.general
        ? `| the aggregate on the general path (postgres_fdw, once) | | ${many.general.medianMs.toFixed(0)} | ${(one.aggregate.medianMs / many.general.medianMs).toFixed(2)}× |`
        : '',
      'answers: equal on both clusters',
      '',
    ].join('\n'),
  );
  if (o.json) {
    const strip = (r: ClusterResult) => ({
      ...r,
      answers: { aggregateRows: r.answers.aggregate.length, topRows: r.answers.top.length },
    });
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
          queries: { aggregate: AGGREGATE, top: TOP },
          oneGroup: strip(one),
          sharded: strip(many),
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
