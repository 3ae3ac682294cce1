import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { loadParser } from '../sql/pg-parser.js';
import { sqlishText } from '../sql/arbitraries.test-util.js';
import { resolveShards, shardKeyPlan, usesParams } from './shard-plan.js';
import { parseArrayBinary, parseArrayText } from './key-source.js';
import {
  BIG_FIRST,
  catalog,
  columns,
  EVENTS_FIRST,
  emptyCatalog,
  fakeRemainder,
  kind,
  one,
  ORDERS_FIRST,
  route,
  t,
  USERS_FIRST,
  usersGroup,
} from './shard-plan.test-util.js';
import type { ColumnValue } from './types.js';

await loadParser();

test('no catalog table: local, without parsing when the catalog is empty or the text names none', () => {
  const empty = shardKeyPlan('SELECT * FROM users WHERE id = 1', emptyCatalog);
  assert.deepEqual(resolveShards(empty, [], fakeRemainder), { kind: 'local' });
  // Not even valid SQL: the pre-check answers before the parser is asked.
  assert.equal(shardKeyPlan('SELEKT garbage ((', catalog).kind, 'fixed');
  assert.deepEqual(route('SELEKT garbage (('), { kind: 'local' });
  assert.deepEqual(route('SELECT now()'), { kind: 'local' });
  assert.deepEqual(route('SELECT * FROM accounts WHERE id = 1'), { kind: 'local' });
  // Named like a catalog table but in another schema, or a CTE hiding it: local.
  assert.deepEqual(route('SELECT * FROM other.users WHERE id = 1'), { kind: 'local' });
  assert.deepEqual(route('WITH users AS (SELECT 1 AS id) SELECT * FROM users'), { kind: 'local' });
  assert.deepEqual(route('SELECT * FROM pg_catalog.pg_class'), { kind: 'local' });
  // A syntax error naming a table goes to group 0, which reports it.
  assert.deepEqual(route('SELECT * FROM users WHERE'), { kind: 'local' });
});

test('point reads by constant and by parameter, text and binary', () => {
  assert.deepEqual(route('SELECT * FROM users WHERE id = 5'), one('1', USERS_FIRST + 1));
  assert.deepEqual(route('SELECT * FROM users WHERE 6 = id'), one('0', USERS_FIRST + 2));
  assert.deepEqual(
    route('SELECT * FROM public.users u WHERE u.id = $1', [t('7')]),
    one('1', USERS_FIRST + 3),
  );
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(6n);
  assert.deepEqual(
    route('SELECT name FROM users WHERE id = $1 AND name <> $2', [{ format: 'binary', bytes: b }, t('x')]),
    one('0', USERS_FIRST + 2),
  );
  assert.deepEqual(route("SELECT * FROM users WHERE id = '9'::bigint"), one('1', USERS_FIRST + 1));
  assert.deepEqual(route('SELECT * FROM users WHERE id = $1::int4', [t('4')]), one('0', USERS_FIRST + 0));
  assert.deepEqual(route('SELECT * FROM users WHERE id = -3'), one('1', USERS_FIRST + 1));
  assert.deepEqual(route("SELECT * FROM events WHERE tenant = 'a'"), one('0', EVENTS_FIRST + (97 % 4)));
  assert.deepEqual(route("SELECT * FROM events WHERE tenant = 'c'"), one('1', EVENTS_FIRST + (99 % 4)));
  // The same plan, other parameters.
  const plan = shardKeyPlan('SELECT * FROM users WHERE id = $1', catalog);
  assert.deepEqual(resolveShards(plan, [t('2')], fakeRemainder), one('0', USERS_FIRST + 2));
  assert.deepEqual(resolveShards(plan, [t('3')], fakeRemainder), one('1', USERS_FIRST + 3));
});

