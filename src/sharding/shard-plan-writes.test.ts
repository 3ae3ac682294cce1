// Routing of writes (INSERT, UPDATE, DELETE, DDL) and of several statements in one Query; the
// reads are in shard-plan.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { loadParser } from '../sql/pg-parser.js';
import { resolveShards, shardKeyPlan } from './shard-plan.js';
import {
  catalog,
  fakeRemainder,
  kind,
  one,
  ORDERS_FIRST,
  route,
  t,
  USERS_FIRST,
  usersGroup,
} from './shard-plan.test-util.js';

await loadParser();

test('a write to a reference table calling a volatile function is refused (each group would compute its own value)', () => {
  for (const sql of [
    "INSERT INTO countries VALUES (nextval('s'))",
    'UPDATE countries SET seen = now()',
    'UPDATE countries SET seen = CURRENT_TIMESTAMP',
    'INSERT INTO codes SELECT gen_random_uuid()',
  ]) {
    const r = route(sql);
    assert.equal(kind(r), 'error 0A000', sql);
    assert.match(r.kind === 'error' ? r.message : '', /volatile/, sql);
  }
  assert.equal(kind(route("UPDATE countries SET name = lower('X')")), 'all');
});

test('INSERT: one row, many rows on one group, NULL, DEFAULT, expressions, column order', () => {
  assert.deepEqual(route("INSERT INTO users (id, name) VALUES (5, 'a')"), one('1', USERS_FIRST + 1));
  assert.deepEqual(
    route('INSERT INTO users (name, id) VALUES ($1, $2) RETURNING id', [t('a'), t('4')]),
    one('0', USERS_FIRST),
  );
  assert.deepEqual(
    route("INSERT INTO users (id, name) VALUES (1, 'a'), (3, DEFAULT), ($1, 'c')", [t('5')]),
    one('1', USERS_FIRST + 1, USERS_FIRST + 3),
  );
  // No column list: the table's order from columnsOf, or a refusal naming the reason.
  assert.deepEqual(route("INSERT INTO users VALUES (2, 'a')"), one('0', USERS_FIRST + 2));
  const noOrder = route("INSERT INTO orders VALUES (2, 'a')");
  assert.equal(kind(noOrder), 'error 0A000');
  assert.match(noOrder.kind === 'error' ? noOrder.message : '', /needs a column list/);
  const nul = {
    kind: 'error',
    sqlstate: '23502',
    message: 'cannot perform an INSERT with NULL in the partition column',
  };
  assert.deepEqual(route("INSERT INTO users (id, name) VALUES (NULL, 'a')"), nul);
  assert.deepEqual(route("INSERT INTO users (id, name) VALUES ($1, 'a')", [null]), nul);
  assert.deepEqual(route("INSERT INTO users (id, name) VALUES (1, 'a'), ($1, 'b')", [null]), nul);
  assert.deepEqual(route('INSERT INTO orders (user_id, total) SELECT $1, 0 FROM countries', [null]), nul);
  assert.deepEqual(
    route(
      'WITH n AS (INSERT INTO orders (user_id) VALUES ($1) RETURNING 1) INSERT INTO users (id) VALUES (2)',
      [null],
    ),
    nul,
  );
  const noKey = {
    kind: 'error',
    sqlstate: '0A000',
    message: 'cannot perform an INSERT without a partition column value',
  };
  assert.deepEqual(route("INSERT INTO users (name) VALUES ('a')"), noKey);
  assert.deepEqual(route("INSERT INTO users (id, name) VALUES (DEFAULT, 'a')"), noKey);
  assert.deepEqual(route('INSERT INTO users DEFAULT VALUES'), noKey);
  assert.equal(kind(route("INSERT INTO users (id, name) VALUES (1 + 1, 'a')")), 'error 0A000');
  assert.deepEqual(route("INSERT INTO users (id) VALUES ('x')"), {
    kind: 'error',
    sqlstate: '22P02',
    message: 'invalid input syntax for type bigint: "x"',
  });
  // A subquery in a row: its table must land on the same group.
  assert.deepEqual(
    route('INSERT INTO users (id, name) VALUES (1, (SELECT name FROM orders WHERE user_id = 3))'),
    one('1', USERS_FIRST + 1, ORDERS_FIRST + 3),
  );
  assert.equal(
    kind(route('INSERT INTO users (id, name) VALUES (1, (SELECT name FROM orders WHERE user_id = 2))')),
    'multi',
  );
});

