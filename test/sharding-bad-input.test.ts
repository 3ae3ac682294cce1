/**
 * Bad input to a sharded database through the proxy (two groups inside `pgscale up`): a NULL or
 * mistyped distribution key and each misuse of create_distributed_table get PostgreSQL's or Citus's
 * SQLSTATE, and the session goes on working; and a controller killed (SIGKILL) in the middle of a
 * create_distributed_table leaves, after the next `pgscale up`, the table either local (every row
 * on group 0, not in the catalog) or distributed (every row spread), never half, with no prepared
 * transaction left on any group.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type pg from 'pg';
import postgres from 'postgres';
import { binarySets, cli, until } from './harness.js';
import { upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';

const bins = binarySets()[0]!;
const GROUPS = 2;

describe('sharding: bad input through the proxy', () => {
  let sc: ShardedCluster;
  let app: pg.Client;
  let direct: pg.Client[] = [];
  const code = (c: string) => (e: { code?: string; message?: string }) => {
    assert.equal(e.code, c, e.message);
    return true;
  };

  const connectDirect = async () => {
    for (const d of direct) await d.end().catch(() => undefined);
    direct = [];
    for (let g = 0; g < GROUPS; g++) direct.push(await sc.connectGroup(g));
  };

  before(async () => {
    sc = await upSharded(bins, { groups: GROUPS, replicas: 0 });
    app = await sc.connectApp();
    await connectDirect();
    await app.query('CREATE TABLE users (user_id bigint, name text, email text, created_at timestamp)');
    await app.query("SELECT create_distributed_table('users', 'user_id')");
  });
  after(async () => {
    await app?.end().catch(() => undefined);
    for (const d of direct) await d.end().catch(() => undefined);
    await sc?.down();
  });

  /** The session still works: a routed write and read by key. */
  async function usable(c: pg.Client, k: number): Promise<void> {
    await c.query('INSERT INTO users (user_id, name) VALUES ($1, $2)', [k, `ok ${k}`]);
    assert.equal((await c.query(`SELECT name FROM users WHERE user_id = ${k}`)).rows[0].name, `ok ${k}`);
  }

  test('a NULL distribution key on INSERT: 23502 (simple, extended, postgres.js), nothing stored', async () => {
    await assert.rejects(app.query("INSERT INTO users (user_id, name) VALUES (NULL, 'x')"), code('23502'));
    await usable(app, 1);
    await assert.rejects(
      app.query('INSERT INTO users (user_id, name) VALUES ($1, $2)', [null, 'x']),
      code('23502'),
    );
    await usable(app, 2);
    // No key column at all: Citus's 0A000 "cannot perform an INSERT without a partition column value".
    await assert.rejects(
      app.query("INSERT INTO users (name) VALUES ('x')"),
      (e: { code?: string; message: string }) => {
        assert.equal(e.code, '0A000', e.message);
        assert.match(e.message, /without a partition column value/);
        return true;
      },
    );
    await usable(app, 3);
    const sql = postgres({ ...sc.app, max: 1, onnotice: () => {} });
    try {
      await assert.rejects(sql`INSERT INTO users (user_id, name) VALUES (${null}, ${'x'})`, code('23502'));
      await sql`INSERT INTO users (user_id, name) VALUES (${4}, ${'ok 4'})`;
    } finally {
      await sql.end();
    }
    for (const d of direct)
      assert.equal((await d.query("SELECT count(*)::int AS n FROM users WHERE name = 'x'")).rows[0].n, 0);
  });

  test('a key of the wrong type: 22P02, and the session goes on', async () => {
    await assert.rejects(app.query("INSERT INTO users (user_id, name) VALUES ('abc', 'x')"), code('22P02'));
    await usable(app, 10);
    await assert.rejects(
      app.query('INSERT INTO users (user_id, name) VALUES ($1, $2)', ['abc', 'x']),
      code('22P02'),
    );
    await usable(app, 11);
    await assert.rejects(app.query("SELECT * FROM users WHERE user_id = 'abc'"), code('22P02'));
    await usable(app, 12);
    await assert.rejects(app.query('SELECT * FROM users WHERE user_id = $1', ['1.5']), code('22P02'));
    await usable(app, 13);
    // Inside a transaction: the error fails it as PostgreSQL does; ROLLBACK, and on.
    await app.query('BEGIN');
    await assert.rejects(app.query('SELECT * FROM users WHERE user_id = $1', ['abc']), code('22P02'));
    await assert.rejects(app.query('SELECT 1'), code('25P02'));
    await app.query('ROLLBACK');
    await usable(app, 14);
  });

  test('create_distributed_table misuse: each refusal has its SQLSTATE and changes nothing', async () => {
    await app.query('CREATE TABLE t_ts (id bigint, at timestamptz)');
    await app.query('CREATE TABLE t_uniq (id bigint, email text UNIQUE)');
    await app.query('CREATE TABLE t_ok (id bigint, v text)');
    await app.query("INSERT INTO t_ok VALUES (1, 'a'), (2, 'b')");
    const cases: [string, string][] = [
      ["SELECT create_distributed_table('no_such_table', 'id')", '42P01'],
      ["SELECT create_distributed_table('t_ts', 'nope')", '42703'],
      ["SELECT create_distributed_table('users', 'user_id')", '42P16'],
      // A type pgscale cannot hash (Citus would take timestamptz): 0A000, the detail names it.
      ["SELECT create_distributed_table('t_ts', 'at')", '0A000'],
      ["SELECT create_distributed_table('t_uniq', 'id')", '0A000'],
    ];
    for (const [sql, c] of cases) {
      await assert.rejects(app.query(sql), code(c), sql);
      await usable(app, 20 + cases.findIndex((x) => x[0] === sql));
    }
    // Nothing changed: every table is still local on group 0 only.
    for (const t of ['t_ts', 't_uniq']) {
      assert.equal(
        (await direct[0]!.query('SELECT relkind FROM pg_class WHERE oid = $1::regclass', [t])).rows[0]
          .relkind,
        'r',
      );
      for (let g = 1; g < GROUPS; g++)
        assert.equal(
          (await direct[g]!.query('SELECT to_regclass($1) AS r', [t])).rows[0].r,
          null,
          `${t} on ${g}`,
        );
      await assert.rejects(app.query(`SELECT get_shard_id_for_distribution_column('${t}', 1)`));
    }
    for (const d of direct)
      assert.equal((await d.query('SELECT count(*)::int AS n FROM pg_prepared_xacts')).rows[0].n, 0);
    // A valid call afterwards still works.
    await app.query("SELECT create_distributed_table('t_ok', 'id')");
    assert.equal((await app.query('SELECT v FROM t_ok WHERE id = 2')).rows[0].v, 'b');
  });

  test('the API through the extended protocol (pgjdbc’s and postgres.js’s way) is answered as with the simple one', async () => {
    await app.query('CREATE TABLE t_ext (id bigint, v text)');
    // A misuse gets its own SQLSTATE, not "function create_distributed_table(unknown, unknown) does not exist".
    await assert.rejects(
      app.query('SELECT create_distributed_table($1, $2)', ['t_ext', 'nope']),
      code('42703'),
    );
    await usable(app, 30);
    const sql = postgres({ ...sc.app, max: 1, onnotice: () => {} });
    try {
      // postgres.js sends every statement with Parse/Bind/Execute, even without parameters.
      await sql`SELECT create_distributed_table('t_ext', 'id')`;
      const got = await sql<
        { id: string }[]
      >`SELECT get_shard_id_for_distribution_column('t_ext', ${7}) AS id`;
      assert.match(got[0]!.id, /^\d+$/);
    } finally {
      await sql.end();
    }
    await usable(app, 31);
  });

  /**
   * SIGKILL of the controller (and so of the proxy and the sharding service) while `table` is
   * being distributed, once `when` holds on some group; then `pgscale up`.
   */
  async function killDuring(
    table: string,
    rows: number,
    when: string,
    stop: 'sigkill' | 'down' = 'sigkill',
  ): Promise<'local' | 'distributed'> {
    await app.query(`CREATE TABLE ${table} (id bigint, payload text)`);
    await app.query(
      `INSERT INTO ${table} SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, ${rows}) g`,
    );
    const c = await sc.connectApp();
    const call = c.query(`SELECT create_distributed_table('${table}', 'id')`).then(
      () => 'returned',
      (e: Error) => `failed: ${e.message}`,
    );
    let seen = false;
    const deadline = Date.now() + 120_000;
    while (!seen && Date.now() < deadline) {
      for (const d of direct) {
        if ((await d.query(when)).rows[0].hit) seen = true;
      }
      if ((await Promise.race([call, Promise.resolve(null)])) !== null) break;
    }
    const info = JSON.parse(readFileSync(`${sc.tc.cluster.dataDir}/controller.json`, 'utf8')) as {
      pid: number;
    };
    if (stop === 'down') {
      const down = await cli(['down', '-c', sc.tc.file], sc.tc.env);
      assert.equal(down.code, 0, down.stderr + down.stdout);
    } else process.kill(info.pid, 'SIGKILL');
    const outcome = await call;
    await c.end().catch(() => undefined);
    console.log(`# ${table}: ${stop} ${seen ? 'at the moment asked' : 'late'}; the call ${outcome}`);
    await until('the controller gone', () => {
      try {
        process.kill(info.pid, 0);
        return Promise.resolve(readFileSync(`/proc/${info.pid}/stat`, 'utf8').includes(') Z'));
      } catch {
        return Promise.resolve(true);
      }
    });
    const up = await cli(['up', '-c', sc.tc.file, '--detach'], sc.tc.env);
    assert.equal(up.code, 0, up.stderr + up.stdout);
    await app.end().catch(() => undefined);
    app = await sc.connectApp();
    await connectDirect();
    await until(
      'no prepared transaction left on any group',
      async () => {
        let n = 0;
        for (const d of direct)
          n += (await d.query('SELECT count(*)::int AS n FROM pg_prepared_xacts')).rows[0].n;
        return n === 0;
      },
      60_000,
    );
    // Local or distributed, never half.
    const kind = (await direct[0]!.query('SELECT relkind FROM pg_class WHERE oid = $1::regclass', [table]))
      .rows[0].relkind as string;
    const counts: number[] = [];
    for (const d of direct) {
      const exists = (await d.query('SELECT to_regclass($1) AS r', [table])).rows[0].r !== null;
      counts.push(
        exists ? (await d.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n : -1,
      );
    }
    const shard = await app.query(`SELECT get_shard_id_for_distribution_column('${table}', 1) AS id`).then(
      () => true,
      () => false,
    );
    if (kind === 'r') {
      assert.equal(counts[0], rows, `local: every row on group 0 (${counts.join(', ')})`);
      for (let g = 1; g < GROUPS; g++) assert.equal(counts[g], -1, `local: no ${table} on group ${g}`);
      assert.equal(shard, false, 'local: not in the catalog');
      return 'local';
    }
    assert.equal(kind, 'p', `${table} on group 0 is a table or partitioned (${kind})`);
    assert.equal(shard, true, 'distributed: in the catalog');
    assert.equal(
      counts.reduce((a, b) => a + b, 0),
      rows,
      `distributed: every row once (${counts.join(', ')})`,
    );
    for (const n of counts) assert.ok(n > 0, `distributed: rows on every group (${counts.join(', ')})`);
    return 'distributed';
  }

  test('SIGKILL of the controller while rows are copied: local or distributed, never half', async () => {
    const got = await killDuring(
      'big_copy',
      200_000,
      // The service's copy into a group other than 0, or group 0 being emptied.
      "SELECT count(*) > 0 AS hit FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND state = 'active' AND query ILIKE '%big_copy%' AND query NOT ILIKE '%create_distributed_table%'",
    );
    console.log(`# big_copy: ${got}`);
    // Whatever it is, the table can be distributed now and read by key.
    if (got === 'local') await app.query("SELECT create_distributed_table('big_copy', 'id')");
    assert.equal((await app.query('SELECT id FROM big_copy WHERE id = 777')).rows[0].id, '777');
    await usable(app, 40);
  });

  test('SIGKILL of the controller once the groups prepared: local or distributed, never half', async () => {
    const got = await killDuring('big_prep', 100_000, 'SELECT count(*) > 0 AS hit FROM pg_prepared_xacts');
    console.log(`# big_prep: ${got}`);
    if (got === 'local') await app.query("SELECT create_distributed_table('big_prep', 'id')");
    assert.equal((await app.query('SELECT id FROM big_prep WHERE id = 4242')).rows[0].id, '4242');
    await usable(app, 41);
  });

  test('pgscale down while rows are copied, then up: local or distributed, never half', async () => {
    const got = await killDuring(
      'big_down',
      200_000,
      "SELECT count(*) > 0 AS hit FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND state = 'active' AND query ILIKE '%big_down%' AND query NOT ILIKE '%create_distributed_table%'",
      'down',
    );
    console.log(`# big_down: ${got}`);
    if (got === 'local') await app.query("SELECT create_distributed_table('big_down', 'id')");
    assert.equal((await app.query('SELECT id FROM big_down WHERE id = 31337')).rows[0].id, '31337');
    await usable(app, 42);
  });
});