test('quoted identifiers and schemas', () => {
  assert.deepEqual(route('SELECT * FROM "Sales"."Big Table" WHERE "Id" = 2'), one('0', BIG_FIRST + 2));
  assert.deepEqual(
    route('SELECT * FROM "Sales"."Big Table" b WHERE b."Id" = $1', [t('1')]),
    one('1', BIG_FIRST + 1),
  );
  // Unquoted names fold to lower case: sales."big table" is another (local) table.
  assert.deepEqual(route('SELECT * FROM Sales."Big Table" WHERE "Id" = 2'), { kind: 'local' });
  // "ID" is not the distribution column "Id": no pin.
  assert.equal(kind(route('SELECT * FROM "Sales"."Big Table" WHERE "ID" = 2')), 'multi');
  assert.deepEqual(route('SELECT * FROM "USERS" WHERE id = 1'), { kind: 'local' });
});

test('the text pre-check with many tables, and names that are not plain words', async () => {
  const { mayNameCatalogTable } = await import('./shard-plan.js');
  const many = new Map(catalog.tables);
  for (let i = 0; i < 200; i++) {
    many.set(`public.t${i}`, {
      ...catalog.tables.get('public.users')!,
      rel: { schema: 'public', name: `t${i}` },
    });
  }
  many.set('public.we"ird', {
    ...catalog.tables.get('public.users')!,
    rel: { schema: 'public', name: 'we"ird' },
  });
  const big = { ...catalog, tables: many };
  assert.equal(mayNameCatalogTable('SELECT * FROM accounts WHERE x = 1', big), true); // we"ird: always maybe
  many.delete('public.we"ird');
  const big2 = { ...catalog, tables: many };
  assert.equal(mayNameCatalogTable('SELECT * FROM accounts WHERE x = 1', big2), false);
  assert.equal(mayNameCatalogTable('SELECT * FROM superusers', big2), false);
  assert.equal(mayNameCatalogTable('SELECT * FROM T17', big2), true);
  assert.equal(mayNameCatalogTable('SELECT * FROM public.USERS', big2), true);
  assert.equal(mayNameCatalogTable('SELECT * FROM "Sales"."Big Table"', big2), true);
  assert.equal(mayNameCatalogTable('SELECT * FROM "Sales"."Big  Table"', big2), false);
  assert.equal(mayNameCatalogTable('SELECT * FROM x WHERE y = 1', catalog), false);
});

test('a name written with Unicode escapes is still looked up (the text pre-check does not skip it)', () => {
  assert.deepEqual(route('SELECT * FROM U&"\\0075sers" WHERE id = 5'), one('1', USERS_FIRST + 1));
  assert.deepEqual(
    route('SELECT * FROM u&"!0075sers" UESCAPE \'!\' WHERE id = 5'),
    one('1', USERS_FIRST + 1),
  );
});

test('IN lists and = ANY arrays: one group when every value lands on it', () => {
  assert.deepEqual(
    route('SELECT * FROM users WHERE id IN (1, 3)'),
    one('1', USERS_FIRST + 1, USERS_FIRST + 3),
  );
  assert.deepEqual(
    route('SELECT * FROM users WHERE id IN ($1, $2, NULL)', [t('2'), t('6')]),
    one('0', USERS_FIRST + 2),
  );
  const multi = route('SELECT * FROM users WHERE id IN (1, 2)');
  assert.equal(multi.kind, 'multi');
  assert.deepEqual(multi.kind === 'multi' && [...multi.groups].sort(), ['0', '1']);
  assert.deepEqual(
    route('SELECT * FROM users WHERE id = ANY($1)', [t('{1,5,"9"}')]),
    one('1', USERS_FIRST + 1),
  );
  assert.equal(kind(route('SELECT * FROM users WHERE id = ANY($1)', [t('{1,2}')])), 'multi');
  assert.deepEqual(
    route('SELECT * FROM users WHERE id = ANY($1::bigint[])', [t('{4, NULL}')]),
    one('0', USERS_FIRST),
  );
  assert.deepEqual(route("SELECT * FROM users WHERE id = ANY('{2,6}'::int8[])"), one('0', USERS_FIRST + 2));
  assert.deepEqual(
    route('SELECT * FROM users WHERE id = ANY(ARRAY[1, $1])', [t('5')]),
    one('1', USERS_FIRST + 1),
  );
  const e = route('SELECT * FROM users WHERE id = ANY($1)', [t('{{1,2},{3,4}}')]);
  assert.deepEqual(e, {
    kind: 'error',
    sqlstate: '22P02',
    message: 'malformed array literal: "{{1,2},{3,4}}"',
  });
  // Binary int8[] {3, 7}
  const bin = Buffer.alloc(20 + 2 * 12);
  bin.writeInt32BE(1, 0);
  bin.writeInt32BE(0, 4);
  bin.writeInt32BE(20, 8);
  bin.writeInt32BE(2, 12);
  bin.writeInt32BE(1, 16);
  bin.writeInt32BE(8, 20);
  bin.writeBigInt64BE(3n, 24);
  bin.writeInt32BE(8, 32);
  bin.writeBigInt64BE(7n, 36);
  assert.deepEqual(
    route('SELECT * FROM users WHERE id = ANY($1)', [{ format: 'binary', bytes: bin }]),
    one('1', USERS_FIRST + 3),
  );
  // NULL array matches nothing: any group.
  assert.equal(kind(route('SELECT * FROM users WHERE id = ANY($1)', [null])), 'one');
});