test('INSERT with rows on several groups is split, parameters renumbered, RETURNING and ON CONFLICT kept', () => {
  const sql =
    "INSERT INTO users AS u (id, name) VALUES ($1, 'é;a'), (2, $2), ($3, $2) " +
    'ON CONFLICT (id) DO UPDATE SET name = excluded.name WHERE u.name <> $4 RETURNING id, $4::text;';
  const r = route(sql, [t('1'), t('b'), t('3'), t('z')]);
  assert.deepEqual(r, {
    kind: 'split-insert',
    parts: [
      {
        group: '1',
        sql: "INSERT INTO users AS u (id, name) VALUES ($1, 'é;a'), ($2, $3) ON CONFLICT (id) DO UPDATE SET name = excluded.name WHERE u.name <> $4 RETURNING id, $4::text",
        paramIndexes: [0, 2, 1, 3],
        shards: [USERS_FIRST + 1, USERS_FIRST + 3],
      },
      {
        group: '0',
        sql: 'INSERT INTO users AS u (id, name) VALUES (2, $1) ON CONFLICT (id) DO UPDATE SET name = excluded.name WHERE u.name <> $2 RETURNING id, $2::text',
        paramIndexes: [1, 3],
        shards: [USERS_FIRST + 2],
      },
    ],
  });
  // Two statements in one text are not split.
  assert.equal(kind(route('INSERT INTO users (id) VALUES (1), (2); SELECT 1')), 'multi');
  // A row's subquery on another table: not split.
  assert.equal(
    kind(route('INSERT INTO users (id, name) VALUES (1, (SELECT 1 FROM orders WHERE user_id = 1)), (2, 2)')),
    'multi',
  );
});

test('INSERT … SELECT: the target follows a pinned colocated source, or a constant', () => {
  assert.deepEqual(
    route('INSERT INTO orders (user_id, total) SELECT id, 0 FROM users WHERE id = 3'),
    one('1', USERS_FIRST + 3, ORDERS_FIRST + 3),
  );
  assert.deepEqual(
    route('INSERT INTO orders (user_id, total) SELECT $1, count(*) FROM countries', [t('2')]),
    one('0', ORDERS_FIRST + 2),
  );
  assert.equal(kind(route('INSERT INTO orders (user_id, total) SELECT id, 0 FROM users')), 'multi');
  for (const sql of [
    'INSERT INTO orders (user_id, total) SELECT code, 0 FROM countries',
    'INSERT INTO orders SELECT * FROM users WHERE id = 1',
    'INSERT INTO orders (user_id) SELECT id FROM users WHERE id = 1 UNION SELECT 2',
  ])
    assert.equal(kind(route(sql)), 'error 0A000', sql);
});

test('UPDATE and DELETE by key; changing the distribution column', () => {
  assert.deepEqual(route("UPDATE users SET name = 'x' WHERE id = $1", [t('1')]), one('1', USERS_FIRST + 1));
  assert.deepEqual(route('DELETE FROM users WHERE id = 4 RETURNING *'), one('0', USERS_FIRST));
  assert.deepEqual(
    route('DELETE FROM orders o USING users u WHERE o.user_id = u.id AND u.id = 2'),
    one('0', USERS_FIRST + 2, ORDERS_FIRST + 2),
  );
  assert.equal(kind(route("UPDATE users SET name = 'x'")), 'multi');
  assert.equal(kind(route('DELETE FROM users WHERE name = $1', [t('a')])), 'multi');
  assert.deepEqual(route('UPDATE users SET id = id WHERE id = 1'), one('1', USERS_FIRST + 1));
  assert.deepEqual(route('UPDATE users SET id = 5 WHERE id = 1'), one('1', USERS_FIRST + 1));
  assert.deepEqual(
    route('UPDATE users SET id = $2 WHERE id = $1', [t('1'), t('9')]),
    one('1', USERS_FIRST + 1),
  );
  const moved = {
    kind: 'error',
    sqlstate: '0A000',
    message: 'modifying the partition value of rows is not allowed',
  };
  assert.deepEqual(route('UPDATE users SET id = $2 WHERE id = $1', [t('1'), t('3')]), moved);
  assert.deepEqual(route('UPDATE users SET id = id + 1 WHERE id = 1'), moved);
  assert.deepEqual(route('UPDATE users SET id = NULL WHERE id = 1'), moved);
  assert.deepEqual(route('UPDATE users SET (id, name) = (SELECT 1, 2) WHERE id = 1'), moved);
  // ON CONFLICT may only set the key to itself.
  assert.deepEqual(
    route('INSERT INTO users (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET id = excluded.id'),
    one('1', USERS_FIRST + 1),
  );
  assert.deepEqual(route('INSERT INTO users (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET id = 3'), moved);
  assert.deepEqual(
    route('INSERT INTO users (id) VALUES (1) ON CONFLICT DO NOTHING'),
    one('1', USERS_FIRST + 1),
  );
});

