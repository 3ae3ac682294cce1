import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { catalogs } from './catalog-arbitrary.test-util.js';
import { distribute, emptyCatalog, lookup, MAX_IDENTIFIER_BYTES, reference, shardNameOf } from './catalog.js';
import type { Catalog } from './types.js';
import { relKey } from './types.js';

function sample(): Catalog {
  const a = distribute(emptyCatalog(['0', '1', '2']), {
    rel: { schema: 'public', name: 'users' },
    column: 'user_id',
    type: 'int8',
    shardCount: 4,
  });
  assert.ok('catalog' in a);
  const b = reference(a.catalog, { schema: 'app', name: 'countries' });
  assert.ok('catalog' in b);
  return b.catalog;
}

describe('catalog lookups', () => {
  test('one lookup per catalog value', () => {
    const c = sample();
    assert.equal(lookup(c), lookup(c));
    assert.notEqual(lookup(c), lookup(emptyCatalog(['0'])));
  });

  test('a table by RelName or by key; a local table is undefined', () => {
    const l = lookup(sample());
    const users = l.table({ schema: 'public', name: 'users' })!;
    assert.equal(users.column, 'user_id');
    assert.equal(l.tableByKey('public.users'), users);
    assert.equal(l.table({ schema: 'app', name: 'users' }), undefined);
    assert.equal(l.table({ schema: 'public', name: 'local' }), undefined);
    assert.equal(l.tableByKey('app.countries')!.kind, 'reference');
  });

  test('colocation, group, shard id and name of each shard', () => {
    const l = lookup(sample());
    const users = l.table({ schema: 'public', name: 'users' })!;
    assert.equal(l.colocation(users).id, 1);
    assert.equal(l.shardCount(users), 4);
    assert.deepEqual(
      [0, 1, 2, 3].map((r) => l.groupOfShard(users, r)),
      ['0', '1', '2', '0'],
    );
    assert.deepEqual(
      [0, 1, 2, 3].map((r) => l.shardId(users, r)),
      [102008, 102009, 102010, 102011],
    );
    assert.deepEqual(
      [0, 1, 2, 3].map((r) => l.shardName(users, r)),
      ['users_102008', 'users_102009', 'users_102010', 'users_102011'],
    );
    assert.deepEqual(l.shardsOn(users, '0'), [0, 3]);
    assert.deepEqual(l.groupsOf(users), ['0', '1', '2']);
    assert.throws(() => l.groupOfShard(users, 4), RangeError);
    assert.throws(() => l.shardName(users, -1), RangeError);
  });

  test('a reference table: every group, one shard', () => {
    const l = lookup(sample());
    const countries = l.tableByKey('app.countries')!;
    assert.deepEqual(l.groupsOf(countries), ['0', '1', '2']);
    assert.equal(l.shardCount(countries), 1);
    assert.equal(l.shardName(countries, 0), 'countries_102012');
    assert.equal(l.groupOfShard(countries, 0), '0');
  });

  test('a distributed table on fewer groups than the catalog has lists only those', () => {
    const a = distribute(emptyCatalog(['0', '1', '2']), {
      rel: { schema: 'public', name: 't' },
      column: 'k',
      type: 'int4',
      shardCount: 2,
    });
    assert.ok('catalog' in a);
    assert.deepEqual(lookup(a.catalog).groupsOf(a.table), ['0', '1']);
  });

  test('shard names fit 63 bytes, stay unique and keep whole characters', () => {
    assert.equal(shardNameOf('users', 102008), 'users_102008');
    const fits = 'x'.repeat(MAX_IDENTIFIER_BYTES - 7);
    assert.equal(shardNameOf(fits, 102008), `${fits}_102008`);
    const long = shardNameOf('x'.repeat(63), 102008);
    assert.match(long, /^x{47}_[0-9a-f]{8}_102008$/);
    assert.equal(Buffer.byteLength(long), 63);
    assert.notEqual(shardNameOf(`${'x'.repeat(60)}ab`, 102008), shardNameOf(`${'x'.repeat(60)}ba`, 102008));
    const wide = shardNameOf('é'.repeat(31), 1020080);
    assert.ok(Buffer.byteLength(wide) <= 63);
    assert.ok(!wide.includes('\ufffd'), 'no character cut in half');
    assert.match(wide, /^(é)+_[0-9a-f]{8}_1020080$/);
  });

  test('every shard name of generated catalogs is at most 63 bytes and unique per schema', () => {
    fc.assert(
      fc.property(catalogs, (c) => {
        const l = lookup(c);
        const seen = new Set<string>();
        for (const t of c.tables.values()) {
          assert.equal(l.table(t.rel), t);
          assert.equal(l.tableByKey(relKey(t.rel)), t);
          for (let r = 0; r < l.shardCount(t); r++) {
            const name = l.shardName(t, r);
            assert.ok(Buffer.byteLength(name) <= MAX_IDENTIFIER_BYTES, name);
            const key = `${t.rel.schema}.${name}`;
            assert.ok(!seen.has(key), `duplicate ${key}`);
            seen.add(key);
            assert.ok(c.groups.includes(l.groupOfShard(t, r)));
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});
