import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadParser } from '../sql/pg-parser.js';
import { apiCallOf } from './api-call.js';

describe('Citus API calls in a Query text', () => {
  before(() => loadParser());

  test('create_distributed_table: positional and named arguments, defaults filled', () => {
    assert.deepEqual(apiCallOf("SELECT create_distributed_table('users', 'user_id')"), {
      ok: true,
      call: {
        fn: 'create_distributed_table',
        returns: 'void',
        column: 'create_distributed_table',
        args: {
          table_name: 'users',
          distribution_column: 'user_id',
          distribution_type: 'hash',
          colocate_with: 'default',
          shard_count: null,
        },
      },
    });
    const r = apiCallOf(
      "select pg_catalog.create_distributed_table('s.events'::regclass, 'k', colocate_with => 'users', shard_count => 8);",
    );
    assert.ok(r?.ok);
    assert.deepEqual(r.call.args, {
      table_name: 's.events',
      distribution_column: 'k',
      distribution_type: 'hash',
      colocate_with: 'users',
      shard_count: 8,
    });
  });

  test('the other functions, and their result types', () => {
    const ref = apiCallOf("SELECT create_reference_table('countries')");
    assert.ok(ref?.ok);
    assert.equal(ref.call.fn, 'create_reference_table');
    const un = apiCallOf("SELECT undistribute_table('users')");
    assert.ok(un?.ok);
    assert.equal(un.call.args.cascade_via_foreign_keys, false);
    const id = apiCallOf("SELECT get_shard_id_for_distribution_column('users', -5) AS shard");
    assert.ok(id?.ok);
    assert.equal(id.call.column, 'shard');
    assert.equal(id.call.returns, 'bigint');
    assert.equal(id.call.args.distribution_value, -5);
  });

  test('not an API call: other statements, or the function inside a larger query', () => {
    for (const sql of [
      'SELECT 1',
      "SELECT * FROM create_distributed_table('users', 'id')",
      "SELECT create_distributed_table('users', 'id'), 1",
      "SELECT create_distributed_table('a', 'id'); SELECT 1",
      "SELECT 'create_distributed_table(' AS x",
      "SELECT create_distributed_table('users', 'id') WHERE false",
    ])
      assert.equal(apiCallOf(sql), null, sql);
  });

  test('bad calls get PostgreSQL-like errors', () => {
    const missing = apiCallOf("SELECT create_distributed_table('users')");
    assert.ok(missing && !missing.ok);
    assert.equal(missing.sqlstate, '42883');
    const unknown = apiCallOf("SELECT create_distributed_table('users', 'id', shards => 4)");
    assert.ok(unknown && !unknown.ok);
    assert.equal(unknown.sqlstate, '42883');
    const expr = apiCallOf("SELECT create_distributed_table('users', lower('ID'))");
    assert.ok(expr && !expr.ok);
    assert.equal(expr.sqlstate, '0A000');
    const order = apiCallOf("SELECT create_distributed_table(table_name => 'users', 'id')");
    assert.ok(order && !order.ok);
    assert.equal(order.sqlstate, '42601');
  });
});
