/**
 * `npm run bench:scatter-memory`: a read of a whole distributed table through the proxy (every
 * row of every group: `SELECT * FROM facts`, the general path, streamed from group 0 over the
 * global tables) by a client that reads slowly, while the controller's RSS (the process that
 * runs the proxy) is sampled: the proxy holds no more than a window of rows, so its memory must
 * stay flat however many rows pass. The same read by a fast client is timed. --rows 4 million
 * by default over 2 groups (--quick: 1 million).
 *
 *   npm run bench:scatter-memory -- [--quick] [--rows N] [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { runMain } from './cleanup.js';
import { int } from './options.js';
import { rssKb } from './memory.js';
import { startWritesCluster } from './writes-cluster.js';

interface Options {
  rows: number;
  json: string | null;
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      rows: { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) return null;
  return {
    rows: int(values.rows, values.quick ? 1_000_000 : 4_000_000, 'rows', 1),
    json: values.json ?? null,
  };
}

async function main(o: Options): Promise<number> {
  const c = await startWritesCluster({
    groups: 2,
    poolSize: 10,
    maxConnections: 100,
    sharedBuffers: '128MB',
    name: 'benchscattermem',
  });
  try {
    const app = new pg.Client(c.app);
    await app.connect();
    await app.query('CREATE TABLE facts (id bigint PRIMARY KEY, note text)');
    await app.query(`INSERT INTO facts SELECT i, repeat('x', 40) || i FROM generate_series(1, ${o.rows}) i`);
    await app.query("SELECT create_distributed_table('facts', 'id')");
    const base = rssKb(c.controllerPid);
    let peak = base;
    const samples: number[] = [];
    const timer = setInterval(() => {
      const r = rssKb(c.controllerPid);
      samples.push(r);
      if (r > peak) peak = r;
    }, 100);
    // A slow reader: its socket paused 50 ms every 100,000 rows (the proxy must stop reading
    // group 0 while the client's socket is full, rather than queue the rows).
    const t0 = Date.now();
    const stream = (app as unknown as { connection: { stream: { pause(): void; resume(): void } } })
      .connection.stream;
    const n = await count(app, (k) => {
      if (k % 100_000 !== 0) return;
      stream.pause();
      setTimeout(() => stream.resume(), 50);
    });
    const slowMs = Date.now() - t0;
    clearInterval(timer);
    // A fast reader: every row counted as it comes (node-postgres keeps none).
    const t1 = Date.now();
    const m = await count(app, () => undefined);
    const fastMs = Date.now() - t1;
    await app.end();
    const result = {
      rows: o.rows,
      slow_read: { rows: n, ms: slowMs },
      fast_read: { rows: m, ms: fastMs, rows_per_s: Math.round((m / fastMs) * 1000) },
      controller_rss_mb: { before: base / 1024, peak: peak / 1024, growth: (peak - base) / 1024 },
    };
    console.log(JSON.stringify(result, null, 2));
    if (o.json) writeFileSync(o.json, JSON.stringify({ ...result, samples_kb: samples }, null, 2) + '\n');
    return n === o.rows && m === o.rows ? 0 : 1;
  } finally {
    await c.stop();
  }
}

/** Reads every row of facts, calling `each` with the running count; the count. */
function count(app: pg.Client, each: (n: number) => void): Promise<number> {
  let n = 0;
  return new Promise<number>((resolve, reject) => {
    const q = new pg.Query({ text: 'SELECT * FROM facts' });
    q.on('row', () => each(++n));
    q.on('end', () => resolve(n));
    q.on('error', reject);
    void app.query(q);
  });
}

void runMain(parseOptions, 'npm run bench:scatter-memory -- [--quick] [--rows N] [--json FILE]', main);
