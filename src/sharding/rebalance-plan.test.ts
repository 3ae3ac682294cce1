import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { distribute, emptyCatalog, isCatalogError, placeShard, withGroups } from './catalog.js';
import { planDrain, planRebalance } from './rebalance-plan.js';
import type { PlannedMove } from './rebalance-plan.js';
import type { Catalog } from './types.js';

function withTable(c: Catalog, name: string, shardCount: number, colocateWith = 'none'): Catalog {
  const r = distribute(c, {
    rel: { schema: 'public', name },
    column: 'id',
    type: 'int8',
    shardCount,
    colocateWith,
  });
  if (isCatalogError(r)) assert.fail(r.message);
  return r.catalog;
}

function apply(c: Catalog, moves: readonly PlannedMove[]): Catalog {
  for (const m of moves) {
    const next = placeShard(c, m.colocation, m.shard, m.from, m.to);
    if (isCatalogError(next)) assert.fail(next.message);
    c = next;
  }
  return c;
}

function counts(c: Catalog, colocation: number): Map<string, number> {
  const m = new Map(c.groups.map((g) => [g, 0]));
  for (const g of c.colocations.get(colocation)!.placement) m.set(g, m.get(g)! + 1);
  return m;
}

function grown(groups: string[]): Catalog {
  const c = withGroups(emptyCatalog(['0', '1']), ['0', '1']);
  if (isCatalogError(c)) assert.fail(c.message);
  let t = withTable(c, 'users', 32);
  t = withTable(t, 'events', 7);
  const more = withGroups(t, groups);
  if (isCatalogError(more)) assert.fail(more.message);
  return more;
}

describe('planRebalance', () => {
  test('by count: a third group gets a third of every colocation, and only what it needs moves', () => {
    const c = grown(['0', '1', '2']);
    const moves = planRebalance(c);
    const after = apply(c, moves);
    for (const id of after.colocations.keys()) {
      const n = after.colocations.get(id)!.shardCount;
      for (const v of counts(after, id).values())
        assert.ok(v === Math.floor(n / 3) || v === Math.ceil(n / 3), `${id}: ${v}`);
    }
    // 32 over 3: 10 or 11 move; 7 over 3: 2 or 3 move.
    assert.ok(moves.length <= 11 + 3, `${moves.length} moves`);
    assert.ok(moves.every((m) => m.to === '2'));
    // Nothing more to do afterwards.
    assert.deepEqual(planRebalance(after), []);
  });

  test('consecutive moves leave different groups', () => {
    const moves = planRebalance(grown(['0', '1', '2']));
    assert.notEqual(moves[0]!.from, moves[1]!.from);
  });

  test('by size: the big shards spread', () => {
    const c = grown(['0', '1', '2']);
    const sizes = new Map<string, number>();
    for (const [id, col] of c.colocations)
      col.placement.forEach((_, r) => sizes.set(`${id}:${r}`, id === 1 ? 1000 : 10));
    const moves = planRebalance(c, { by: 'size', sizes });
    const after = apply(c, moves);
    const load = new Map(after.groups.map((g) => [g, 0]));
    for (const [id, col] of after.colocations)
      col.placement.forEach((g, r) => load.set(g, load.get(g)! + sizes.get(`${id}:${r}`)!));
    const values = [...load.values()];
    assert.ok(Math.max(...values) - Math.min(...values) <= 2000, JSON.stringify([...load]));
  });

  test('drain: every shard leaves the group, spread over the others', () => {
    const c = apply(grown(['0', '1', '2']), planRebalance(grown(['0', '1', '2'])));
    const moves = planDrain(c, '1');
    const after = apply(c, moves);
    for (const col of after.colocations.values())
      if (col.type !== null) assert.ok(!col.placement.includes('1'));
    const users = counts(after, 1);
    assert.deepEqual([users.get('0'), users.get('2')], [16, 16]);
    assert.deepEqual(planDrain(after, '1'), []);
  });

  test('a single group or no table: nothing to move', () => {
    const c = withGroups(emptyCatalog(['0']), ['0', '1']);
    if (isCatalogError(c)) assert.fail(c.message);
    assert.deepEqual(planRebalance(c), []);
  });
});

describe('placeShard', () => {
  test('is a compare-and-set on the placement', () => {
    const c = grown(['0', '1', '2']);
    const from = c.colocations.get(1)!.placement[0]!;
    const r = placeShard(c, 1, 0, from === '0' ? '1' : '0', '2');
    assert.ok(isCatalogError(r));
    assert.equal(r.sqlstate, '55000');
    const ok = placeShard(c, 1, 0, from, '2');
    assert.ok(!isCatalogError(ok));
    assert.equal(ok.colocations.get(1)!.placement[0], '2');
    assert.ok(isCatalogError(placeShard(c, 1, 0, from, '9')));
    assert.ok(isCatalogError(placeShard(c, 1, 99, from, '2')));
  });
});