test('array text and binary parsing', () => {
  assert.deepEqual(parseArrayText('{}'), []);
  assert.deepEqual(parseArrayText(' { a , "b c" ,NULL,"NULL", d\\,e } '), ['a', 'b c', null, 'NULL', 'd,e']);
  assert.deepEqual(parseArrayText('[0:1]={1,2}'), ['1', '2']);
  for (const bad of ['', '1,2', '{1,2', '{{1}}', '{1,}', '{"a}', '{1} x'])
    assert.equal(parseArrayText(bad), null, bad);
  assert.equal(parseArrayBinary(Buffer.alloc(3)), null);
  const empty = Buffer.alloc(12);
  assert.deepEqual(parseArrayBinary(empty), []);
});

test('what is not a pin: OR, NOT, other operators, casts to another type family, outer join ON pins', () => {
  for (const sql of [
    'SELECT * FROM users',
    'SELECT count(*) FROM users',
    'SELECT * FROM users WHERE id = 1 OR id = 2',
    'SELECT * FROM users WHERE NOT (id = 1)',
    'SELECT * FROM users WHERE id > 1',
    'SELECT * FROM users WHERE id = 5::numeric',
    'SELECT * FROM users WHERE id = 1.5',
    'SELECT * FROM users WHERE id = abs(-1)',
    'SELECT * FROM users WHERE id IN (SELECT user_id FROM orders WHERE user_id = 1)',
    "SELECT * FROM events WHERE tenant = 'a '::bpchar",
    'SELECT * FROM users u LEFT JOIN orders o ON o.user_id = u.id AND o.user_id = 1',
    'SELECT * FROM users u LEFT JOIN (orders o JOIN users x ON x.id = o.user_id AND x.id = 1) ON o.user_id = u.id',
    // An outer table compared with a constant inside a subquery does not limit the outer rows.
    'SELECT * FROM users u WHERE NOT EXISTS (SELECT 1 FROM countries c WHERE u.id = 1)',
  ]) {
    const r = route(sql);
    assert.equal(r.kind, 'multi', sql);
    assert.match(r.kind === 'multi' ? r.reason : '', /not pinned to one shard/, sql);
  }
});

