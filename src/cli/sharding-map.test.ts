import { test } from 'node:test';
import assert from 'node:assert/strict';
import { distribute, emptyCatalog, isCatalogError, reference } from '../sharding/catalog.js';
import type { Catalog } from '../sharding/types.js';
import { shardMap } from './sharding-map.js';

function ok(r: ReturnType<typeof distribute>): Catalog {
  if (isCatalogError(r)) assert.fail(r.message);
  return r.catalog;
}

test('shardMap: each colocation with its tables and placement, shards counted per group', () => {
  let c = emptyCatalog(['0', '1']);
  c = ok(
    distribute(c, { rel: { schema: 'public', name: 'orders' }, column: 'id', type: 'int8', shardCount: 4 }),
  );
  c = ok(
    distribute(c, {
      rel: { schema: 'public', name: 'items' },
      column: 'order_id',
      type: 'int8',
      colocateWith: 'orders',
    }),
  );
  c = ok(reference(c, { schema: 'public', name: 'countries' }));
  const m = shardMap(c);
  assert.equal(m.catalog_version, c.version);
  assert.deepEqual(m.groups, ['0', '1']);
  const dist = m.colocations.find((x) => x.kind === 'distributed')!;
  assert.equal(dist.shard_count, 4);
  assert.deepEqual(
    dist.tables.map((t) => t.name),
    ['public.items', 'public.orders'],
  );
  assert.equal(dist.placement.length, 4);
  const ref = m.colocations.find((x) => x.kind === 'reference')!;
  assert.deepEqual(
    ref.tables.map((t) => t.name),
    ['public.countries'],
  );
  // Reference shards are on every group: not counted; the 4 distributed shards are.
  assert.equal(m.shards_per_group['0']! + m.shards_per_group['1']!, 4);
  assert.deepEqual(dist.placement.filter((g) => g === '1').length, m.shards_per_group['1']);
});

test('shardMap of an empty catalog: every group with 0 shards, no colocation', () => {
  const m = shardMap(emptyCatalog(['0', '1', '2']));
  assert.deepEqual(m.shards_per_group, { '0': 0, '1': 0, '2': 0 });
  assert.deepEqual(m.colocations, []);
});
