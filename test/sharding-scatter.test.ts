/**
 * The fast path for reads across groups (sharding/scatter-*.ts) through `pgscale up` with two
 * groups: each shape's answer through the proxy — values, order, column names, type OIDs and
 * modifiers — equals the same statement on group 0 over a plain table holding the same rows
 * (NULLs, numeric scales, text in the database's collation and in "C", empty tables, HAVING,
 * LIMIT/OFFSET, DISTINCT, a reference-table join, Bind parameters). That the fast path answered
 * is shown by breaking the general path: the foreign servers' role cannot log into group 1, so a
 * read over the global tables fails there while the fast path still answers. Inside a
 * transaction block a read keeps to the general path (it fails while it is broken). Drivers:
 * node-postgres (simple and extended), postgres.js (prepared), psql.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import postgres from 'postgres';
import { binarySets } from './harness.js';
import { upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';
import { expectSuccess, findClientTools, required, run } from './drivers/util.js';

const bins = binarySets()[0]!;
const tools = findClientTools();
const RAW = { getTypeParser: () => (v: string) => v };

const DDL = [
  `CREATE TABLE m (id bigint PRIMARY KEY, g text, h text COLLATE "C", n numeric, p numeric(10,2), x int, f float8, b bool, v varchar(12))`,
  'CREATE TABLE empty_t (id bigint PRIMARY KEY, x int, g text)',
];
const FILL = `INSERT INTO m SELECT i,
    CASE WHEN i % 7 = 0 THEN NULL ELSE (ARRAY['a','B','b','A','é','Ze"t\\a''z','zeta'])[1 + i % 7] END,
    (ARRAY['x','Y','y','X','_'])[1 + i % 5],
    CASE i % 4 WHEN 0 THEN 1.0 WHEN 1 THEN 1.00 WHEN 2 THEN 2.50 ELSE NULL END,
    (i % 9) * 1.25,
    CASE WHEN i % 11 = 0 THEN NULL ELSE (i * 37) % 101 - 20 END,
    i / 7.0,
    CASE WHEN i % 13 = 0 THEN NULL ELSE i % 3 <> 0 END,
    'v' || (i % 6)
  FROM generate_series(1, 600) i`;

/** Shapes the fast path answers (the table names are replaced for the plain copy). */
const SHAPES: { name: string; sql: string; values?: unknown[]; ordered: boolean }[] = [
  {
    name: 'aggregates without GROUP BY',
    sql: 'SELECT count(*), count(x), sum(x), avg(x), min(x), max(x), sum(n), avg(n), min(g), max(g), min(h), max(h), bool_and(b), bool_or(b), every(b), sum(p), avg(p) FROM m',
    ordered: false,
  },
  {
    name: 'GROUP BY text, NULL group, ordered by the collation',
    sql: 'SELECT g, count(*), sum(n), avg(n), avg(x) FROM m GROUP BY g ORDER BY g',
    ordered: true,
  },
  {
    name: 'a "C" column ordered descending, NULLS LAST',
    sql: 'SELECT h, count(*), max(g) FROM m GROUP BY h ORDER BY h DESC NULLS LAST',
    ordered: true,
  },
  {
    name: 'numeric keys 1.0 and 1.00 group together',
    sql: 'SELECT round(n, 3) AS n3, count(*) FROM m GROUP BY n ORDER BY 1',
    ordered: true,
  },
  {
    name: 'a numeric(10,2) and a varchar(12) key keep their type modifiers',
    sql: 'SELECT p, v, count(*) FROM m GROUP BY p, v ORDER BY p, v',
    ordered: true,
  },
  {
    name: 'HAVING after the merge, ORDER BY an alias, LIMIT/OFFSET',
    sql: 'SELECT g, count(*) AS c, sum(x) FROM m GROUP BY g HAVING count(*) > 80 AND sum(x) > 0 ORDER BY c DESC, g LIMIT 3 OFFSET 1',
    ordered: true,
  },
  { name: 'HAVING without GROUP BY', sql: 'SELECT count(*) FROM m HAVING count(*) > 1000', ordered: false },
  {
    name: 'expressions over keys and aggregates',
    sql: 'SELECT upper(g) AS ug, count(*) * 2 AS dbl, round(avg(x), 2) AS r, count(*)::int FROM m GROUP BY g ORDER BY g NULLS FIRST',
    ordered: true,
  },
  {
    name: 'GROUP BY an ordinal and ORDER BY an aggregate',
    sql: 'SELECT lower(g), count(*) FROM m GROUP BY 1 ORDER BY count(*), 1',
    ordered: true,
  },
  {
    name: 'FILTER',
    sql: 'SELECT b, count(*) FILTER (WHERE x > 0), avg(x) FILTER (WHERE x > 0) FROM m GROUP BY b ORDER BY b',
    ordered: true,
  },
  { name: 'DISTINCT', sql: 'SELECT DISTINCT g FROM m ORDER BY g', ordered: true },
  { name: 'DISTINCT of two columns, unordered', sql: 'SELECT DISTINCT g, b FROM m', ordered: false },
  { name: 'DISTINCT over aggregates', sql: 'SELECT DISTINCT count(*) FROM m GROUP BY h', ordered: false },
  {
    name: 'ORDER BY … LIMIT/OFFSET',
    sql: 'SELECT id, g, x FROM m ORDER BY x DESC NULLS FIRST, id LIMIT 7 OFFSET 3',
    ordered: true,
  },
  {
    name: 'ORDER BY a "C" column, SELECT *',
    sql: 'SELECT * FROM m ORDER BY h, g, id LIMIT 12',
    ordered: true,
  },
  {
    name: 'ORDER BY an explicit collation',
    sql: 'SELECT g, id FROM m ORDER BY g COLLATE "C" DESC, id LIMIT 10',
    ordered: true,
  },
  {
    name: 'ORDER BY an output name and an ordinal',
    sql: 'SELECT id AS k, x * 2 AS y FROM m WHERE x IS NOT NULL ORDER BY y, 1 LIMIT 9',
    ordered: true,
  },
  {
    name: 'a join with a reference table',
    sql: 'SELECT l.label, count(*), sum(m.x) FROM m JOIN labels l ON l.g = m.g GROUP BY l.label ORDER BY 1',
    ordered: true,
  },
  {
    name: 'Bind parameters in WHERE',
    sql: 'SELECT g, count(*), avg(x) FROM m WHERE x > $1 AND g <> $2 GROUP BY g ORDER BY g',
    values: [3, 'b'],
    ordered: true,
  },
  {
    name: 'LIMIT and OFFSET as Bind parameters',
    sql: 'SELECT id, x FROM m WHERE g <> $1 ORDER BY x, id LIMIT $2 OFFSET $3',
    values: ['a', 4, 1],
    ordered: true,
  },
  {
    name: 'empty table: aggregates give one row',
    sql: 'SELECT count(*), sum(x), avg(x), max(g), bool_and(x > 0) FROM empty_t',
    ordered: false,
  },
  {
    name: 'empty table: GROUP BY gives no rows',
    sql: 'SELECT g, count(*) FROM empty_t GROUP BY g',
    ordered: false,
  },
  { name: 'empty table: ORDER BY … LIMIT', sql: 'SELECT * FROM empty_t ORDER BY id LIMIT 3', ordered: true },
];