test('colocated joins on the distribution column carry the pin', () => {
  const both = one('1', USERS_FIRST + 1, ORDERS_FIRST + 1);
  assert.deepEqual(
    route('SELECT * FROM users u JOIN orders o ON u.id = o.user_id WHERE u.id = $1', [t('1')]),
    both,
  );
  assert.deepEqual(route('SELECT * FROM users u, orders o WHERE o.user_id = u.id AND o.user_id = 1'), both);
  assert.deepEqual(
    route('SELECT * FROM users u LEFT JOIN orders o ON u.id = o.user_id WHERE u.id = 1'),
    both,
  );
  assert.deepEqual(
    route('SELECT * FROM users JOIN orders ON users.id = orders.user_id AND users.id = 1'),
    both,
  );
  assert.equal(kind(route('SELECT * FROM users u JOIN orders o ON u.id = o.user_id')), 'multi');
  // Joined on another column: orders is not pinned.
  assert.equal(kind(route('SELECT * FROM users u JOIN orders o ON u.id = o.id WHERE u.id = 1')), 'multi');
  // Not colocated, joined on the distribution columns, no pin: refused by name.
  const r = route('SELECT * FROM users u JOIN "Sales"."Big Table" b ON u.id = b."Id"');
  assert.equal(kind(r), 'error 0A000');
  assert.match(r.kind === 'error' ? r.message : '', /not colocated/);
  // Pinned: each colocation hashes the value; here both land on group 1.
  assert.deepEqual(
    route('SELECT * FROM users u JOIN "Sales"."Big Table" b ON u.id = b."Id" WHERE u.id = 1'),
    one('1', USERS_FIRST + 1, BIG_FIRST + 1),
  );
  assert.equal(
    kind(route('SELECT * FROM users u JOIN "Sales"."Big Table" b ON u.id = b."Id" WHERE u.id = 3')),
    'multi',
  );
  // Two tables each pinned on its own, both on group 0.
  assert.deepEqual(route("SELECT * FROM users, events WHERE users.id = 2 AND events.tenant = 'c'"), {
    kind: 'multi',
    groups: ['0', '1'],
    reason: "the statement's distribution column values belong to shards on several groups",
  });
  assert.deepEqual(
    route("SELECT * FROM users, events WHERE users.id = 2 AND events.tenant = 'a'"),
    one('0', USERS_FIRST + 2, EVENTS_FIRST + (97 % 4)),
  );
});

test('subqueries and CTEs: pinned inside, correlated, or unpinned (multi)', () => {
  assert.deepEqual(
    route('SELECT * FROM users u WHERE u.id = 1 AND EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)'),
    one('1', USERS_FIRST + 1, ORDERS_FIRST + 1),
  );
  // The inner pin does not limit the outer table.
  assert.equal(
    kind(
      route(
        'SELECT * FROM users u WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.user_id = 1)',
      ),
    ),
    'multi',
  );
  assert.deepEqual(
    route('SELECT *, (SELECT count(*) FROM orders WHERE user_id = 3) FROM users WHERE id = 1'),
    one('1', USERS_FIRST + 1, ORDERS_FIRST + 3),
  );
  assert.deepEqual(
    route('WITH x AS (SELECT * FROM users WHERE id = $1) SELECT * FROM x', [t('2')]),
    one('0', USERS_FIRST + 2),
  );
  assert.equal(kind(route('WITH x AS (SELECT * FROM users) SELECT * FROM x WHERE x.id = 1')), 'multi');
  assert.equal(kind(route('SELECT * FROM countries WHERE code IN (SELECT name FROM users)')), 'multi');
  assert.equal(kind(route('SELECT * FROM (SELECT * FROM users) s WHERE s.id = 1')), 'multi');
  assert.deepEqual(route('SELECT * FROM (SELECT * FROM users WHERE id = 4) s'), one('0', USERS_FIRST));
  assert.equal(kind(route('SELECT id FROM users WHERE id = 1 UNION SELECT id FROM users')), 'multi');
  assert.deepEqual(
    route('SELECT id FROM users WHERE id = 1 UNION ALL SELECT user_id FROM orders WHERE user_id = 3'),
    one('1', USERS_FIRST + 1, ORDERS_FIRST + 3),
  );
  // A CTE named like a table hides it only after its own definition (non-recursive WITH).
  assert.equal(
    kind(route('WITH a AS (SELECT * FROM users), users AS (SELECT 1 AS id) SELECT * FROM a, users')),
    'multi',
  );
  assert.deepEqual(route('WITH users AS (SELECT 1 AS id) SELECT * FROM users WHERE id = 2'), {
    kind: 'local',
  });
  // A data-modifying CTE.
  assert.deepEqual(
    route('WITH d AS (DELETE FROM orders WHERE user_id = 5 RETURNING *) SELECT * FROM d'),
    one('1', ORDERS_FIRST + 1),
  );
  assert.deepEqual(route('EXPLAIN SELECT * FROM users WHERE id = 5'), one('1', USERS_FIRST + 1));
});