test('DDL on catalog tables reaches every group; the distribution column cannot change', () => {
  for (const sql of [
    'ALTER TABLE users ADD COLUMN email text',
    'CREATE INDEX ON users (name)',
    'TRUNCATE users',
    'TRUNCATE countries',
    'DROP TABLE public.users',
    'COMMENT ON TABLE users IS $$x$$',
    'GRANT SELECT ON users TO someone',
    'ALTER TABLE users RENAME COLUMN name TO full_name',
  ])
    assert.equal(kind(route(sql)), 'all', sql);
  const partition = {
    kind: 'error',
    sqlstate: '0A000',
    message: 'cannot execute ALTER TABLE command involving partition column',
  };
  assert.deepEqual(route('ALTER TABLE users DROP COLUMN id'), partition);
  assert.deepEqual(route('ALTER TABLE users ALTER COLUMN id TYPE numeric'), partition);
  assert.deepEqual(route('ALTER TABLE users RENAME COLUMN id TO uid'), partition);
  // Run in a transaction of its own on every group: never beside other statements (BEGIN, COMMIT).
  assert.equal(kind(route('BEGIN; ALTER TABLE users ADD COLUMN x int; COMMIT')), 'error 0A000');
  assert.equal(
    kind(route('ALTER TABLE users ADD COLUMN x int; ALTER TABLE users ADD COLUMN y int')),
    'error 0A000',
  );
  // An index name says nothing of its table: the host finds it (every group or group 0).
  assert.deepEqual(route('DROP INDEX some_index'), { kind: 'all', reason: 'DROP INDEX', dropIndex: true });
  assert.equal(kind(route('DROP INDEX CONCURRENTLY some_index')), 'local');
  // The catalog knows tables by name: renaming one is refused (its columns may be renamed).
  assert.equal(kind(route('ALTER TABLE users RENAME TO people')), 'error 0A000');
  assert.equal(kind(route('ALTER TABLE countries RENAME TO lands')), 'error 0A000');
  for (const sql of [
    'DROP TABLE users, accounts',
    'CREATE VIEW v AS SELECT * FROM users',
    'CREATE TABLE copy AS SELECT * FROM users',
    'VACUUM users',
    'CREATE INDEX CONCURRENTLY ON users (name)',
    'PREPARE p AS SELECT * FROM users WHERE id = $1',
  ])
    assert.equal(kind(route(sql)), 'error 0A000', sql);
  assert.deepEqual(route('CREATE TABLE accounts (id int)'), { kind: 'local' });
  assert.deepEqual(route('CREATE TABLE x PARTITION OF users FOR VALUES WITH (MODULUS 4, REMAINDER 0)'), {
    kind: 'error',
    sqlstate: '0A000',
    message: 'CREATE TABLE on distributed table "users" is not supported yet',
  });
  assert.deepEqual(route('LOCK TABLE countries'), {
    kind: 'error',
    sqlstate: '0A000',
    message: 'LOCK on reference table "countries" is not supported yet',
  });
  assert.deepEqual(route('CREATE VIEW v AS SELECT * FROM countries'), { kind: 'local' });
  const copyUsers = route('COPY users (name, id) FROM STDIN (FORMAT csv, FORCE_NULL (id))');
  assert.equal(kind(copyUsers), 'copy-in');
  if (copyUsers.kind === 'copy-in') {
    assert.deepEqual(copyUsers.columns, ['name', 'id']);
    assert.equal(copyUsers.table.column, 'id');
    assert.equal(copyUsers.options.format, 'csv');
    assert.deepEqual(copyUsers.options.forceNull, ['id']);
  }
  const copyCountries = route('COPY countries FROM STDIN');
  assert.equal(kind(copyCountries), 'copy-in');
  assert.equal(copyCountries.kind === 'copy-in' ? copyCountries.columns : 'x', null);
  assert.equal(kind(route('COPY users TO STDOUT')), 'multi');
  assert.equal(kind(route("COPY users FROM '/tmp/x'")), 'error 0A000');
  assert.equal(kind(route("COPY users FROM STDIN (ENCODING 'LATIN1')")), 'error 0A000');
  assert.deepEqual(route('COPY countries TO STDOUT'), { kind: 'reference-read' });
  assert.deepEqual(route('COPY (SELECT * FROM users WHERE id = 2) TO STDOUT'), one('0', USERS_FIRST + 2));
});

