import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CITUS_SHARDS_COLUMNS,
  CITUS_TABLES_COLUMNS,
  citusShardsRows,
  citusTablesRows,
  distribute,
  emptyCatalog,
  pgSizePretty,
  reference,
  regclassText,
} from './catalog.js';
import type { Catalog } from './types.js';

function sample(): Catalog {
  let c = emptyCatalog(['0', '1']);
  for (const [schema, name] of [
    ['public', 'users'],
    ['app', 'Events'],
  ] as const) {
    const r = distribute(c, { rel: { schema, name }, column: 'id', type: 'int8', shardCount: 2 });
    assert.ok('catalog' in r);
    c = r.catalog;
  }
  const r = reference(c, { schema: 'public', name: 'countries' });
  assert.ok('catalog' in r);
  return r.catalog;
}

describe("Citus's views", () => {
  test('citus_tables: columns and types as Citus', () => {
    assert.deepEqual(
      CITUS_TABLES_COLUMNS.map((c) => `${c.name} ${c.type} ${c.typeOid}`),
      [
        'table_name regclass 2205',
        'citus_table_type text 25',
        'distribution_column text 25',
        'colocation_id integer 23',
        'table_size text 25',
        'shard_count bigint 20',
        'table_owner name 19',
        'access_method name 19',
      ],
    );
  });

  test('citus_tables: one row per table, ordered by name, sizes from the caller', () => {
    const rows = citusTablesRows(sample(), {
      tableSize: (t) => (t.rel.name === 'users' ? 16384 : t.kind === 'reference' ? 10752n : null),
      owner: () => 'alice',
      accessMethod: () => 'heap',
    });
    assert.deepEqual(rows, [
      ['app."Events"', 'distributed', 'id', '1', null, '2', 'alice', 'heap'],
      ['countries', 'reference', '<none>', '2', '11 kB', '1', 'alice', 'heap'],
      ['users', 'distributed', 'id', '1', '16 kB', '2', 'alice', 'heap'],
    ]);
  });

  test('citus_shards: columns and types as Citus', () => {
    assert.deepEqual(
      CITUS_SHARDS_COLUMNS.map((c) => `${c.name} ${c.type}`),
      [
        'table_name regclass',
        'shardid bigint',
        'shard_name text',
        'citus_table_type text',
        'colocation_id integer',
        'nodename text',
        'nodeport integer',
        'shard_size bigint',
      ],
    );
  });

  test('citus_shards: a row per placement, a reference shard once per group, nodes and sizes from the caller', () => {
    const rows = citusShardsRows(sample(), {
      node: (g) => ({ name: `host${g}`, port: 5432 + Number(g) }),
      shardSize: (id, g) => (id === 102008 ? 8192 : g === '1' ? null : 0n),
    });
    assert.deepEqual(rows, [
      ['app."Events"', '102010', 'app."Events_102010"', 'distributed', '1', 'host0', '5432', '0'],
      ['app."Events"', '102011', 'app."Events_102011"', 'distributed', '1', 'host1', '5433', null],
      ['countries', '102012', 'countries_102012', 'reference', '2', 'host0', '5432', '0'],
      ['countries', '102012', 'countries_102012', 'reference', '2', 'host1', '5433', null],
      ['users', '102008', 'users_102008', 'distributed', '1', 'host0', '5432', '8192'],
      ['users', '102009', 'users_102009', 'distributed', '1', 'host1', '5433', null],
    ]);
  });

  test('regclass text: schema only when not visible, quotes only when needed', () => {
    assert.equal(regclassText({ schema: 'public', name: 'users' }), 'users');
    assert.equal(regclassText({ schema: 'app', name: 'users' }), 'app.users');
    assert.equal(regclassText({ schema: 'app', name: 'users' }, { visible: () => true }), 'users');
    assert.equal(regclassText({ schema: 'public', name: 'My "T"' }), '"My ""T"""');
    assert.equal(regclassText({ schema: 'public', name: 'select' }), '"select"');
  });

  test("pg_size_pretty as PostgreSQL's", () => {
    const cases: [bigint, string][] = [
      [0n, '0 bytes'],
      [10239n, '10239 bytes'],
      [10240n, '10 kB'],
      [10751n, '10 kB'],
      [10752n, '11 kB'],
      [1073741824n, '1024 MB'],
      [10239n * 2n ** 20n, '10239 MB'],
      [10240n * 2n ** 20n, '10 GB'],
      [-10240n, '-10 kB'],
      [2n ** 63n - 1n, '8192 PB'],
    ];
    for (const [n, s] of cases) assert.equal(pgSizePretty(n), s, String(n));
  });
});