test('IN (subquery) on a colocated distribution column: the subquery follows the outer pin', () => {
  const both = one('1', USERS_FIRST + 1, ORDERS_FIRST + 1);
  assert.deepEqual(
    route('SELECT * FROM users u WHERE u.id = 1 AND u.id IN (SELECT o.user_id FROM orders o)'),
    both,
  );
  assert.deepEqual(
    route('SELECT * FROM users WHERE id = $1 AND id = ANY (SELECT user_id FROM orders)', [t('1')]),
    both,
  );
  assert.deepEqual(route('DELETE FROM orders WHERE user_id = 1 AND user_id IN (SELECT id FROM users)'), both);
  for (const sql of [
    'SELECT * FROM users u WHERE u.id = 1 AND u.id NOT IN (SELECT o.user_id FROM orders o)',
    'SELECT * FROM users u WHERE u.id = 1 AND u.id IN (SELECT o.total FROM orders o)',
    'SELECT * FROM users u WHERE u.id IN (SELECT o.user_id FROM orders o WHERE o.user_id = 3)',
    'SELECT * FROM users u WHERE u.id = 1 AND u.id IN (SELECT o.user_id FROM orders o UNION SELECT 1)',
    'SELECT * FROM users u WHERE u.id = 1 OR u.id IN (SELECT o.user_id FROM orders o)',
  ])
    assert.equal(kind(route(sql)), 'multi', sql);
});

test("DDL refusals and reasons name the statement's own table first", () => {
  assert.deepEqual(route('ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users (id)'), {
    kind: 'all',
    reason: 'DDL on distributed table "orders"',
  });
  assert.deepEqual(route('TRUNCATE users, orders'), {
    kind: 'all',
    reason: 'DDL on distributed table "users"',
  });
});

test('reference and local tables', () => {
  assert.deepEqual(route('SELECT * FROM countries'), { kind: 'reference-read' });
  assert.deepEqual(route('SELECT * FROM countries c JOIN codes USING (code)'), { kind: 'reference-read' });
  assert.deepEqual(route('SELECT * FROM countries, pg_class'), { kind: 'reference-read' });
  assert.deepEqual(
    route('SELECT * FROM users u JOIN countries c ON c.code = u.country WHERE u.id = 3'),
    one('1', USERS_FIRST + 3),
  );
  // Built-in functions keep a reference read anywhere; a sequence or a user function may read
  // what only group 0 has, so the read goes there.
  assert.deepEqual(route('SELECT count(*), lower(max(name)) FROM countries'), { kind: 'reference-read' });
  assert.deepEqual(route("SELECT nextval('s'), name FROM countries"), { kind: 'local' });
  assert.deepEqual(route('SELECT my_lookup(code) FROM countries'), { kind: 'local' });
  assert.deepEqual(route('SELECT * FROM countries JOIN accounts ON true'), { kind: 'local' });
  assert.deepEqual(route('INSERT INTO accounts SELECT * FROM countries'), { kind: 'local' });
  assert.deepEqual(route("INSERT INTO countries VALUES ('fr')"), {
    kind: 'all',
    reason: 'write to reference table "countries"',
    written: [{ schema: 'public', name: 'countries' }],
  });
  assert.deepEqual(route("UPDATE codes SET x = 1 WHERE code = 'fr'"), {
    kind: 'all',
    reason: 'write to reference table "codes"',
    written: [{ schema: 'public', name: 'codes' }],
  });
  for (const sql of [
    'SELECT * FROM users JOIN accounts ON true WHERE users.id = 1',
    'INSERT INTO accounts SELECT * FROM users WHERE id = 1',
    'SELECT * FROM users WHERE id = 1 AND EXISTS (SELECT 1 FROM accounts)',
  ]) {
    const r = route(sql);
    assert.equal(kind(r), 'error 0A000', sql);
    assert.match(
      r.kind === 'error' ? r.message : '',
      /local table "accounts" cannot be used with distributed table "users"/,
    );
  }
  const w = route('INSERT INTO countries SELECT * FROM users WHERE id = 1');
  assert.equal(kind(w), 'error 0A000');
  assert.match(w.kind === 'error' ? w.message : '', /reference table "countries" reaches every group/);
  assert.equal(kind(route('INSERT INTO countries SELECT * FROM accounts')), 'error 0A000');
});

