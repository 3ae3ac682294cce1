/**
 * The guide's `users` table distributed over two groups inside `pgscale up`, then filled through
 * the proxy by every driver the project supports: node-postgres (simple and extended protocol),
 * postgres.js (prepared statements), psycopg2 and pgjdbc (default prepareThreshold,
 * prepareThreshold=-1 and preferQueryMode=simple). Every row must sit on the group PostgreSQL's hash
 * partitioning puts it in, and that group must be the one the proxy names for the key
 * (get_shard_id_for_distribution_column); a point lookup by key must read that
 * group only, as each group's own statistics show. Prints the time per 1,000 inserts per driver
 * (one autocommitted statement per row, one connection).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import postgres from 'postgres';
import { binarySets, tempDir } from './harness.js';
import { placement, shardGroups, upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';
import { expectSuccess, findClientTools, required, run } from './drivers/util.js';

const bins = binarySets()[0]!;
const GROUPS = 2;
/** Rows per driver in CI; bench-like runs set PGSCALE_SHARD_DRIVER_ROWS=100000. */
const ROWS = Number(process.env.PGSCALE_SHARD_DRIVER_ROWS ?? 1500);
/** How many key ranges the tests below insert (one per driver and mode). */
const DRIVER_RANGES = 8;
const tools = findClientTools();
const javaSource = fileURLToPath(new URL('./drivers/ShardInserts.java', import.meta.url));

const PSYCOPG2 = `
import os, psycopg2
c = psycopg2.connect(host=os.environ['PGHOST'], port=os.environ['PGPORT'], user=os.environ['PGUSER'],
                     password=os.environ['PGPASSWORD'], dbname=os.environ['PGDATABASE'])
c.autocommit = True
cur = c.cursor()
lo, hi = int(os.environ['DRV_FROM']), int(os.environ['DRV_TO'])
for k in range(lo, hi + 1):
    cur.execute('INSERT INTO users (user_id, name, email) VALUES (%s, %s, %s)', (k, 'user %d' % k, 'u%d@example.com' % k))
    assert cur.rowcount == 1, k
cur.execute('SELECT name FROM users WHERE user_id = %s', (hi,))
assert cur.fetchone()[0] == 'user %d' % hi
print('ok', hi - lo + 1)
`;

