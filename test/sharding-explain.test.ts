/**
 * EXPLAIN through the proxy of a sharded database shows the route (docs/sharding.md, "Seeing the
 * route"): `pgscale up` with three groups, one cluster for every case. A point query's EXPLAIN
 * names the group and shard the catalog and get_shard_id_for_distribution_column say, and what
 * pinned it, above the group's own plan (which names that shard's partition); with node-postgres
 * (simple, and extended with a Bind parameter), psql and postgres.js. EXPLAIN ANALYZE of an
 * INSERT inserts exactly one row; JSON still parses, with a "pgscale" key; YAML comes with a
 * NOTICE; a reference-table read, a reference-table write (every group), a local table, and an
 * EXPLAIN inside a transaction block say where they ran.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type pg from 'pg';
import postgres from 'postgres';
import { binarySets } from './harness.js';
import { shardGroups, upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';

const bins = binarySets()[0]!;

describe('EXPLAIN shows the route through pgscale up (three groups)', () => {
  let sc: ShardedCluster;
  let app: pg.Client;
  let direct: pg.Client[] = [];
  /** Shard id → group of the users table, from the partitions each group holds. */
  let groupOf = new Map<number, number>();

  before(async () => {
    sc = await upSharded(bins, { groups: 3, replicas: 0 });
    app = await sc.connectApp();
    for (let g = 0; g < 3; g++) direct.push(await sc.connectGroup(g));
    await app.query('CREATE TABLE users (user_id bigint PRIMARY KEY, name text)');
    await app.query("INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 50) g");
    await app.query("SELECT create_distributed_table('users', 'user_id')");
    await app.query('CREATE TABLE countries (code text PRIMARY KEY, name text)');
    await app.query("SELECT create_reference_table('countries')");
    await app.query('CREATE TABLE notes (id int PRIMARY KEY, body text)');
    groupOf = await shardGroups(direct, 'users');
  });
  after(async () => {
    await app?.end().catch(() => undefined);
    for (const c of direct) await c.end().catch(() => undefined);
    direct = [];
    await sc?.down();
  });

  /** The shard and group of `key` by the catalog (get_shard_id…) and the partitions. */
  async function expected(key: number): Promise<{ shard: number; group: number }> {
    const r = await app.query<{ id: string }>(
      `SELECT get_shard_id_for_distribution_column('users', ${key}) AS id`,
    );
    const shard = Number(r.rows[0]!.id);
    const group = groupOf.get(shard);
    assert.ok(group !== undefined, `shard ${shard} is on a group`);
    return { shard, group };
  }

  const plan = (r: pg.QueryResult) => r.rows.map((row: Record<string, string>) => row['QUERY PLAN']!);

  /** The route rows of a text EXPLAIN of users key `key`, and the group's plan beneath them. */
  async function assertPointRoute(lines: readonly string[], key: number, reason: RegExp): Promise<void> {
    const { shard, group } = await expected(key);
    assert.equal(lines[0], 'Custom Scan (pgscale router)', lines.join('\n'));
    assert.equal(lines[1], `  Group: ${group}  Shard: ${shard} (users_${shard})`);
    assert.match(lines[2]!, reason);
    assert.equal(lines[3], `  ->  Plan on group ${group} (primary)`);
    // The group's own plan, indented, reads that shard's partition.
    assert.match(lines[4]!, new RegExp(`^ {8}\\S.* on users_${shard}\\b`), lines.join('\n'));
    assert.ok(
      lines.slice(4).every((l) => l.startsWith('        ')),
      lines.join('\n'),
    );
  }

  test('node-postgres, simple protocol: the group, the shard and why', async () => {
    const r = await app.query('EXPLAIN SELECT * FROM users WHERE user_id = 5');
    await assertPointRoute(plan(r), 5, /^ {2}Reason: users\.user_id = 5$/);
    assert.equal(r.command, 'EXPLAIN');
  });

  test('node-postgres, extended protocol with a Bind parameter', async () => {
    for (const key of [7, 8, 9]) {
      const r = await app.query('EXPLAIN SELECT name FROM users WHERE user_id = $1', [key]);
      await assertPointRoute(plan(r), key, new RegExp(`^ {2}Reason: users\\.user_id = \\$1 \\(${key}\\)$`));
    }
    // A named statement, bound again with another key: routed and described anew.
    const q = { name: 'explain_point', text: 'EXPLAIN SELECT name FROM users WHERE user_id = $1' };
    await assertPointRoute(plan(await app.query({ ...q, values: [11] })), 11, /\$1 \(11\)/);
    await assertPointRoute(plan(await app.query({ ...q, values: [12] })), 12, /\$1 \(12\)/);
  });

  test('EXPLAIN ANALYZE of an INSERT inserts exactly one row, on its group', async () => {
    const r = await app.query("EXPLAIN ANALYZE INSERT INTO users VALUES (1001, 'analyzed')");
    const { group } = await expected(1001);
    const lines = plan(r);
    assert.equal(lines[1]?.startsWith(`  Group: ${group}  Shard: `), true, lines.join('\n'));
    assert.ok(
      lines.some((l) => /^ {8}Execution Time: /.test(l)),
      lines.join('\n'),
    );
    const r2 = await app.query('EXPLAIN (ANALYZE, FORMAT JSON) INSERT INTO users VALUES ($1, $2)', [
      1002,
      'x',
    ]);
    assert.equal(r2.rows.length, 1);
    for (const key of [1001, 1002]) {
      const counts = await Promise.all(
        direct.map(async (d) =>
          Number((await d.query('SELECT count(*) FROM users WHERE user_id = $1', [key])).rows[0].count),
        ),
      );
      const g = (await expected(key)).group;
      assert.deepEqual(
        counts,
        [0, 1, 2].map((i) => (i === g ? 1 : 0)),
        `key ${key}: one row, on group ${g}`,
      );
    }
  });

  test('JSON stays one JSON document, the route in its "pgscale" key and the plan where it was', async () => {
    const { shard, group } = await expected(5);
    for (const r of [
      await app.query('EXPLAIN (FORMAT JSON) SELECT * FROM users WHERE user_id = 5'),
      await app.query('EXPLAIN (FORMAT JSON, ANALYZE) SELECT * FROM users WHERE user_id = $1', [5]),
    ]) {
      assert.equal(r.rows.length, 1);
      // node-postgres parses the json column: a string here would mean it did not.
      const doc = r.rows[0]['QUERY PLAN'] as [
        { pgscale: Record<string, unknown>; Plan: Record<string, unknown> },
      ];
      assert.equal(typeof doc, 'object');
      assert.equal(doc[0].pgscale.Group, String(group));
      assert.deepEqual(doc[0].pgscale.Shards, [{ 'Shard Id': shard, 'Shard Name': `users_${shard}` }]);
      assert.equal(doc[0].pgscale.Reason !== undefined, true);
      assert.equal(doc[0].Plan['Relation Name'], `users_${shard}`);
    }
  });

  test('YAML keeps PostgreSQL’s document and a NOTICE says the route', async () => {
    const { shard, group } = await expected(5);
    const notices: string[] = [];
    const onNotice = (n: { message?: string }) => notices.push(n.message ?? '');
    app.on('notice', onNotice);
    try {
      const r = await app.query('EXPLAIN (FORMAT YAML) SELECT * FROM users WHERE user_id = 5');
      assert.match(plan(r)[0]!, /^- Plan: /);
    } finally {
      app.off('notice', onNotice);
    }
    assert.equal(notices.length, 1, notices.join('\n'));
    assert.match(
      notices[0]!,
      new RegExp(`^pgscale route: Group: ${group}  Shard: ${shard} \\(users_${shard}\\)`),
    );
  });

  test('a reference-table read, a local table, and no table at all', async () => {
    const ref = plan(await app.query("EXPLAIN SELECT * FROM countries WHERE code = 'fr'"));
    assert.equal(ref[0], 'Custom Scan (pgscale router)');
    assert.match(ref[1]!, /^ {2}Group: \d \(reference tables only: any group answers\)$/);
    assert.match(ref.slice(3).join('\n'), /on countries/);
    const local = plan(await app.query('EXPLAIN SELECT * FROM notes WHERE id = 1'));
    assert.equal(local[1], '  Group: 0 (no distributed or reference table)', local.join('\n'));
    assert.match(local.slice(3).join('\n'), /on notes/);
    const none = plan(await app.query('EXPLAIN SELECT 1'));
    assert.match(none[1]!, /^ {2}Group: \d \(no distributed or reference table\)$/);
    assert.match(none.at(-1)!, /^ {8}Result/);
    // A colocated join on the key and a reference table: still one group.
    const { shard, group } = await expected(3);
    const join = plan(
      await app.query(
        'EXPLAIN SELECT * FROM users u JOIN countries c ON c.name = u.name WHERE u.user_id = $1',
        [3],
      ),
    );
    assert.equal(join[1], `  Group: ${group}  Shard: ${shard} (users_${shard})`);
  });

  test('EXPLAIN ANALYZE of a reference-table write: every group, one row on each', async () => {
    const r = plan(await app.query("EXPLAIN ANALYZE INSERT INTO countries VALUES ('fr', 'France')"));
    assert.equal(r[0], 'Custom Scan (pgscale router)');
    assert.match(r[1]!, /every group/);
    assert.match(r[2]!, /Reason: .*countries/);
    assert.ok(
      r.slice(4).some((l) => /^ {8}Insert on countries/.test(l)),
      r.join('\n'),
    );
    const counts = await Promise.all(
      direct.map(async (d) =>
        Number((await d.query("SELECT count(*) FROM countries WHERE code = 'fr'")).rows[0].count),
      ),
    );
    assert.deepEqual(counts, [1, 1, 1]);
  });

  test('extended protocol: EXPLAIN ANALYZE of a reference-table write with parameters, by the host', async () => {
    const r = plan(
      await app.query('EXPLAIN ANALYZE INSERT INTO countries VALUES ($1, $2)', ['de', 'Germany']),
    );
    assert.match(r[1]!, /every group/, r.join('\n'));
    assert.ok(
      r.slice(4).some((l) => /^ {8}Insert on countries/.test(l)),
      r.join('\n'),
    );
    const counts = await Promise.all(
      direct.map(async (d) =>
        Number((await d.query("SELECT count(*) FROM countries WHERE code = 'de'")).rows[0].count),
      ),
    );
    assert.deepEqual(counts, [1, 1, 1]);
  });

  test('what needs several groups: a read explains its global plan, a split INSERT is refused (0A000) as without EXPLAIN', async () => {
    const whole = plan(await app.query('EXPLAIN SELECT * FROM users'));
    assert.ok(
      whole.some((l) => /Foreign Scan/.test(l)),
      whole.join('\n'),
    );
    await assert.rejects(
      app.query(
        "EXPLAIN INSERT INTO users VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e'), (6, 'f')",
      ),
      (e: { code?: string }) => e.code === '0A000',
    );
    await assertPointRoute(plan(await app.query('EXPLAIN SELECT * FROM users WHERE user_id = 5')), 5, /= 5$/);
  });

  test('inside a transaction block: on the transaction’s group, its uncommitted rows seen', async () => {
    const { shard, group } = await expected(2001);
    const pointRoute = (lines: string[]) => {
      assert.equal(lines[1], `  Group: ${group}  Shard: ${shard} (users_${shard})`, lines.join('\n'));
      assert.match(lines[4]!, new RegExp(`on users_${shard}\\b`));
    };
    await app.query('BEGIN');
    try {
      await app.query("INSERT INTO users VALUES (2001, 'in tx')");
      const r = plan(await app.query('EXPLAIN ANALYZE SELECT * FROM users WHERE user_id = 2001'));
      pointRoute(r);
      assert.ok(
        r.some((l) => /actual time=.* rows=1 loops=1/.test(l)),
        r.join('\n'),
      );
      const p = plan(await app.query('EXPLAIN SELECT * FROM users WHERE user_id = $1', [2001]));
      pointRoute(p);
      assert.equal(p[2], '  Reason: users.user_id = $1 (2001)');
    } finally {
      await app.query('ROLLBACK');
    }
    assert.equal((await app.query('SELECT count(*) FROM users WHERE user_id = 2001')).rows[0].count, '0');
    // EXPLAIN as the transaction's first statement places the transaction (the held BEGIN goes first).
    await app.query('BEGIN');
    try {
      pointRoute(plan(await app.query('EXPLAIN SELECT * FROM users WHERE user_id = 2001')));
      await app.query("INSERT INTO users VALUES (2001, 'in tx')");
    } finally {
      await app.query('ROLLBACK');
    }
  });

  test('psql shows the route rows', async () => {
    const { shard, group } = await expected(21);
    const args = ['-h', '127.0.0.1', '-p', String(sc.app.port), '-U', 'app', '-d', 'app', '-X', '-A', '-t'];
    const out = await new Promise<string>((resolve, reject) => {
      execFile(
        bins.psql!,
        [...args, '-c', 'EXPLAIN SELECT * FROM users WHERE user_id = 21'],
        { env: { ...process.env, PGPASSWORD: sc.app.password } },
        (err, stdout, stderr) => (err ? reject(new Error(String(stderr))) : resolve(String(stdout))),
      );
    });
    const lines = out.split('\n');
    assert.equal(lines[0], 'Custom Scan (pgscale router)');
    assert.equal(lines[1], `  Group: ${group}  Shard: ${shard} (users_${shard})`);
    assert.equal(lines[2], '  Reason: users.user_id = 21');
  });

  test('postgres.js (prepared, with a parameter) sees the same route', async () => {
    const sql = postgres({ ...sc.app, max: 1, prepare: true, onnotice: () => {} });
    try {
      for (const key of [21, 22]) {
        const rows = await sql<
          { 'QUERY PLAN': string }[]
        >`EXPLAIN SELECT * FROM users WHERE user_id = ${key}`;
        await assertPointRoute(
          rows.map((r) => r['QUERY PLAN']),
          key,
          new RegExp(`\\$1 \\(${key}\\)`),
        );
      }
    } finally {
      await sql.end();
    }
  });
});
