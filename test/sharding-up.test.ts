/**
 * The guide's sharding example through `pgscale up` with three groups: a local `users` table
 * with rows, `SELECT create_distributed_table('users', 'user_id')` through the proxy, and then
 * plain SQL: each row lives on the group PostgreSQL's own hash puts it (checked with each group's
 * partitions), point reads and writes by key go to that group only (simple protocol, extended
 * with pg, prepared with postgres.js), a transaction stays on one group, what needs several groups
 * is refused with 0A000, reference tables are copied to every group, and API misuse gets its error.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import postgres from 'postgres';
import { binarySets } from './harness.js';
import { upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';
import type { TestCluster } from './harness.js';
import { readSecrets } from '../src/cluster/secrets.js';

const bins = binarySets()[0]!;
const USERS = 1000;

describe('sharding inside pgscale up: the guide’s users table over three groups', () => {
  let tc: TestCluster;
  let app: pg.Client;
  let direct: pg.Client[] = [];
  const code = (c: string) => (e: { code?: string }) => e.code === c;

  let sc: ShardedCluster;

  before(async () => {
    sc = await upSharded(bins, { groups: 3, replicas: 0 });
    tc = sc.tc;
    app = await sc.connectApp();
    for (let g = 0; g < 3; g++) direct.push(await sc.connectGroup(g));
  });
  after(async () => {
    await app?.end().catch(() => undefined);
    for (const c of direct) await c.end().catch(() => undefined);
    direct = [];
    await sc?.down();
  });

  /** Which shard (partition users_<id>) holds each key, group by group, as PostgreSQL placed them. */
  async function placement(table: string): Promise<Map<number, { group: number; shard: number }>> {
    const out = new Map<number, { group: number; shard: number }>();
    for (let g = 0; g < direct.length; g++) {
      const r = await direct[g]!.query<{ k: string; part: string }>(
        `SELECT user_id::text AS k, tableoid::regclass::text AS part FROM ${table}`,
      );
      for (const row of r.rows) {
        const shard = Number(/_(\d+)$/.exec(row.part)![1]);
        assert.ok(!out.has(Number(row.k)), `key ${row.k} on two groups`);
        out.set(Number(row.k), { group: g, shard });
      }
    }
    return out;
  }

  test('create_distributed_table moves the rows of a local table onto the groups by PostgreSQL’s hash', async () => {
    await app.query(
      'CREATE TABLE users (user_id bigint PRIMARY KEY, name text, email text, created_at timestamp DEFAULT now())',
    );
    await app.query(
      `INSERT INTO users (user_id, name, email) SELECT g, 'user ' || g, 'u' || g || '@example.com' FROM generate_series(1, ${USERS}) g`,
    );
    const r = await app.query("SELECT create_distributed_table('users', 'user_id')");
    assert.equal(r.rows.length, 1);
    // Right after: an INSERT naming no columns (the table's order is known to the proxy), then
    // gone again, so the counts below are the moved rows only.
    await app.query("INSERT INTO users VALUES (5000, 'Ada', 'ada@example.com', now())");
    assert.equal((await app.query('SELECT name FROM users WHERE user_id = 5000')).rows[0].name, 'Ada');
    await app.query('DELETE FROM users WHERE user_id = 5000');
    const where = await placement('users');
    assert.equal(where.size, USERS, 'every row is on exactly one group');
    const groups = new Set([...where.values()].map((w) => w.group));
    assert.equal(groups.size, 3, 'rows on every group');
    // The proxy's hash says the same shard PostgreSQL chose, for every key.
    for (const k of [1, 2, 3, 17, 500, 999, 1000]) {
      const id = await app.query<{ id: string }>(
        `SELECT get_shard_id_for_distribution_column('users', ${k}) AS id`,
      );
      assert.equal(Number(id.rows[0]!.id), where.get(k)!.shard, `key ${k}`);
    }
  });

  test('point reads and writes by key run on the key’s group only: simple, extended and prepared', async () => {
    const where = await placement('users');
    const portOf = (g: number) => tc.cluster.nodes().find((n) => n.group === g)!.port;
    for (const k of [1, 42, 333, 777]) {
      const simple = await app.query<{ name: string; port: number }>(
        `SELECT name, inet_server_port() AS port FROM users WHERE user_id = ${k}`,
      );
      assert.equal(simple.rows[0]!.name, `user ${k}`);
      assert.equal(simple.rows[0]!.port, portOf(where.get(k)!.group));
      const ext = await app.query<{ name: string; port: number }>(
        'SELECT name, inet_server_port() AS port FROM users WHERE user_id = $1',
        [k],
      );
      assert.equal(ext.rows[0]!.port, portOf(where.get(k)!.group));
    }
    // Writes: a row on the wrong group would be refused by PostgreSQL itself (no partition there).
    for (let k = USERS + 1; k <= USERS + 200; k++) {
      if (k % 2) await app.query(`INSERT INTO users (user_id, name) VALUES (${k}, 'new ${k}')`);
      else await app.query('INSERT INTO users (user_id, name) VALUES ($1, $2)', [k, `new ${k}`]);
    }
    const sql = postgres({
      host: '127.0.0.1',
      port: tc.cluster.config.proxy.port,
      user: 'app',
      password: readSecrets(tc.cluster.dataDir)!.app,
      database: 'app',
      max: 2,
      onnotice: () => {},
    });
    try {
      for (let k = USERS + 201; k <= USERS + 300; k++)
        await sql`INSERT INTO users (user_id, name) VALUES (${k}, ${'pjs ' + k})`;
      const got = await sql<{ name: string }[]>`SELECT name FROM users WHERE user_id = ${USERS + 250}`;
      assert.equal(got[0]!.name, `pjs ${USERS + 250}`);
      await sql`UPDATE users SET email = ${'x@y'} WHERE user_id = ${USERS + 250}`;
      await sql`DELETE FROM users WHERE user_id = ${USERS + 251}`;
    } finally {
      await sql.end();
    }
    const after = await placement('users');
    assert.equal(after.size, USERS + 299);
    assert.equal(
      (await app.query('SELECT email FROM users WHERE user_id = $1', [USERS + 250])).rows[0].email,
      'x@y',
    );
  });

  test('a transaction runs on one group, or moves to another with its next statement and commits on both', async () => {
    const where = await placement('users');
    const byGroup = [0, 1, 2].map((g) => [...where].filter(([, w]) => w.group === g).map(([k]) => k));
    const [a, b] = byGroup[1]!;
    const other = byGroup[2]![0]!;
    await app.query('BEGIN');
    await app.query("UPDATE users SET name = 'tx' WHERE user_id = $1", [a]);
    await app.query("UPDATE users SET name = 'tx' WHERE user_id = $1", [b]);
    await app.query('COMMIT');
    const names = await app.query('SELECT name FROM users WHERE user_id = $1', [b]);
    assert.equal(names.rows[0].name, 'tx');
    await app.query('BEGIN');
    await app.query("UPDATE users SET name = 'no' WHERE user_id = $1", [a]);
    assert.equal((await app.query('SELECT * FROM users WHERE user_id = $1', [other])).rowCount, 1);
    await app.query('ROLLBACK');
    assert.equal((await app.query('SELECT name FROM users WHERE user_id = $1', [a])).rows[0].name, 'tx');
    await app.query('BEGIN');
    await app.query("UPDATE users SET name = 'both' WHERE user_id = $1", [a]);
    await app.query("UPDATE users SET name = 'both' WHERE user_id = $1", [other]);
    await app.query('COMMIT');
    for (const k of [a, other])
      assert.equal((await app.query('SELECT name FROM users WHERE user_id = $1', [k])).rows[0].name, 'both');
    // Group 0 took no part: the decision was written apart, by the superuser (not record_commit).
    const by = await direct[0]!.query<{ by: string | null }>(
      `SELECT value::json->>'by' AS by FROM pgscale_tx.decisions ORDER BY (value::json->>'at')::bigint DESC LIMIT 1`,
    );
    assert.equal(by.rows.length, 1);
    assert.equal(by.rows[0]!.by, null);
  });

  test('statements that need several groups are answered whole or refused, never answered in part', async () => {
    // Reads run on group 0 over the global tables; a write without the key on every group.
    const total = (
      await Promise.all(
        direct.map(async (d) => Number((await d.query('SELECT count(*) AS n FROM users')).rows[0].n)),
      )
    ).reduce((a, b) => a + b, 0);
    assert.equal(Number((await app.query('SELECT count(*) AS n FROM users')).rows[0].n), total);
    assert.equal((await app.query('UPDATE users SET name = name')).rowCount, total);
    // A transaction that wrote on one group cannot read the others' rows yet.
    await app.query('BEGIN');
    const onGroup1 = (await direct[1]!.query<{ k: string }>('SELECT user_id::text AS k FROM users LIMIT 1'))
      .rows[0]!.k;
    await app.query('UPDATE users SET name = name WHERE user_id = $1', [onGroup1]);
    await assert.rejects(app.query('SELECT count(*) FROM users'), code('0A000'));
    await app.query('ROLLBACK');
    await assert.rejects(app.query("INSERT INTO users (user_id, name) VALUES (NULL, 'x')"), code('23502'));
    // The session is fine afterwards.
    assert.equal((await app.query('SELECT name FROM users WHERE user_id = 1')).rows[0].name, 'user 1');
  });

  test('create_reference_table copies a table to every group; reads are served by any', async () => {
    await app.query('CREATE TABLE countries (code text PRIMARY KEY, name text)');
    await app.query("INSERT INTO countries VALUES ('fr', 'France'), ('jp', 'Japan')");
    await app.query("SELECT create_reference_table('countries')");
    for (const d of direct)
      assert.equal((await d.query('SELECT count(*)::int AS n FROM countries')).rows[0].n, 2);
    const r = await app.query("SELECT name FROM countries WHERE code = 'jp'");
    assert.equal(r.rows[0].name, 'Japan');
  });

  test('citus_tables and citus_shards answer any SQL over them, as Citus’s views do', async () => {
    const t = await app.query<{
      table_name: string;
      citus_table_type: string;
      distribution_column: string;
      shard_count: string;
    }>(
      'SELECT table_name::text, citus_table_type, distribution_column, shard_count FROM citus_tables ORDER BY 1',
    );
    assert.deepEqual(
      t.rows.map((r) => [r.table_name, r.citus_table_type, r.distribution_column, Number(r.shard_count)]),
      [
        ['countries', 'reference', '<none>', 1],
        ['users', 'distributed', 'user_id', 32],
      ],
    );
    // Extended protocol, a WHERE on the regclass column, and the shards spread over the 3 groups.
    const s = await app.query<{ n: string; ports: string }>(
      "SELECT count(*)::text AS n, count(DISTINCT nodeport)::text AS ports FROM citus_shards WHERE table_name = 'users'::regclass",
      [],
    );
    assert.equal(Number(s.rows[0]!.n), 32);
    assert.equal(Number(s.rows[0]!.ports), 3);
    const sized = await app.query<{ n: string }>(
      "SELECT count(*)::text AS n FROM citus_shards WHERE shard_size > 0 AND shard_name LIKE 'users\\_%'",
    );
    assert.ok(Number(sized.rows[0]!.n) > 0, 'shard sizes come from the groups');
  });

  test('API misuse gets an error naming the problem, and changes nothing', async () => {
    await assert.rejects(app.query("SELECT create_distributed_table('nosuch', 'id')"), code('42P01'));
    await app.query('CREATE TABLE events (id bigint, at timestamp)');
    await assert.rejects(app.query("SELECT create_distributed_table('events', 'nosuch')"), code('42703'));
    await assert.rejects(app.query("SELECT create_distributed_table('users', 'user_id')"));
    await assert.rejects(app.query("SELECT create_distributed_table('events', 'id', shard_count => 0)"));
    await app.query('BEGIN');
    await assert.rejects(app.query("SELECT create_distributed_table('events', 'id')"), code('25001'));
    await app.query('ROLLBACK');
    // events is still a local table on group 0.
    await app.query('INSERT INTO events VALUES (1, now())');
    assert.equal((await app.query('SELECT count(*)::int AS n FROM events')).rows[0].n, 1);
  });
});
