import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CITUS_TABLES_COLUMNS } from './catalog.js';
import { isViewRead, withViews } from './citus-views.js';

test('reads naming the views are recognised; writes, other texts and several statements are not', () => {
  for (const sql of [
    'SELECT * FROM citus_tables',
    ' with x as (select 1) select * from CITUS_SHARDS, x',
    'TABLE citus_tables',
  ])
    assert.equal(isViewRead(sql), true, sql);
  for (const sql of [
    'SELECT * FROM users',
    'DELETE FROM citus_tables',
    'SELECT * FROM citus_tables; SELECT 1',
    'SELECT * FROM my_citus_tables_x',
  ])
    assert.equal(isViewRead(sql), false, sql);
});

test('the views go in front of the statement, merged into its own WITH (RECURSIVE kept), typed even when empty', () => {
  const one: [string, typeof CITUS_TABLES_COLUMNS, (string | null)[][]] = [
    'citus_tables',
    CITUS_TABLES_COLUMNS,
    [["it's", 'distributed', 'k', '1', null, '32', 'app', null]],
  ];
  const plain = withViews('SELECT * FROM citus_tables', [one]);
  assert.match(
    plain,
    /^WITH citus_tables \(table_name, .*\) AS \(VALUES \('it''s'::regclass, 'distributed'::text/,
  );
  assert.match(plain, / SELECT \* FROM citus_tables$/);
  assert.match(plain, /NULL::text/);
  const merged = withViews('WITH RECURSIVE r AS (SELECT 1) SELECT * FROM r, citus_tables', [one]);
  assert.match(merged, /^WITH RECURSIVE citus_tables .*\),\s+r AS \(SELECT 1\) SELECT/);
  const empty = withViews('SELECT * FROM citus_tables', [['citus_tables', CITUS_TABLES_COLUMNS, []]]);
  assert.match(empty, /AS \(SELECT NULL::regclass, NULL::text, .* WHERE false\)/);
});