describe('sharding with every driver: the guide’s users table over two groups', () => {
  let sc: ShardedCluster;
  let app: pg.Client;
  const direct: pg.Client[] = [];
  const timings: string[] = [];
  let classes = '';

  before(async () => {
    sc = await upSharded(bins, { groups: GROUPS, replicas: 0 });
    app = await sc.connectApp();
    for (let g = 0; g < GROUPS; g++) direct.push(await sc.connectGroup(g));
    await app.query('CREATE TABLE users (user_id bigint, name text, email text, created_at timestamp)');
    await app.query("SELECT create_distributed_table('users', 'user_id')");
  });
  after(async () => {
    if (timings.length) console.log(`# per 1,000 inserts (${ROWS} rows each): ${timings.join(', ')}`);
    await app?.end().catch(() => undefined);
    for (const c of direct) await c.end().catch(() => undefined);
    if (classes) rmSync(classes, { recursive: true, force: true });
    await sc?.down();
  });

  /** Keys of driver number `i`: a range of ROWS keys no other driver uses. */
  const range = (i: number) => ({ from: i * 1_000_000 + 1, to: i * 1_000_000 + ROWS });

  async function timed(what: string, fn: () => Promise<void>): Promise<void> {
    const t0 = performance.now();
    await fn();
    const ms = performance.now() - t0;
    timings.push(`${what} ${((ms * 1000) / ROWS).toFixed(0)} ms`);
  }

  async function countIn(from: number, to: number): Promise<number> {
    let n = 0;
    for (const d of direct) {
      const r = await d.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM users WHERE user_id BETWEEN $1 AND $2',
        [from, to],
      );
      n += r.rows[0]!.n;
    }
    return n;
  }

  test('node-postgres, simple protocol (values inline)', async () => {
    const { from, to } = range(1);
    await timed('pg simple', async () => {
      for (let k = from; k <= to; k++) {
        const r = await app.query(
          `INSERT INTO users (user_id, name, email) VALUES (${k}, 'user ${k}', 'u${k}@example.com')`,
        );
        assert.equal(r.rowCount, 1);
      }
    });
    assert.equal(await countIn(from, to), ROWS);
  });

  test('node-postgres, extended protocol (Bind parameters, unnamed statement)', async () => {
    const { from, to } = range(2);
    await timed('pg extended', async () => {
      for (let k = from; k <= to; k++) {
        const r = await app.query('INSERT INTO users (user_id, name, email) VALUES ($1, $2, $3)', [
          k,
          `user ${k}`,
          `u${k}@example.com`,
        ]);
        assert.equal(r.rowCount, 1);
      }
    });
    // A named prepared statement too (pg's `name`), reused for every row.
    const named = range(3);
    await timed('pg named', async () => {
      for (let k = named.from; k <= named.to; k++) {
        await app.query({
          name: 'ins_user',
          text: 'INSERT INTO users (user_id, name, email) VALUES ($1, $2, $3)',
          values: [k, `user ${k}`, `u${k}@example.com`],
        });
      }
    });
    assert.equal(await countIn(from, to), ROWS);
    assert.equal(await countIn(named.from, named.to), ROWS);
  });

  test('postgres.js, prepared statements', async () => {
    const { from, to } = range(4);
    const sql = postgres({ ...sc.app, max: 1, prepare: true, onnotice: () => {} });
    try {
      await timed('postgres.js prepared', async () => {
        for (let k = from; k <= to; k++)
          await sql`INSERT INTO users (user_id, name, email) VALUES (${k}, ${'user ' + k}, ${'u' + k + '@example.com'})`;
      });
      const got = await sql<{ name: string }[]>`SELECT name FROM users WHERE user_id = ${to}`;
      assert.equal(got[0]!.name, `user ${to}`);
    } finally {
      await sql.end();
    }
    assert.equal(await countIn(from, to), ROWS);
  });

  test('psycopg2 (autocommit, client-side parameters)', async () => {
    const { from, to } = range(5);
    await timed('psycopg2', async () => {
      const r = await run(tools.python, ['-c', PSYCOPG2], {
        env: {
          ...process.env,
          PGHOST: sc.app.host,
          PGPORT: String(sc.app.port),
          PGUSER: sc.app.user,
          PGPASSWORD: sc.app.password,
          PGDATABASE: sc.app.database,
          DRV_FROM: String(from),
          DRV_TO: String(to),
          PYTHONDONTWRITEBYTECODE: '1',
        },
        timeoutMs: Math.max(300_000, ROWS * 20),
      });
      if (r.code !== 0 && /No module named 'psycopg2'/.test(r.stderr))
        throw new Error(`${tools.python} has no psycopg2: install python3-psycopg2\n${r.stderr}`);
      expectSuccess(r, 'psycopg2 inserts');
    });
    assert.equal(await countIn(from, to), ROWS);
  });

  const jdbcModes: [string, string][] = [
    ['pgjdbc default prepareThreshold', ''],
    ['pgjdbc prepareThreshold=-1', 'prepareThreshold=-1'],
    ['pgjdbc preferQueryMode=simple', 'preferQueryMode=simple'],
  ];
  jdbcModes.forEach(([what, props], i) => {
    test(what, async () => {
      const javac = required(tools.javac, 'javac', 'install a JDK (default-jdk-headless)');
      const java = required(tools.java, 'java', 'install a JDK (default-jdk-headless)');
      if (!classes) {
        classes = tempDir('pgscale-shard-java-');
        expectSuccess(
          await run(javac, ['-encoding', 'UTF-8', '-cp', tools.pgjdbcJar, '-d', classes, javaSource], {
            timeoutMs: 120_000,
          }),
          'javac',
        );
      }
      const { from, to } = range(6 + i);
      await timed(what.replace('pgjdbc ', 'pgjdbc/'), async () => {
        const r = await run(java, ['-cp', `${classes}:${tools.pgjdbcJar}`, 'ShardInserts'], {
          env: {
            ...process.env,
            DRV_HOST: sc.app.host,
            DRV_PORT: String(sc.app.port),
            DRV_DATABASE: sc.app.database,
            DRV_USER: sc.app.user,
            DRV_PASSWORD: sc.app.password,
            DRV_PROPS: props,
            DRV_FROM: String(from),
            DRV_TO: String(to),
          },
          timeoutMs: Math.max(300_000, ROWS * 20),
        });
        expectSuccess(r, `ShardInserts ${props}`);
      });
      assert.equal(await countIn(from, to), ROWS);
    });
  });

  test('every row is on the group of its shard, as the proxy names it', async () => {
    const where = await placement(direct, 'users', 'user_id');
    assert.equal(where.size, ROWS * DRIVER_RANGES, 'every inserted row is stored once');
    const perGroup = Array.from({ length: GROUPS }, () => 0);
    for (const w of where.values()) perGroup[w.group]!++;
    console.log(`# rows per group: ${perGroup.join(', ')}`);
    for (const n of perGroup)
      assert.ok(n > ROWS * DRIVER_RANGES * 0.3, `rows spread over the groups: ${perGroup.join(', ')}`);
    // Shard → group: the partitions each group holds.
    const groupOfShard = await shardGroups(direct, 'users');
    // Every key: the proxy's shard for it is the partition PostgreSQL chose, on the same group.
    // (one call per statement: the proxy answers an API call only when it is the whole statement)
    for (const [k, w] of where) {
      const r = await app.query<{ id: string }>(
        `SELECT get_shard_id_for_distribution_column('users', ${k}) AS id`,
      );
      const id = Number(r.rows[0]!.id);
      assert.equal(id, w.shard, `key ${k}: the proxy says shard ${id}, PostgreSQL stored it in ${w.shard}`);
      assert.equal(groupOfShard.get(id), w.group, `key ${k}: shard ${id}'s group`);
    }
  });

  test('a point lookup by key reads one group only (each group’s own statistics)', async () => {
    const where = await placement(direct, 'users', 'user_id');
    /** Scans of the users partitions on each group, from that group's statistics. */
    async function scans(): Promise<number[]> {
      // Server connections the proxy pools report their statistics when they end: end them.
      for (const d of direct) {
        await d.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app' AND pid <> pg_backend_pid()",
        );
      }
      const out: number[] = [];
      for (const d of direct) {
        await until0(
          async () =>
            (await d.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'app'")).rows[0]
              .n === 0,
        );
        await d.query('SELECT pg_stat_clear_snapshot()');
        const r = await d.query<{ n: string }>(
          "SELECT coalesce(sum(coalesce(idx_scan, 0) + coalesce(seq_scan, 0)), 0)::bigint AS n FROM pg_stat_user_tables WHERE relname LIKE 'users\\_%'",
        );
        out.push(Number(r.rows[0]!.n));
      }
      return out;
    }
    for (let g = 0; g < GROUPS; g++) {
      const keys = [...where]
        .filter(([, w]) => w.group === g)
        .slice(0, 10)
        .map(([k]) => k);
      // The client connection of the lookups is new: the terminated pool connections are gone.
      const before = await scans();
      const c = await sc.connectApp();
      try {
        for (const [i, k] of keys.entries()) {
          const r =
            i % 2
              ? await c.query(`SELECT name FROM users WHERE user_id = ${k}`)
              : await c.query('SELECT name FROM users WHERE user_id = $1', [k]);
          assert.equal(r.rows[0].name, `user ${k}`);
        }
      } finally {
        await c.end();
      }
      const after = await scans();
      const delta = after.map((n, i) => n - before[i]!);
      assert.ok(delta[g]! >= keys.length, `group ${g} read its keys: scans ${JSON.stringify(delta)}`);
      for (let o = 0; o < GROUPS; o++)
        if (o !== g)
          assert.equal(
            delta[o],
            0,
            `group ${o} read nothing for group ${g}'s keys: ${JSON.stringify(delta)}`,
          );
    }
  });
});

async function until0(cond: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('the proxy’s server connections did not end');
    await new Promise((r) => setTimeout(r, 100));
  }
}
