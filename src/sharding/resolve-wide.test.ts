import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { hashRemainder } from './hash.js';
import { resolveShards, shardKeyPlan } from './shard-plan.js';
import { catalog, columns } from './shard-plan.test-util.js';
import { loadParser } from '../sql/pg-parser.js';

describe('an integer wider than the key column', () => {
  test('is routed, not refused: PostgreSQL compares it at its own width (no row, or its own error)', async () => {
    await loadParser();
    // "Sales"."Big Table"."Id" is an int4 key in the test catalog.
    const route = (sql: string) => resolveShards(shardKeyPlan(sql, catalog, columns), [], hashRemainder);
    for (const sql of [
      'SELECT * FROM "Sales"."Big Table" WHERE "Id" = 99999999999',
      'SELECT * FROM "Sales"."Big Table" WHERE "Id" = 99999999999999999999999',
    ]) {
      const r = route(sql);
      assert.notEqual(r.kind, 'error', `${sql}: ${JSON.stringify(r)}`);
    }
    // A value that fits is hashed as the column's own type, as before.
    assert.equal(route('SELECT * FROM "Sales"."Big Table" WHERE "Id" = 7').kind, 'one');
  });
});
