import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { anyText, sqlishText } from './arbitraries.test-util.js';
import { relationRefs } from './relation-refs.js';

test('every identifier once, unquoted folded, quoted exact; strings and comments are not names', () => {
  const r = relationRefs(`SELECT a, "B" FROM Public.V_Path v JOIN "MyView" USING (a) WHERE x = 'v_x' -- v_y`);
  assert.deepEqual(
    [...r.names].sort(),
    ['B', 'MyView', 'a', 'from', 'join', 'public', 'select', 'using', 'v', 'v_path', 'where', 'x'].sort(),
  );
  assert.equal(r.userRelation, true);
  assert.equal(r.ddl, false);
});

test('naming a relation outside the system catalogs', () => {
  for (const sql of [
    'SELECT * FROM t',
    'select * from only t',
    'INSERT INTO t VALUES (1)',
    'UPDATE s.t SET x = 1',
    'DELETE FROM t',
    'TABLE t',
    'COPY t FROM STDIN',
    'TRUNCATE t',
    'REFRESH MATERIALIZED VIEW mv',
    'SELECT 1 FROM pg_class, t',
    'SELECT * FROM a JOIN b ON true',
  ])
    assert.equal(relationRefs(sql).userRelation, true, sql);
  for (const sql of [
    'SELECT 1',
    'SELECT now()',
    'BEGIN',
    'SET search_path = public',
    'SELECT * FROM pg_settings',
    'SELECT * FROM pg_catalog.pg_class',
    'SELECT * FROM information_schema.tables',
    "SELECT 'FROM t'",
    'SELECT x -- FROM t',
  ])
    assert.equal(relationRefs(sql).userRelation, false, sql);
});

test('DDL: CREATE, ALTER or DROP starting a statement; COMMENT and others are not', () => {
  for (const sql of [
    'CREATE VIEW v AS SELECT 1',
    'create or replace function f() returns int language sql as $$ select 1 $$',
    'ALTER TABLE t ENABLE ROW LEVEL SECURITY',
    'DROP TRIGGER tr ON t',
    'SELECT 1; CREATE TABLE t (x int)',
  ])
    assert.equal(relationRefs(sql).ddl, true, sql);
  for (const sql of [
    "COMMENT ON TABLE t IS 'x'",
    'SELECT create FROM t',
    "SELECT 'CREATE VIEW v'",
    'GRANT SELECT ON t TO u',
  ])
    assert.equal(relationRefs(sql).ddl, false, sql);
});

test('commands that may fire event triggers', () => {
  for (const sql of [
    'CREATE SEQUENCE s',
    'GRANT SELECT ON t TO u',
    "COMMENT ON TABLE t IS 'x'",
    'SELECT 1 INTO t',
    'WITH c AS (SELECT 1) SELECT * INTO t FROM c',
    'SELECT 1; REFRESH MATERIALIZED VIEW mv',
    '"create" table t ()',
  ])
    assert.equal(relationRefs(sql).utility, true, sql);
  for (const sql of [
    'SELECT 1',
    'INSERT INTO t SELECT 1',
    'BEGIN; UPDATE t SET x = 1; COMMIT',
    'SET x = 1',
    '',
  ])
    assert.equal(relationRefs(sql).utility, false, sql);
});

test('never throws, on any text', () => {
  fc.assert(
    fc.property(fc.oneof(anyText, sqlishText), (sql) => {
      const r = relationRefs(sql);
      assert.ok(Array.isArray(r.names));
    }),
  );
});

test('operators as PostgreSQL splits them, names after a dot, and bare texts', () => {
  const r = relationRefs("SELECT t.f, (t).g, x=-1, a === b, 'a+b' FROM s.t WHERE y @> z -- +");
  assert.deepEqual([...r.operators].sort(), ['-', '=', '===', '@>'].sort());
  assert.deepEqual([...r.dotted].sort(), ['f', 'g', 't'].sort());
  assert.equal(r.bare, false);
  for (const sql of ['SELECT 1', 'BEGIN', 'COMMIT; SELECT $1', "SELECT 'x', 2.5"])
    assert.equal(relationRefs(sql).bare, true, sql);
  for (const sql of ['SELECT 1::d', 'SELECT x', 'SELECT 1 + 1', 'SELECT now()', 'SELECT * FROM t'])
    assert.equal(relationRefs(sql).bare, false, sql);
});