test("the hash's own error (SQLSTATE and PostgreSQL's message) reaches the client", () => {
  const badBinary: typeof fakeRemainder = () => {
    throw Object.assign(new Error('incorrect binary data format for type bigint: 3 bytes'), {
      sqlstate: '22P03',
    });
  };
  const plan = shardKeyPlan('SELECT * FROM users WHERE id = $1', catalog);
  assert.deepEqual(resolveShards(plan, [t('1')], badBinary), {
    kind: 'error',
    sqlstate: '22P03',
    message: 'incorrect binary data format for type bigint: 3 bytes',
  });
  // Out of range for an integer column: routed (bigint's hash, else shard 0); the group that gets
  // it answers as PostgreSQL does (no row for a comparison, its own 22003 for a stored value).
  const outOfRange: typeof fakeRemainder = () => {
    throw Object.assign(new Error('value "99999999999999999999" is out of range for type bigint'), {
      sqlstate: '22003',
    });
  };
  assert.equal(resolveShards(plan, [t('99999999999999999999')], outOfRange).kind, 'one');
});

test('errors of values and parameters', () => {
  assert.deepEqual(route('SELECT * FROM users WHERE id = $1', [t('abc')]), {
    kind: 'error',
    sqlstate: '22P02',
    message: 'invalid input syntax for type bigint: "abc"',
  });
  assert.deepEqual(route('SELECT * FROM users WHERE id = $2', [t('1')]), {
    kind: 'error',
    sqlstate: '08P01',
    message: 'there is no parameter $2',
  });
  // NULL compared with = matches no row: any group answers (group 0 here).
  assert.deepEqual(route('SELECT * FROM users WHERE id = $1', [null]), one('0'));
  assert.deepEqual(route('SELECT * FROM users WHERE id = NULL'), one('0'));
  assert.equal(
    kind(route('MERGE INTO users u USING countries c ON u.id = c.id WHEN MATCHED THEN DELETE')),
    'error 0A000',
  );
});

test('usesParams: whether a plan needs the Bind values (else it resolves without them)', () => {
  assert.equal(usesParams(shardKeyPlan('SELECT * FROM users WHERE id = $1', catalog)), true);
  assert.equal(usesParams(shardKeyPlan('SELECT * FROM users WHERE id = ANY($1)', catalog)), true);
  assert.equal(usesParams(shardKeyPlan('UPDATE users SET id = $2 WHERE id = 1', catalog)), true);
  assert.equal(usesParams(shardKeyPlan('SELECT * FROM users WHERE id = 1 AND name = $1', catalog)), false);
  assert.equal(
    usesParams(shardKeyPlan('SELECT * FROM users WHERE id = 1; SELECT * FROM users WHERE id = $1', catalog)),
    true,
  );
  assert.equal(usesParams(shardKeyPlan('SELECT * FROM countries WHERE code = $1', catalog)), false);
});