test('a DO block naming a catalog table is refused (it would run on group 0 only)', () => {
  const r = route("DO $$ BEGIN UPDATE users SET name = 'x'; END $$");
  assert.equal(kind(r), 'error 0A000');
  assert.match(r.kind === 'error' ? r.message : '', /DO block/);
  assert.deepEqual(
    route('DO $$ BEGIN PERFORM 1; END $$; SELECT * FROM users WHERE id = 2'),
    one('0', USERS_FIRST + 2),
  );
});

test('several statements in one Query: one group, or refused', () => {
  assert.deepEqual(
    route('SELECT * FROM users WHERE id = 1; SELECT * FROM orders WHERE user_id = 3'),
    one('1', USERS_FIRST + 1, ORDERS_FIRST + 3),
  );
  assert.deepEqual(route('SELECT 1; SELECT * FROM users WHERE id = 2'), one('0', USERS_FIRST + 2));
  assert.deepEqual(
    route('SELECT * FROM countries; SELECT * FROM users WHERE id = 3'),
    one('1', USERS_FIRST + 3),
  );
  assert.equal(kind(route('SELECT 1; SELECT * FROM users WHERE id = 3')), 'multi');
  assert.equal(kind(route('SELECT * FROM users WHERE id = 1; SELECT * FROM users WHERE id = 2')), 'multi');
  // A statement on every group runs in a transaction of its own there: sent alone only.
  assert.equal(kind(route("TRUNCATE countries; INSERT INTO countries VALUES ('x')")), 'error 0A000');
  assert.equal(kind(route('TRUNCATE countries; INSERT INTO users (id) VALUES (1)')), 'error 0A000');
  // Transaction control and settings run wherever the other statements run.
  assert.deepEqual(
    route("BEGIN; UPDATE users SET name = 'x' WHERE id = 1; COMMIT"),
    one('1', USERS_FIRST + 1),
  );
  assert.deepEqual(
    route("SET statement_timeout = '1s'; SHOW work_mem; SELECT * FROM users WHERE id = 3"),
    one('1', USERS_FIRST + 3),
  );
  assert.equal(kind(route('BEGIN; TRUNCATE users; COMMIT')), 'error 0A000');
  assert.deepEqual(
    route('BEGIN; SELECT * FROM accounts, users; COMMIT'),
    route('SELECT * FROM accounts, users'),
  );
});

test('property: a split INSERT gives each group exactly its rows, with their own parameters', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: -1000, max: 1000 }), { minLength: 1, maxLength: 8 }), (keys) => {
      const sql = `INSERT INTO users (id, name) VALUES ${keys.map((_, i) => `($${2 * i + 1}, $${2 * i + 2})`).join(', ')}`;
      const params = keys.flatMap((k, i) => [t(String(k)), t(`n${i}`)]);
      const r = resolveShards(shardKeyPlan(sql, catalog), params, fakeRemainder);
      const groups = new Set(keys.map((k) => usersGroup(BigInt(k))));
      if (groups.size === 1) {
        assert.equal(r.kind === 'one' && r.group, [...groups][0]);
        return;
      }
      assert.equal(r.kind, 'split-insert');
      if (r.kind !== 'split-insert') return;
      const seen: string[] = [];
      for (const part of r.parts) {
        const values = part.paramIndexes.map((i) => (params[i] as { text: string }).text);
        for (let j = 0; j < values.length; j += 2) {
          assert.equal(usersGroup(BigInt(values[j]!)), part.group);
          seen.push(values[j + 1]!);
        }
        const rows = (part.sql.match(/\(\$\d+, \$\d+\)/g) ?? []).length;
        assert.equal(rows * 2, part.paramIndexes.length);
      }
      assert.deepEqual(seen.sort(), keys.map((_, i) => `n${i}`).sort());
    }),
    { numRuns: 200 },
  );
});