describe('reads across groups on the fast path (pgscale up, two groups)', () => {
  let sc: ShardedCluster;
  let app: pg.Client;
  let direct: pg.Client[] = [];

  const plain = (sql: string) => sql.replace(/\bm\b/g, 'plain_m').replace(/\bempty_t\b/g, 'plain_empty');

  const rowsOf = async (c: pg.Client, sql: string, values?: unknown[]) => {
    const r = await c.query({ text: sql, values, rowMode: 'array', types: RAW });
    return {
      fields: r.fields.map((f) => `${f.name}:${f.dataTypeID}:${f.dataTypeModifier}`),
      rows: (r.rows as unknown as (string | null)[][]).map((row) => JSON.stringify(row)),
    };
  };

  /** The query through the proxy equals it on the plain table (order-insensitive unless ordered). */
  const same = async (sql: string, values: unknown[] | undefined, ordered: boolean) => {
    const got = await rowsOf(app, sql, values).catch((e: unknown) => {
      throw new Error(`${sql}: ${String(e)}`);
    });
    const want = await rowsOf(direct[0]!, plain(sql), values);
    assert.deepEqual(got.fields, want.fields, `${sql}: columns`);
    if (!ordered) {
      got.rows.sort();
      want.rows.sort();
    }
    assert.deepEqual(got.rows, want.rows, sql);
    return got;
  };

  const breakGeneral = async () => {
    await direct[1]!.query('ALTER ROLE pgscale_fdw NOLOGIN');
    await direct[1]!.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'pgscale_fdw'`,
    );
  };
  const mendGeneral = () => direct[1]!.query('ALTER ROLE pgscale_fdw LOGIN');

  before(async () => {
    sc = await upSharded(bins, { groups: 2, replicas: 0 });
    app = await sc.connectApp();
    for (let g = 0; g < 2; g++) direct.push(await sc.connectGroup(g));
    for (const d of DDL) await app.query(d);
    await app.query('CREATE TABLE labels (g text PRIMARY KEY, label text)');
    await app.query(
      `INSERT INTO labels VALUES ('a', 'first'), ('b', 'second'), ('B', 'second'), ('é', 'accent')`,
    );
    await app.query(FILL);
    await app.query("SELECT create_distributed_table('m', 'id')");
    await app.query("SELECT create_distributed_table('empty_t', 'id', colocate_with => 'm')");
    await app.query("SELECT create_reference_table('labels')");
    // The same rows in plain tables on group 0 (the oracle).
    const d0 = direct[0]!;
    await d0.query(DDL[0]!.replace('TABLE m', 'TABLE plain_m'));
    await d0.query(DDL[1]!.replace('TABLE empty_t', 'TABLE plain_empty'));
    await d0.query(FILL.replace('INTO m', 'INTO plain_m'));
    await d0.query('ANALYZE plain_m');
  });
  after(async () => {
    await mendGeneral().catch(() => undefined);
    await app?.end().catch(() => undefined);
    for (const c of direct) await c.end().catch(() => undefined);
    direct = [];
    await sc?.down();
  });

  test('the rows are on both groups', async () => {
    const per = await Promise.all(
      direct.map(async (d) => Number((await d.query('SELECT count(*) AS n FROM m')).rows[0].n)),
    );
    assert.ok(
      per.every((n) => n > 0 && n < 600),
      String(per),
    );
  });

  test('with the general path working, every shape equals one PostgreSQL', async () => {
    for (const s of SHAPES) await same(s.sql, s.values, s.ordered);
  });

  test("the data's errors are PostgreSQL's; a text sort key from a set-returning function", async () => {
    await assert.rejects(
      app.query('SELECT g, sum(1 / (x - x)) FROM m GROUP BY g'),
      (e: { code?: string }) => e.code === '22012',
    );
    // Its collation cannot be asked with min(): the general path answers.
    await same('SELECT unnest(ARRAY[g, h]) AS u FROM m ORDER BY u NULLS FIRST, 1 LIMIT 9', undefined, true);
  });

  test(
    'a named prepared statement (node-postgres: Parse, Bind, Execute, Sync in one batch, then Bind alone)',
    { timeout: 60_000 },
    async () => {
      const sql = 'SELECT g, count(*), avg(x) FROM m WHERE x > $1 GROUP BY g ORDER BY g';
      const want = await rowsOf(direct[0]!, plain(sql), [5]);
      for (let k = 0; k < 3; k++) {
        const r = await app.query({
          name: 'scatter_named',
          text: sql,
          values: [5],
          rowMode: 'array',
          types: RAW,
        });
        assert.deepEqual(
          (r.rows as unknown as (string | null)[][]).map((row) => JSON.stringify(row)),
          want.rows,
        );
      }
    },
  );

  test('every shape is answered with the general path broken: the fast path took it', async (t) => {
    await breakGeneral();
    t.after(mendGeneral);
    await assert.rejects(
      app.query('SELECT count(DISTINCT x) FROM m'),
      'count(DISTINCT) needs the general path, which is broken now',
    );
    for (const s of SHAPES) await same(s.sql, s.values, s.ordered);
    // The float sums differ from one node's only by the order of additions.
    const got = (await app.query<{ a: number; s: number }>('SELECT avg(f)::float8 AS a, sum(f) AS s FROM m'))
      .rows[0]!;
    const want = (
      await direct[0]!.query<{ a: number; s: number }>('SELECT avg(f)::float8 AS a, sum(f) AS s FROM plain_m')
    ).rows[0]!;
    assert.ok(Math.abs(got.a - want.a) <= 1e-12 * Math.abs(want.a), `${got.a} vs ${want.a}`);
    assert.ok(Math.abs(got.s - want.s) <= 1e-12 * Math.abs(want.s), `${got.s} vs ${want.s}`);
    // LIMIT without ORDER BY: any rows, as many as asked.
    assert.equal((await app.query('SELECT id FROM m LIMIT 5 OFFSET 2')).rowCount, 5);
  });

  test('inside a transaction block a read goes to the general path (it sees the transaction)', async (t) => {
    await breakGeneral();
    t.after(mendGeneral);
    const c = await sc.connectApp();
    try {
      await c.query('BEGIN');
      await assert.rejects(c.query('SELECT count(*) FROM m'));
      await c.query('ROLLBACK');
      assert.equal(Number((await c.query('SELECT count(*) AS n FROM m')).rows[0].n), 600);
    } finally {
      await c.end();
    }
    await mendGeneral();
    const d = await sc.connectApp();
    try {
      await d.query('BEGIN');
      assert.equal(Number((await d.query('SELECT count(*) AS n FROM m')).rows[0].n), 600);
      await d.query('COMMIT');
    } finally {
      await d.end();
    }
  });

  test('kept host sessions whose connections were lost are replaced', async () => {
    await same('SELECT g, count(*) FROM m GROUP BY g ORDER BY g', undefined, true);
    // The host's idle sessions on group 1 end (as at a restart of its server).
    const killed = await direct[1]!.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgscale sharding' AND state = 'idle'`,
    );
    assert.ok(killed.rowCount! > 0, 'the host keeps its sessions between reads');
    await same('SELECT g, count(*) FROM m GROUP BY g ORDER BY g', undefined, true);
    await same('SELECT id FROM m ORDER BY id DESC LIMIT 3', undefined, true);
  });

  test('many fast reads at once: each answer right, few host sessions kept', async () => {
    const sql = 'SELECT g, count(*), sum(n) FROM m GROUP BY g ORDER BY g';
    const want = await rowsOf(direct[0]!, plain(sql));
    const clients = await Promise.all(Array.from({ length: 20 }, () => sc.connectApp()));
    try {
      const answers = await Promise.all(clients.flatMap((c) => [rowsOf(c, sql), rowsOf(c, sql)]));
      for (const a of answers) assert.deepEqual(a.rows, want.rows);
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    }
    const kept = await direct[1]!.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'pgscale sharding' AND state = 'idle'`,
    );
    assert.ok(kept.rows[0].n <= 6, `${kept.rows[0].n} idle host sessions on group 1`);
  });

  test('the client settings that change values apply (TimeZone, extra_float_digits)', async () => {
    const c = await sc.connectApp();
    try {
      await c.query(`SET TimeZone = 'Asia/Kolkata'`);
      const r = await c.query<{ d: string }>(
        `SELECT min(('2024-01-01 20:00:00+00'::timestamptz + make_interval(secs => id))::text) AS d FROM m`,
      );
      assert.match(r.rows[0]!.d, /^2024-01-02 01:30:01\+05:30$/);
    } finally {
      await c.end();
    }
  });

  test('postgres.js (prepared) and psql on the fast path', async (t) => {
    await breakGeneral();
    t.after(mendGeneral);
    const sql = postgres({ ...sc.app, username: sc.app.user, max: 1, onnotice: () => undefined });
    try {
      const q = 'SELECT g, count(*)::int AS c, avg(x) AS a FROM m WHERE x > $1 GROUP BY g ORDER BY g';
      for (let k = 0; k < 2; k++) {
        const got = await sql.unsafe(q, [k], { prepare: true });
        const want = await direct[0]!.query(plain(q), [k]);
        assert.deepEqual(
          got.map((r): unknown[] => [r.g, r.c, r.a]),
          want.rows.map((r: { g: string; c: number; a: string }) => [r.g, r.c, r.a]),
        );
      }
      // LIMIT and OFFSET as parameters (each group its first limit + offset rows).
      const top = await sql`SELECT id FROM m ORDER BY x DESC NULLS LAST, id LIMIT ${5} OFFSET ${2}`;
      const topWant = await direct[0]!.query<{ id: string }>(
        'SELECT id FROM plain_m ORDER BY x DESC NULLS LAST, id LIMIT 5 OFFSET 2',
      );
      assert.deepEqual(
        top.map((r) => String(r.id)),
        topWant.rows.map((r) => r.id),
      );
      // The statement prepared and run on the fast path, run again inside a transaction block:
      // the general path (group 0 holds it prepared with the global tables' text).
      await mendGeneral();
      const inTx = await sql.begin((tx) => tx.unsafe(q, [0], { prepare: true }));
      const want0 = await direct[0]!.query(plain(q), [0]);
      assert.equal(inTx.length, want0.rows.length);
    } finally {
      await sql.end();
    }
    const psql = required(tools.psql, 'psql', 'install postgresql-client');
    const r = await run(
      psql,
      [
        '-h',
        sc.app.host,
        '-p',
        String(sc.app.port),
        '-U',
        sc.app.user,
        '-d',
        sc.app.database,
        '-X',
        '-A',
        '-t',
        '-v',
        'ON_ERROR_STOP=1',
        '-c',
        'SELECT h, count(*) FROM m GROUP BY h ORDER BY h',
      ],
      { env: { ...process.env, PGPASSWORD: sc.app.password } },
    );
    expectSuccess(r, 'psql');
    const want = await direct[0]!.query<{ h: string; n: string }>(
      'SELECT h, count(*) AS n FROM plain_m GROUP BY h ORDER BY h',
    );
    assert.equal(r.stdout.trim(), want.rows.map((x) => `${x.h}|${x.n}`).join('\n'));
  });
});