test('a parse done by the caller, the writes flag, cursors', async () => {
  const { parseStatements } = await import('../sql/pg-parser.js');
  const sql = 'UPDATE users SET name = $2 WHERE id = $1';
  const parsed = parseStatements(sql);
  assert.equal(parsed.kind, 'parsed');
  const plan = shardKeyPlan({ sql, stmts: parsed.kind === 'parsed' ? parsed.stmts : [] }, catalog);
  assert.deepEqual(plan, shardKeyPlan(sql, catalog));
  assert.equal(plan.writes, true);
  assert.equal(shardKeyPlan('SELECT * FROM users WHERE id = 1', catalog).writes, false);
  assert.equal(
    shardKeyPlan('WITH d AS (DELETE FROM users WHERE id = 1 RETURNING 1) SELECT 1', catalog).writes,
    true,
  );
  assert.deepEqual(route('DECLARE c CURSOR FOR SELECT * FROM users WHERE id = 3'), one('1', USERS_FIRST + 3));
  assert.equal(kind(route('DECLARE c CURSOR FOR SELECT * FROM users')), 'multi');
});

test('property: single-row INSERTs and point SELECTs land on the group of the key', () => {
  const insert = shardKeyPlan('INSERT INTO users (id, name) VALUES ($1, $2)', catalog);
  const select = shardKeyPlan('SELECT * FROM users WHERE id = $1', catalog);
  fc.assert(
    fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.boolean(), (key, binary) => {
      const group = usersGroup(key);
      const bytes = Buffer.alloc(8);
      bytes.writeBigInt64BE(key);
      const v: ColumnValue = binary ? { format: 'binary', bytes } : t(String(key));
      for (const plan of [insert, select]) {
        const r = resolveShards(plan, [v, t('n')], fakeRemainder);
        assert.equal(r.kind === 'one' && r.group, group);
      }
      // The same with the key written into the text.
      const literal = route(`SELECT * FROM users WHERE id = ${key}`);
      assert.equal(literal.kind === 'one' && literal.group, group);
      const ins = route(`INSERT INTO users (name, id) VALUES ('n', ${key})`);
      assert.equal(ins.kind === 'one' && ins.group, group);
    }),
    { numRuns: 300 },
  );
});

test('property: any text, any parameters: a route, never an exception', () => {
  const word = fc.constantFrom(
    'SELECT * FROM ',
    'users',
    'orders o',
    'countries',
    'accounts',
    ' WHERE ',
    'id = ',
    'o.user_id = users.id',
    ' AND ',
    ' OR ',
    '$1',
    '$2',
    '5',
    'NULL',
    "'{1,2}'",
    'ANY(',
    ')',
    '(',
    ', ',
    'INSERT INTO users (id, name) VALUES ',
    '($1, $2)',
    'UPDATE users SET id = ',
    'DELETE FROM users',
    ' JOIN ',
    ' ON ',
    ' RETURNING *',
    ';',
    'WITH x AS (',
    'IN (',
    ' LEFT JOIN ',
    'EXISTS (',
  );
  const text = fc.oneof(
    fc.array(word, { maxLength: 16 }).map((w) => w.join('')),
    sqlishText,
  );
  const param = fc.oneof(
    fc.constant(null),
    fc.string({ maxLength: 8 }).map((s) => t(s)),
    fc.uint8Array({ maxLength: 12 }).map((b) => ({ format: 'binary', bytes: Buffer.from(b) }) as const),
  );
  fc.assert(
    fc.property(text, fc.array(param, { maxLength: 3 }), (sql, params) => {
      const r = resolveShards(shardKeyPlan(sql, catalog, columns), params, fakeRemainder);
      assert.ok(['local', 'one', 'reference-read', 'all', 'split-insert', 'multi', 'error'].includes(r.kind));
      if (r.kind === 'one') assert.ok(catalog.groups.includes(r.group));
      if (r.kind === 'error') assert.match(r.sqlstate, /^[0-9A-Z]{5}$/);
    }),
    { numRuns: 1000 },
  );
});

test('ONLY on a distributed table is refused: on the groups it names the partitioned parent, which holds no rows', () => {
  for (const sql of ['SELECT count(*) FROM ONLY users WHERE id = 5', 'DELETE FROM ONLY users WHERE id = 5']) {
    const r = route(sql);
    assert.equal(kind(r), 'error 0A000', sql);
  }
  assert.deepEqual(route('SELECT * FROM users WHERE id = 5'), one('1', USERS_FIRST + 1));
});
