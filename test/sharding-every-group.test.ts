/**
 * Statements on several groups through `pgscale up` with three groups (one cluster for every
 * case): DDL on a distributed table reaches every group's partitions, a DDL that fails on one
 * group leaves every group unchanged, DROP TABLE takes the table out of the catalog, TRUNCATE
 * empties every group, writes to a reference table reach every copy (a sequence default, which
 * gives each group its own value, is refused once the copies would differ), a multi-row INSERT is split by group with its
 * RETURNING rows and summed tag, a failing part inserts nothing anywhere; the same with Bind
 * parameters (extended protocol); inside a transaction block these are refused with 0A000 and
 * the session goes on. With node-postgres (simple and extended) and psql.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type pg from 'pg';
import postgres from 'postgres';
import { binarySets } from './harness.js';
import { upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';
import type { TestCluster } from './harness.js';

const bins = binarySets()[0]!;

describe('statements on every group through pgscale up (three groups, two-phase commit)', () => {
  let tc: TestCluster;
  let app: pg.Client;
  let appPassword = '';
  let direct: pg.Client[] = [];
  const code = (c: string) => (e: { code?: string }) => e.code === c;

  let sc: ShardedCluster;

  before(async () => {
    sc = await upSharded(bins, { groups: 3, replicas: 0 });
    tc = sc.tc;
    appPassword = sc.app.password;
    app = await sc.connectApp();
    for (let g = 0; g < 3; g++) direct.push(await sc.connectGroup(g));
    await app.query('CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int)');
    await app.query("INSERT INTO items SELECT g, 'item ' || g, g FROM generate_series(1, 60) g");
    await app.query("SELECT create_distributed_table('items', 'id')");
    await app.query('CREATE TABLE tags (code text PRIMARY KEY, label text)');
    await app.query("SELECT create_reference_table('tags')");
  });
  after(async () => {
    await app?.end().catch(() => undefined);
    for (const c of direct) await c.end().catch(() => undefined);
    direct = [];
    await sc?.down();
  });

  /** `sql` on each group directly: the first column of the first row, per group. */
  async function perGroup(sql: string): Promise<unknown[]> {
    return Promise.all(
      direct.map(async (d) => Object.values((await d.query<Record<string, unknown>>(sql)).rows[0] ?? {})[0]),
    );
  }

  /** How many of `table`'s partitions (its shards) are on each group. */
  const partitions = (table: string) =>
    perGroup(`SELECT count(*)::int FROM pg_inherits WHERE inhparent = '${table}'::regclass`);

  function psql(sql: string): Promise<{ code: number; out: string; err: string }> {
    return psqlArgs(['-c', sql]);
  }

  function psqlArgs(commands: string[]): Promise<{ code: number; out: string; err: string }> {
    const args = ['-h', '127.0.0.1', '-p', String(tc.cluster.config.proxy.port), '-U', 'app', '-d', 'app'];
    return new Promise((resolve) => {
      execFile(
        bins.psql!,
        [...args, '-v', 'ON_ERROR_STOP=1', '-X', '-A', '-t', ...commands],
        { env: { ...process.env, PGPASSWORD: appPassword } },
        (err, out, errOut) => resolve({ code: err ? 1 : 0, out: String(out), err: String(errOut) }),
      );
    });
  }

  test('ALTER TABLE and CREATE INDEX reach every group’s partitions; the columns are read again', async () => {
    const r = await app.query('ALTER TABLE items ADD COLUMN note text');
    assert.equal(r.command, 'ALTER');
    const parts = await partitions('items');
    assert.ok(
      parts.every((n) => Number(n) > 0),
      `shards on every group: ${String(parts)}`,
    );
    const withNote = await perGroup(
      `SELECT count(*)::int FROM pg_attribute a JOIN pg_inherits i ON i.inhrelid = a.attrelid
        WHERE i.inhparent = 'items'::regclass AND a.attname = 'note' AND NOT a.attisdropped`,
    );
    assert.deepEqual(withNote, parts, 'every partition of every group has the column');
    await app.query('CREATE INDEX items_name_idx ON items (name)');
    const indexes = await perGroup(
      `SELECT count(*)::int FROM pg_index x JOIN pg_inherits i ON i.inhrelid = x.indrelid
         JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
        WHERE i.inhparent = 'items'::regclass AND a.attname = 'name'`,
    );
    assert.deepEqual(indexes, parts, 'every partition of every group has the index');
    // An INSERT naming no columns routes with the new column order (read again after the DDL).
    await app.query("INSERT INTO items VALUES (1001, 'with note', 1, 'a note')");
    assert.equal((await app.query('SELECT note FROM items WHERE id = 1001')).rows[0].note, 'a note');
    await assert.rejects(app.query('CREATE INDEX CONCURRENTLY ON items (qty)'), code('0A000'));
  });

  test('DROP INDEX drops a distributed table’s index on every group, a local table’s on group 0', async () => {
    await app.query('CREATE INDEX items_qty_idx ON items (qty)');
    const has = () => perGroup("SELECT count(*)::int FROM pg_class WHERE relname = 'items_qty_idx'");
    assert.deepEqual(await has(), [1, 1, 1]);
    assert.equal((await app.query('DROP INDEX items_qty_idx')).command, 'DROP');
    assert.deepEqual(await has(), [0, 0, 0]);
    await app.query('CREATE TABLE local_t (a int)');
    await app.query('CREATE INDEX local_t_a ON local_t (a)');
    await app.query('DROP INDEX local_t_a');
    assert.deepEqual(
      await perGroup("SELECT count(*)::int FROM pg_class WHERE relname = 'local_t_a'"),
      [0, 0, 0],
    );
    await assert.rejects(app.query('DROP INDEX no_such_index'), code('42704'));
  });

  test('a DDL that fails on one group leaves every group unchanged', async () => {
    await app.query('UPDATE items SET qty = 1000 WHERE id = 7');
    await assert.rejects(
      app.query('ALTER TABLE items ADD CONSTRAINT qty_small CHECK (qty < 100)'),
      code('23514'),
    );
    assert.deepEqual(
      await perGroup("SELECT count(*)::int FROM pg_constraint WHERE conname = 'qty_small'"),
      [0, 0, 0],
    );
    // No transaction is left prepared anywhere.
    assert.deepEqual(await perGroup('SELECT count(*)::int FROM pg_prepared_xacts'), [0, 0, 0]);
    await app.query('UPDATE items SET qty = 7 WHERE id = 7');
    await app.query('ALTER TABLE items ADD CONSTRAINT qty_small CHECK (qty < 10000)');
    const constraints = await perGroup("SELECT count(*)::int FROM pg_constraint WHERE conname = 'qty_small'");
    assert.ok(
      constraints.every((n) => Number(n) > 0),
      String(constraints),
    );
    await app.query('ALTER TABLE items DROP CONSTRAINT qty_small');
    assert.deepEqual(
      await perGroup("SELECT count(*)::int FROM pg_constraint WHERE conname = 'qty_small'"),
      [0, 0, 0],
    );
  });

  test('a multi-row INSERT is split by group: each row on its group, RETURNING every row, tag summed', async () => {
    const values = Array.from({ length: 12 }, (_, i) => `(${2001 + i}, 'split', 1)`).join(', ');
    const r = await app.query(`INSERT INTO items (id, name, qty) VALUES ${values} RETURNING id`);
    assert.equal(r.command, 'INSERT');
    assert.equal(r.rowCount, 12);
    assert.deepEqual(
      r.rows.map((x: { id: string }) => Number(x.id)).sort((a, b) => a - b),
      Array.from({ length: 12 }, (_, i) => 2001 + i),
    );
    // PostgreSQL itself refuses a row on a group without its partition: each row is where its hash says.
    const counts = await perGroup("SELECT count(*)::int FROM items WHERE name = 'split'");
    assert.equal(
      counts.reduce((a, b) => Number(a) + Number(b), 0),
      12,
    );
    assert.ok(counts.filter((n) => Number(n) > 0).length >= 2, `rows on several groups: ${String(counts)}`);
    for (let id = 2001; id <= 2012; id++)
      assert.equal((await app.query('SELECT name FROM items WHERE id = $1', [id])).rows[0].name, 'split');
  });

  test('a split INSERT whose part fails on one group inserts nothing anywhere', async () => {
    const values = Array.from({ length: 10 }, (_, i) => `(${3001 + i}, 'dup', 1)`).join(', ');
    await assert.rejects(
      app.query(`INSERT INTO items (id, name, qty) VALUES ${values}, (5, 'dup', 1)`),
      code('23505'),
    );
    assert.deepEqual(await perGroup("SELECT count(*)::int FROM items WHERE name = 'dup'"), [0, 0, 0]);
    assert.deepEqual(await perGroup('SELECT count(*)::int FROM pg_prepared_xacts'), [0, 0, 0]);
  });

  test('writes to a reference table reach every copy; a default that differs between copies is refused', async () => {
    const r = await app.query("INSERT INTO tags VALUES ('a', 'A'), ('b', 'B') RETURNING code");
    assert.equal(r.rowCount, 2, 'the tag counts the rows once, not once per copy');
    assert.deepEqual(
      r.rows.map((x: { code: string }) => x.code),
      ['a', 'b'],
    );
    const u = await app.query("UPDATE tags SET label = 'AA' WHERE code = 'a'");
    assert.equal(u.rowCount, 1);
    assert.deepEqual(await perGroup("SELECT label FROM tags WHERE code = 'a'"), ['AA', 'AA', 'AA']);
    await app.query("DELETE FROM tags WHERE code = 'b'");
    assert.deepEqual(await perGroup('SELECT count(*)::int FROM tags'), [1, 1, 1]);
    // A sequence default: each group takes its own value. With the copies' sequences at the same
    // position the values agree, and the write goes through; once they differ it is refused.
    await app.query('CREATE TABLE notes (id bigserial PRIMARY KEY, body text)');
    await app.query("SELECT create_reference_table('notes')");
    await app.query("INSERT INTO notes (body) VALUES ('x')");
    assert.deepEqual(await perGroup("SELECT id::text FROM notes WHERE body = 'x'"), ['1', '1', '1']);
    await direct[2]!.query("SELECT nextval('notes_id_seq')");
    await assert.rejects(app.query("INSERT INTO notes (body) VALUES ('y')"), code('0A000'));
    assert.deepEqual(await perGroup('SELECT count(*)::int FROM notes'), [1, 1, 1]);
    await app.query("INSERT INTO notes (id, body) VALUES (10, 'explicit')");
    assert.deepEqual(await perGroup('SELECT body FROM notes WHERE id = 10'), [
      'explicit',
      'explicit',
      'explicit',
    ]);
  });

  test('the host runs as the client’s user: a privilege the user lacks fails with 42501 everywhere', async () => {
    // GRANT/REVOKE on a reference table run on every group too.
    await app.query('REVOKE INSERT ON tags FROM app');
    await assert.rejects(app.query("INSERT INTO tags VALUES ('nope', 'N')"), code('42501'));
    assert.deepEqual(await perGroup("SELECT count(*)::int FROM tags WHERE code = 'nope'"), [0, 0, 0]);
    await app.query('GRANT INSERT ON tags TO app');
    await app.query("INSERT INTO tags VALUES ('yes', 'Y')");
    assert.deepEqual(await perGroup("SELECT count(*)::int FROM tags WHERE code = 'yes'"), [1, 1, 1]);
  });

  test('TRUNCATE empties every group; DROP TABLE takes the table out of the catalog', async () => {
    await app.query('CREATE TABLE logs (id bigint, msg text)');
    await app.query("INSERT INTO logs SELECT g, 'm' FROM generate_series(1, 30) g");
    await app.query("SELECT create_distributed_table('logs', 'id')");
    const before = await perGroup('SELECT count(*)::int FROM logs');
    assert.ok(
      before.every((n) => Number(n) > 0),
      String(before),
    );
    assert.equal((await app.query('TRUNCATE logs')).command, 'TRUNCATE');
    assert.deepEqual(await perGroup('SELECT count(*)::int FROM logs'), [0, 0, 0]);
    assert.equal((await app.query('DROP TABLE logs')).command, 'DROP');
    assert.deepEqual(
      await perGroup("SELECT count(*)::int FROM pg_class WHERE relname LIKE 'logs%'"),
      [0, 0, 0],
    );
    await assert.rejects(
      app.query("SELECT get_shard_id_for_distribution_column('logs', 1)"),
      code('42P01'),
      'no longer in the catalog',
    );
    // The name is free again: a new table of that name is local (group 0 only).
    await app.query('CREATE TABLE logs (id int)');
    await app.query('INSERT INTO logs VALUES (1), (2)');
    assert.equal((await app.query('SELECT count(*)::int AS n FROM logs')).rows[0].n, 2);
    assert.deepEqual(await perGroup("SELECT count(*)::int FROM pg_class WHERE relname = 'logs'"), [1, 0, 0]);
  });

  test('inside a transaction block they are refused with 0A000 and the session goes on', async () => {
    await app.query('BEGIN');
    await assert.rejects(app.query('ALTER TABLE items ADD COLUMN z int'), code('0A000'));
    await app.query('ROLLBACK');
    await app.query('BEGIN');
    await app.query('SELECT name FROM items WHERE id = 1');
    await assert.rejects(app.query("INSERT INTO tags VALUES ('t', 'T')"), code('0A000'));
    await app.query('ROLLBACK');
    await app.query('BEGIN');
    await app.query('SELECT name FROM items WHERE id = 1');
    await assert.rejects(app.query('INSERT INTO tags VALUES ($1, $2)', ['t', 'T']), code('0A000'));
    await app.query('ROLLBACK');
    assert.deepEqual(await perGroup("SELECT count(*)::int FROM tags WHERE code = 't'"), [0, 0, 0]);
    assert.equal((await app.query('SELECT name FROM items WHERE id = 1')).rows[0].name, 'item 1');
    assert.deepEqual(await perGroup("SELECT count(*)::int FROM pg_attribute WHERE attname = 'z'"), [0, 0, 0]);
  });

  test('extended protocol (pg with parameters): reference writes and split INSERTs with RETURNING', async () => {
    const ref = await app.query('INSERT INTO tags VALUES ($1, $2) RETURNING label', ['e', 'E']);
    assert.equal(ref.rowCount, 1);
    assert.deepEqual(ref.rows, [{ label: 'E' }]);
    assert.deepEqual(await perGroup("SELECT label FROM tags WHERE code = 'e'"), ['E', 'E', 'E']);
    const split = await app.query(
      "INSERT INTO items (id, name, qty) VALUES ($1, 'ext', $5), ($2, 'ext', $5), ($3, 'ext', $5), ($4, 'ext', $5) RETURNING id, qty",
      [5001, 5002, 5003, 5004, 9],
    );
    assert.equal(split.rowCount, 4);
    assert.deepEqual(
      split.rows.map((r: { id: string; qty: number }) => [Number(r.id), r.qty]).sort((a, b) => a[0]! - b[0]!),
      [
        [5001, 9],
        [5002, 9],
        [5003, 9],
        [5004, 9],
      ],
    );
    const counts = await perGroup("SELECT count(*)::int FROM items WHERE name = 'ext'");
    assert.ok(counts.filter((n) => Number(n) > 0).length >= 2, `rows on several groups: ${String(counts)}`);
    // A failing part (5001 exists) inserts nothing anywhere, and the error is PostgreSQL's.
    await assert.rejects(
      app.query(
        "INSERT INTO items (id, name) VALUES ($1, 'ext2'), ($2, 'ext2'), ($3, 'ext2')",
        [6001, 6002, 5001],
      ),
      code('23505'),
    );
    assert.deepEqual(await perGroup("SELECT count(*)::int FROM items WHERE name = 'ext2'"), [0, 0, 0]);
    // DDL through the extended protocol (no parameters) is answered as PostgreSQL would.
    const ddl = await app.query({ text: 'ALTER TABLE items ADD COLUMN ext_col int', values: [] });
    assert.equal(ddl.command, 'ALTER');
    // A named statement prepared and run in one batch is refused (0A000); the session goes on.
    await assert.rejects(
      app.query({ name: 'ins_tag', text: 'INSERT INTO tags VALUES ($1, $2)', values: ['n', 'N'] }),
      code('0A000'),
    );
    assert.equal((await app.query('SELECT name FROM items WHERE id = $1', [2])).rows[0].name, 'item 2');
  });

  test('postgres.js (prepared: Parse and Describe first, then Bind and Execute): reference write and split INSERT', async () => {
    const sql = postgres({
      host: '127.0.0.1',
      port: tc.cluster.config.proxy.port,
      user: 'app',
      password: appPassword,
      database: 'app',
      max: 1,
      onnotice: () => {},
    });
    try {
      const ref = await sql`INSERT INTO tags VALUES (${'pj'}, ${'PJ'}) RETURNING code`;
      assert.deepEqual([...ref], [{ code: 'pj' }]);
      assert.deepEqual(await perGroup("SELECT label FROM tags WHERE code = 'pj'"), ['PJ', 'PJ', 'PJ']);
      const rows =
        await sql`INSERT INTO items (id, name) VALUES (${7001}, 'pjs'), (${7002}, 'pjs'), (${7003}, 'pjs'), (${7004}, 'pjs') RETURNING id`;
      assert.equal(rows.count, 4);
      assert.deepEqual(
        await perGroup("SELECT count(*)::int FROM items WHERE name = 'pjs'").then((c) =>
          c.reduce((a, b) => Number(a) + Number(b), 0),
        ),
        4,
      );
      // The same prepared statement again: its Bind goes to the host.
      await sql`INSERT INTO tags VALUES (${'pk'}, ${'PK'}) RETURNING code`;
      assert.deepEqual(await perGroup("SELECT count(*)::int FROM tags WHERE code = 'pk'"), [1, 1, 1]);
    } finally {
      await sql.end();
    }
  });

  test('psql: DDL and a split INSERT with RETURNING', { skip: bins.psql ? false : 'no psql' }, async () => {
    const ddl = await psql('ALTER TABLE items ADD COLUMN via_psql int');
    assert.equal(ddl.code, 0, ddl.err);
    assert.match(ddl.out, /ALTER TABLE/);
    const ins = await psql(
      "INSERT INTO items (id, name, qty) VALUES (4001, 'psql', 1), (4002, 'psql', 1), (4003, 'psql', 1), (4004, 'psql', 1), (4005, 'psql', 1) RETURNING id",
    );
    assert.equal(ins.code, 0, ins.err);
    assert.deepEqual(
      ins.out
        .split('\n')
        .filter((l) => /^\d+$/.test(l))
        .map(Number)
        .sort((a, b) => a - b),
      [4001, 4002, 4003, 4004, 4005],
    );
    assert.match(ins.out, /INSERT 0 5/);
    const together = await psql('BEGIN; ALTER TABLE items ADD COLUMN nope int; COMMIT');
    assert.notEqual(together.code, 0);
    assert.match(together.err, /must be sent alone/);
    const inBlock = await psqlArgs([
      '-c',
      'BEGIN',
      '-c',
      'ALTER TABLE items ADD COLUMN nope int',
      '-c',
      'COMMIT',
    ]);
    assert.notEqual(inBlock.code, 0);
    assert.match(inBlock.err, /transaction block/);
    assert.deepEqual(
      await perGroup("SELECT count(*)::int FROM pg_attribute WHERE attname = 'nope'"),
      [0, 0, 0],
    );
  });
});
