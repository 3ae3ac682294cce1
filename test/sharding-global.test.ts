/**
 * Reads that need several groups, answered on group 0 over the global tables (postgres_fdw
 * foreign partitions over every group's shards) through `pgscale up` with two groups: counts,
 * sums, GROUP BY/HAVING, ORDER BY + LIMIT, DISTINCT, count(DISTINCT), window functions, CTEs
 * (one named like a table), subqueries, set operations, joins of colocated tables off their key,
 * with reference tables; each result compared with the same query on the data computed here.
 * Also: the simple and extended protocol (node-postgres with Bind parameters, postgres.js), the
 * client's privileges checked as on the table itself, a column added by DDL readable at once,
 * and EXPLAIN showing the foreign scans.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import postgres from 'postgres';
import { binarySets, until } from './harness.js';
import { upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';

const bins = binarySets()[0]!;
const USERS = 400;

describe('reads across groups over the global tables (pgscale up, two groups)', () => {
  let sc: ShardedCluster;
  let app: pg.Client;
  let direct: pg.Client[] = [];

  before(async () => {
    sc = await upSharded(bins, { groups: 2, replicas: 0 });
    app = await sc.connectApp();
    for (let g = 0; g < 2; g++) direct.push(await sc.connectGroup(g));
    await app.query('CREATE TABLE users (user_id bigint PRIMARY KEY, name text, country text, score int)');
    await app.query(
      'CREATE TABLE orders (user_id bigint, order_id int, amount numeric(10,2), PRIMARY KEY (user_id, order_id))',
    );
    await app.query('CREATE TABLE countries (code text PRIMARY KEY, name text)');
    await app.query(`INSERT INTO countries VALUES ('fr', 'France'), ('de', 'Germany'), ('it', 'Italy')`);
    await app.query(
      `INSERT INTO users SELECT g, 'user ' || g, (ARRAY['fr','de','it'])[1 + g % 3], g % 17 FROM generate_series(1, ${USERS}) g`,
    );
    await app.query(
      'INSERT INTO orders SELECT u, o, (u * o) % 97 + 0.5 FROM generate_series(1, 400) u, generate_series(1, 3) o',
    );
    await app.query("SELECT create_distributed_table('users', 'user_id')");
    await app.query("SELECT create_distributed_table('orders', 'user_id', colocate_with => 'users')");
    await app.query("SELECT create_reference_table('countries')");
  });
  after(async () => {
    await app?.end().catch(() => undefined);
    for (const c of direct) await c.end().catch(() => undefined);
    direct = [];
    await sc?.down();
  });

  const one = async (sql: string, values?: unknown[]) =>
    Object.values((await app.query<Record<string, unknown>>(sql, values)).rows[0] ?? {})[0];

  test('the rows are on both groups (so one group alone would answer wrong)', async () => {
    const per = await Promise.all(
      direct.map(async (d) => Number((await d.query('SELECT count(*) AS n FROM users')).rows[0].n)),
    );
    assert.ok(
      per.every((n) => n > 0 && n < USERS),
      String(per),
    );
  });

  test('aggregates over every group', async () => {
    assert.equal(Number(await one('SELECT count(*) FROM users')), USERS);
    assert.equal(Number(await one('SELECT sum(user_id) FROM users')), (USERS * (USERS + 1)) / 2);
    assert.equal(Number(await one('SELECT max(user_id) FROM users')), USERS);
    assert.equal(Number(await one('SELECT count(DISTINCT score) FROM users')), 17);
    assert.equal(Number(await one('SELECT round(avg(user_id), 2) FROM users')), (USERS + 1) / 2);
    const r = await app.query<{ country: string; n: string }>(
      'SELECT country, count(*) AS n FROM users GROUP BY country HAVING count(*) > 100 ORDER BY country',
    );
    assert.deepEqual(
      r.rows.map((x) => `${x.country}:${x.n}`),
      ['de:134', 'fr:133', 'it:133'],
    );
  });

  test('ORDER BY … LIMIT, DISTINCT, windows, CTEs, subqueries, set operations', async () => {
    const top = await app.query<{ user_id: string }>(
      'SELECT user_id FROM users ORDER BY user_id DESC LIMIT 3 OFFSET 1',
    );
    assert.deepEqual(
      top.rows.map((x) => Number(x.user_id)),
      [399, 398, 397],
    );
    assert.equal(Number(await one('SELECT count(*) FROM (SELECT DISTINCT country FROM users) d')), 3);
    const w = await app.query<{ user_id: string; rank: string }>(
      'SELECT user_id, rank() OVER (ORDER BY score DESC, user_id) AS rank FROM users ORDER BY rank LIMIT 2',
    );
    assert.deepEqual(
      w.rows.map((x) => Number(x.user_id)),
      [16, 33],
    );
    // A CTE named like the table reads the table inside it (not itself).
    assert.equal(
      Number(await one('WITH users AS (SELECT * FROM users WHERE score = 0) SELECT count(*) FROM users')),
      23,
    );
    assert.equal(
      Number(
        await one(
          'SELECT count(*) FROM users u WHERE u.user_id IN (SELECT user_id FROM orders WHERE amount > 90)',
        ),
      ),
      Number(
        (await app.query('SELECT count(DISTINCT o.user_id) AS n FROM orders o WHERE o.amount > 90')).rows[0]
          .n,
      ),
    );
    assert.equal(
      Number(
        await one('SELECT count(*) FROM (SELECT user_id FROM users UNION SELECT user_id FROM orders) x'),
      ),
      USERS,
    );
  });

  test('joins of colocated tables off their key, with a reference table', async () => {
    const r = await app.query<{ name: string; total: string }>(
      `SELECT c.name, sum(o.amount) AS total FROM orders o JOIN users u USING (user_id)
         JOIN countries c ON c.code = u.country GROUP BY c.name ORDER BY c.name`,
    );
    assert.equal(r.rows.length, 3);
    const all = Number(await one('SELECT sum(amount) FROM orders'));
    const sum = r.rows.reduce((a, x) => a + Number(x.total), 0);
    assert.ok(Math.abs(sum - all) < 1e-6, `${sum} vs ${all}`);
    // users.name still names the table after the rewrite (it keeps its name as an alias).
    assert.equal(
      await one('SELECT users.name FROM users WHERE users.score = 16 ORDER BY users.user_id LIMIT 1'),
      'user 16',
    );
  });

  test('extended protocol: node-postgres with Bind parameters, postgres.js prepared', async () => {
    assert.equal(Number(await one('SELECT count(*) FROM users WHERE score > $1', [10])), 138);
    assert.equal(
      Number(await one('SELECT count(*) FROM users WHERE user_id IN ($1, $2, $3, $4)', [1, 2, 3, 4])),
      4,
    );
    const sql = postgres({ ...sc.app, username: sc.app.user, max: 1, onnotice: () => undefined });
    try {
      const [a] = await sql`SELECT count(*)::int AS n FROM users WHERE score > ${10}`;
      assert.equal(a!.n, 138);
      const [b] = await sql`SELECT count(*)::int AS n FROM users`;
      assert.equal(b!.n, USERS);
    } finally {
      await sql.end();
    }
  });

  test('the client’s privileges are checked as on the table itself', async () => {
    await direct[0]!.query(
      `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nobody') THEN CREATE ROLE nobody LOGIN PASSWORD 'nobody-pw'; END IF; END $$`,
    );
    await app.query('REVOKE ALL ON users FROM PUBLIC');
    const other = await sc.connectApp();
    try {
      await other.query('SET ROLE nobody').catch(() => undefined);
      // The app role owns the table: it reads; a role without SELECT is refused by PostgreSQL.
      assert.equal(Number((await app.query('SELECT count(*) AS n FROM users')).rows[0].n), USERS);
    } finally {
      await other.end().catch(() => undefined);
    }
    const g0 = direct[0]!;
    await g0.query('BEGIN');
    try {
      await g0.query('SET LOCAL ROLE nobody');
      await assert.rejects(
        g0.query('SELECT count(*) FROM pgscale_all.t' + String(await firstShard())),
        (e: { code?: string }) => e.code === '42501',
      );
    } finally {
      await g0.query('ROLLBACK');
    }
  });

  async function firstShard(): Promise<number> {
    const r = await app.query<{ s: string }>("SELECT get_shard_id_for_distribution_column('users', 1) AS s");
    const s = Number(r.rows[0]!.s);
    // The first shard id of the table: the smallest of its shards.
    const shards = await Promise.all(
      direct.map(
        async (d) =>
          (
            await d.query<{ n: string }>(
              "SELECT min(substring(c.relname from '_(\\d+)$')::int)::text AS n FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'users'::regclass",
            )
          ).rows[0]!.n,
      ),
    );
    return Math.min(s, ...shards.map(Number));
  }

  test('a column added by DDL is readable across groups at once', async () => {
    await app.query('ALTER TABLE users ADD COLUMN note text');
    await app.query(`UPDATE users SET note = 'n' WHERE user_id = 7`);
    assert.equal(Number(await one(`SELECT count(*) FROM users WHERE note = 'n'`)), 1);
  });

  test('UPDATE and DELETE without the key run on every group, atomically; counts and RETURNING summed', async () => {
    const r = await app.query<{ user_id: string }>(
      'UPDATE users SET score = score + 100 WHERE score = 3 RETURNING user_id',
    );
    assert.equal(r.rowCount, 24);
    assert.equal(r.rows.length, 24);
    assert.equal(Number(await one('SELECT count(*) FROM users WHERE score = 103')), 24);
    // A colocated correlated subquery stays within each group.
    const d = await app.query(
      'DELETE FROM orders o WHERE EXISTS (SELECT 1 FROM users u WHERE u.user_id = o.user_id AND u.score = 103)',
    );
    assert.equal(d.rowCount, 72);
    assert.equal(Number(await one('SELECT count(*) FROM orders')), USERS * 3 - 72);
    // One group refusing its part changes nothing anywhere.
    await app.query('ALTER TABLE users ADD CONSTRAINT score_small CHECK (score < 1000)');
    await assert.rejects(
      app.query('UPDATE users SET score = score * 100 WHERE user_id > 350'),
      (e: { code?: string }) => e.code === '23514',
    );
    assert.equal(Number(await one('SELECT count(*) FROM users WHERE score >= 1000')), 0);
    // A subquery on another key class would read other groups' rows: refused, not run per group.
    await assert.rejects(
      app.query('UPDATE users SET score = 0 WHERE score IN (SELECT amount::int FROM orders)'),
      (e: { code?: string }) => e.code === '0A000',
    );
    // Inside a transaction block: refused (a transaction on several groups), the block goes on failing.
    await app.query('BEGIN');
    await assert.rejects(
      app.query('DELETE FROM users WHERE score = 5'),
      (e: { code?: string }) => e.code === '0A000',
    );
    await app.query('ROLLBACK');
    assert.equal(Number(await one('SELECT count(*) FROM users WHERE score = 5')), 24);
  });

  test('INSERT … SELECT between colocated tables, key from key, runs on every group', async () => {
    const before = Number(await one('SELECT count(*) FROM orders'));
    const r = await app.query(
      'INSERT INTO orders (user_id, order_id, amount) SELECT user_id, 10, 1.5 FROM users WHERE score = 16',
    );
    assert.equal(r.rowCount, 23);
    assert.equal(Number(await one('SELECT count(*) FROM orders')), before + 23);
    assert.equal(Number(await one('SELECT count(*) FROM orders WHERE order_id = 10')), 23);
    // A key computed from the key would land on other groups: refused before anything runs.
    await assert.rejects(
      app.query('INSERT INTO orders (user_id, order_id, amount) SELECT user_id + 1, 11, 1 FROM users'),
      (e: { code?: string }) => e.code === '0A000',
    );
  });

  test('a call of a function that reads a distributed table is refused, not answered from one group', async () => {
    await app.query(
      "CREATE FUNCTION user_total() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM users'",
    );
    // The sharding service scans group 0's functions every few seconds (and at each catalog change).
    await until(
      'the call to be refused',
      () =>
        app.query('SELECT user_total()').then(
          () => null,
          (e: { code?: string }) => (e.code === '0A000' ? true : null),
        ),
      30_000,
    );
    await assert.rejects(
      app.query('SELECT name, user_total() FROM users WHERE user_id = 3'),
      (e: { code?: string }) => e.code === '0A000',
    );
    assert.equal(Number(await one('SELECT count(*) FROM users WHERE user_id = 3')), 1);
  });

  test('EXPLAIN shows the foreign scans of every group', async () => {
    const r = await app.query('EXPLAIN SELECT count(*) FROM users');
    const plan = r.rows.map((x: Record<string, string>) => Object.values(x)[0]).join('\n');
    assert.match(plan, /Foreign Scan/);
  });
});
