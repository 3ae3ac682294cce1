import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyPlanned,
  distribute,
  emptyCatalog,
  isCatalogError,
  nextVersion,
  parseRelName,
  reference,
  undistribute,
  withGroups,
} from './catalog.js';
import type { CatalogError, DistributeOptions, TableChange } from './catalog.js';
import type { Catalog, RelName } from './types.js';
import { FIRST_SHARD_ID } from './types.js';

const rel = (name: string, schema = 'public'): RelName => ({ schema, name });

function ok(r: TableChange | CatalogError | Catalog): TableChange {
  if (isCatalogError(r)) assert.fail(`unexpected error: ${r.message}`);
  assert.ok('table' in r);
  return r;
}

function refused(
  r: TableChange | CatalogError | Catalog,
  sqlstate: string,
  message: string,
  detail?: string,
): void {
  assert.ok(isCatalogError(r), 'expected a CatalogError');
  assert.equal(r.sqlstate, sqlstate);
  assert.equal(r.message, message);
  if (detail !== undefined) assert.equal(r.detail, detail);
}

const dist = (c: Catalog, name: string, o: Partial<DistributeOptions> = {}) =>
  distribute(c, { rel: rel(name), column: 'id', type: 'int8', ...o });

/** Applies a chain of distribute() calls, failing on any error. */
function build(groups: string[], ...tables: [string, Partial<DistributeOptions>?][]): Catalog {
  let c = emptyCatalog(groups);
  for (const [name, o] of tables) c = ok(dist(c, name, o)).catalog;
  return c;
}

describe('emptyCatalog and withGroups', () => {
  test('an empty catalog has the groups, no tables, version 0, shard ids from 102008', () => {
    const c = emptyCatalog(['0', '1']);
    assert.deepEqual(c.groups, ['0', '1']);
    assert.equal(c.tables.size, 0);
    assert.equal(c.colocations.size, 0);
    assert.equal(c.version, 0);
    assert.equal(c.nextShardId, FIRST_SHARD_ID);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.groups));
  });

  test('bad group lists are refused', () => {
    assert.throws(() => emptyCatalog(['0', '0']), /listed twice/);
    assert.throws(() => emptyCatalog(['']), /empty/);
    const c = emptyCatalog(['0']);
    refused(withGroups(c, ['0', '1', '1']), '22023', 'group "1" is listed twice');
  });

  test('a group added later keeps every placement and gets no shards', () => {
    const c = build(['0', '1'], ['a', { shardCount: 4 }]);
    const wider = withGroups(c, ['0', '1', '2']);
    assert.ok(!isCatalogError(wider));
    assert.deepEqual(wider.groups, ['0', '1', '2']);
    assert.deepEqual([...wider.colocations.values()][0]!.placement, ['0', '1', '0', '1']);
    assert.equal(wider.tables, c.tables);
    assert.equal(withGroups(c, ['0', '1']), c, 'the same groups: the same catalog');
  });

  test('group 0 stays first; a group that holds shards cannot leave; an unused one, or one with reference copies only, can', () => {
    const c = build(['0', '1', '2'], ['a', { shardCount: 2 }]);
    refused(
      withGroups(c, ['1', '0', '2']),
      '55000',
      'group "0" must stay the first group: the local tables live there',
    );
    refused(
      withGroups(c, ['0', '2']),
      '55000',
      'cannot remove group "1": it holds shards of colocation 1; move them first',
    );
    const fewer = withGroups(c, ['0', '1']);
    assert.ok(!isCatalogError(fewer));
    assert.deepEqual(fewer.groups, ['0', '1']);
    // A reference table's copy does not keep a group (drain-group, remove-group).
    const onlyRef = ok(reference(emptyCatalog(['0', '1']), rel('r'))).catalog;
    const left = withGroups(onlyRef, ['0']);
    assert.ok(!isCatalogError(left));
    assert.deepEqual(left.groups, ['0']);
  });
});

describe('distribute', () => {
  test('a new table: 32 shards by default, ids from nextShardId, round robin over the groups', () => {
    const c0 = emptyCatalog(['0', '1', '2']);
    const { catalog, table } = ok(dist(c0, 'users', { column: 'user_id' }));
    assert.deepEqual(table, {
      rel: rel('users'),
      kind: 'distributed',
      column: 'user_id',
      type: 'int8',
      colocationId: 1,
      firstShardId: 102008,
    });
    const colo = catalog.colocations.get(1)!;
    assert.equal(colo.shardCount, 32);
    assert.equal(colo.type, 'int8');
    assert.deepEqual(colo.placement.slice(0, 4), ['0', '1', '2', '0']);
    assert.equal(catalog.nextShardId, 102008 + 32);
    assert.equal(catalog.version, c0.version, 'the store, not the rule, advances the version');
    assert.equal(c0.tables.size, 0, 'the input catalog is unchanged');
    assert.ok(Object.isFrozen(table) && Object.isFrozen(colo.placement));
  });

  test("'default' joins the colocation of the same type and shard count", () => {
    const c = build(
      ['0', '1'],
      ['a'],
      ['b', { colocateWith: 'default' }],
      ['c', { colocateWith: 'DEFAULT' }],
    );
    const ids = ['a', 'b', 'c'].map((n) => c.tables.get(`public.${n}`)!.colocationId);
    assert.deepEqual(ids, [1, 1, 1]);
    assert.equal(c.colocations.size, 1);
    assert.deepEqual(
      ['a', 'b', 'c'].map((n) => c.tables.get(`public.${n}`)!.firstShardId),
      [102008, 102040, 102072],
      'colocated tables still get their own shard ids',
    );
  });

  test("'default' makes a new colocation for another type or shard count", () => {
    const c = build(
      ['0', '1'],
      ['a'],
      ['b', { type: 'int4' }],
      ['c', { shardCount: 8 }],
      ['d', { type: 'text', shardCount: 8 }],
    );
    const ids = ['a', 'b', 'c', 'd'].map((n) => c.tables.get(`public.${n}`)!.colocationId);
    assert.deepEqual(ids, [1, 2, 3, 4]);
    assert.equal(c.colocations.get(3)!.shardCount, 8);
    assert.equal(c.colocations.get(4)!.type, 'text');
  });

  test("'none' always makes a new colocation; 'default' later joins the smallest matching id (Citus's ColocationId)", () => {
    const c = build(['0', '1'], ['a', { colocateWith: 'none' }], ['b', { colocateWith: 'None' }], ['c']);
    const ids = ['a', 'b', 'c'].map((n) => c.tables.get(`public.${n}`)!.colocationId);
    assert.deepEqual(ids, [1, 2, 1]);
  });

  test('a table name colocates with that table and takes its shard count', () => {
    let c = build(
      ['0', '1'],
      ['a', { shardCount: 6, colocateWith: 'none' }],
      ['other', { shardCount: 6, colocateWith: 'none' }],
    );
    c = ok(dist(c, 'b', { colocateWith: 'a' })).catalog;
    c = ok(dist(c, 'c', { colocateWith: 'public.a' })).catalog;
    c = ok(dist(c, 'd', { colocateWith: rel('b') })).catalog;
    const ids = ['a', 'b', 'c', 'd', 'other'].map((n) => c.tables.get(`public.${n}`)!.colocationId);
    assert.deepEqual(ids, [1, 1, 1, 1, 2]);
    assert.equal(c.tables.get('public.d')!.firstShardId, 102008 + 6 * 4);
  });

  test('colocate_with names another schema, quoted names and case folding', () => {
    let c = emptyCatalog(['0']);
    c = ok(
      distribute(c, { rel: rel('Events', 'app'), column: 'id', type: 'int8', colocateWith: 'none' }),
    ).catalog;
    c = ok(
      distribute(c, { rel: rel('x'), column: 'id', type: 'int8', colocateWith: 'app."Events"' }),
    ).catalog;
    refused(dist(c, 'y', { colocateWith: 'app.Events' }), 'XX000', 'relation events is not distributed');
    c = ok(
      distribute(c, {
        rel: rel('z', 'app'),
        column: 'id',
        type: 'int8',
        colocateWith: '"Events"',
        defaultSchema: 'app',
      }),
    ).catalog;
    assert.equal(c.tables.get('app.z')!.colocationId, 1);
  });

  test("colocating with a table that is not distributed: Citus's error", () => {
    refused(
      dist(emptyCatalog(['0']), 'b', { colocateWith: 'local' }),
      'XX000',
      'relation local is not distributed',
    );
  });

  test('colocating with a reference table: replication models differ', () => {
    const c = ok(reference(emptyCatalog(['0']), rel('ref'))).catalog;
    refused(
      dist(c, 't', { colocateWith: 'ref' }),
      'XX000',
      'cannot colocate tables ref and t',
      "Replication models don't match for ref and t.",
    );
  });

  test('colocating with a table of another column type', () => {
    const c = build(['0'], ['a', { type: 'int4' }]);
    refused(
      dist(c, 'b', { type: 'int8', colocateWith: 'a' }),
      'XX000',
      'cannot colocate tables a and b',
      "Distribution column types don't match for a and b.",
    );
    refused(dist(c, 'b', { type: 'varchar', colocateWith: 'a' }), 'XX000', 'cannot colocate tables a and b');
  });

  test('shard_count with a table to colocate with: Citus refuses both at once', () => {
    const c = build(['0'], ['a']);
    refused(
      dist(c, 'b', { colocateWith: 'a', shardCount: 32 }),
      'XX000',
      'Cannot use colocate_with with a table and shard_count at the same time',
    );
    assert.ok(!isCatalogError(dist(c, 'b', { colocateWith: 'none', shardCount: 7 })));
  });

  test('shard_count out of 1 .. 64000', () => {
    const c = emptyCatalog(['0']);
    for (const n of [0, -1, 64001])
      refused(
        dist(c, 't', { shardCount: n }),
        'XX000',
        `${n} is outside the valid range for parameter "shard_count" (1 .. 64000)`,
      );
    refused(
      dist(c, 't', { shardCount: 2.5 }),
      'XX000',
      '2.5 is outside the valid range for parameter "shard_count" (1 .. 64000)',
    );
    assert.equal(ok(dist(c, 't', { shardCount: 64000 })).catalog.colocations.get(1)!.placement.length, 64000);
    assert.equal(ok(dist(c, 't', { shardCount: 1 })).catalog.nextShardId, 102009);
  });

  test('a table already distributed or reference is refused with 42P16', () => {
    const c = ok(reference(build(['0'], ['a']), rel('r'))).catalog;
    refused(dist(c, 'a'), '42P16', 'table "a" is already distributed');
    refused(dist(c, 'r'), '42P16', 'table "r" is already distributed');
    refused(reference(c, rel('a')), '42P16', 'table "a" is already distributed');
    refused(reference(c, rel('r')), '42P16', 'table "r" is already distributed');
    assert.ok(
      !isCatalogError(dist(c, 'a', { rel: rel('a', 'other') })),
      'same name in another schema is another table',
    );
  });

  test("several problems at once: Citus's order (argument checks before the table's state)", () => {
    const c = build(['0'], ['a']);
    refused(
      dist(c, 'a', { colocateWith: 'a', shardCount: 4 }),
      'XX000',
      'Cannot use colocate_with with a table and shard_count at the same time',
    );
    refused(
      dist(c, 'a', { shardCount: 0 }),
      'XX000',
      '0 is outside the valid range for parameter "shard_count" (1 .. 64000)',
    );
    refused(dist(c, 'a', { type: 'float8' }), '42P16', 'table "a" is already distributed');
  });

  test('a shard is not a table: Citus refuses to distribute it', () => {
    const c = build(['0', '1'], ['users', { shardCount: 2 }]);
    refused(dist(c, 'users_102009'), 'XX000', 'relation "users_102009" is a shard relation');
    refused(reference(c, rel('users_102008')), 'XX000', 'relation "users_102008" is a shard relation');
    assert.ok(!isCatalogError(dist(c, 'users_102010')), 'not one of its shard ids');
    assert.ok(
      !isCatalogError(dist(c, 'users_102008', { rel: rel('users_102008', 'app') })),
      'another schema',
    );
    assert.ok(!isCatalogError(dist(c, 'other_102008')), 'another table name');
  });

  test('an unsupported column type is 0A000 naming the supported ones', () => {
    const r = dist(emptyCatalog(['0']), 't', { column: 'at', type: 'timestamptz' });
    refused(r, '0A000', 'cannot distribute relation: t');
    assert.match(
      (r as CatalogError).detail!,
      /"at" has type timestamptz; pgscale distributes by int2, int4, int8, text, varchar, bpchar, uuid, numeric only/,
    );
  });

  test('no groups: no worker nodes', () => {
    const r = dist(emptyCatalog([]), 't');
    refused(r, '22023', 'no worker nodes are available for placing shards');
    assert.equal((r as CatalogError).hint, 'Add more worker nodes.');
    refused(
      reference(emptyCatalog([]), rel('r')),
      '22023',
      'no worker nodes are available for placing shards',
    );
  });

  test('a bad colocate_with name is a name syntax error', () => {
    const c = emptyCatalog(['0']);
    refused(dist(c, 't', { colocateWith: 'a..b' }), '42602', 'invalid name syntax');
    refused(dist(c, 't', { colocateWith: '"unterminated' }), '42602', 'invalid name syntax');
    refused(
      dist(c, 't', { colocateWith: 'a.b.c' }),
      '42601',
      'improper relation name (too many dotted names): a.b.c',
    );
    refused(dist(c, 't', { column: '' }), '22023', 'the distribution column name cannot be empty');
  });

  test('placement continues the round robin across colocations, so groups stay even', () => {
    let c = build(['0', '1', '2'], ['a', { shardCount: 4 }]);
    assert.deepEqual(c.colocations.get(1)!.placement, ['0', '1', '2', '0']);
    c = ok(dist(c, 'b', { shardCount: 4, type: 'int4' })).catalog;
    assert.deepEqual(c.colocations.get(2)!.placement, ['1', '2', '0', '1']);
    c = ok(dist(c, 'c', { shardCount: 1, type: 'text' })).catalog;
    assert.deepEqual(c.colocations.get(3)!.placement, ['2']);
    const perGroup = new Map<string, number>();
    for (const colo of c.colocations.values())
      for (const g of colo.placement) perGroup.set(g, (perGroup.get(g) ?? 0) + 1);
    assert.deepEqual([...perGroup.values()], [3, 3, 3]);
  });
});

describe('reference and undistribute', () => {
  test('reference tables share one colocation of one shard; each has its own shard id', () => {
    let c = emptyCatalog(['0', '1']);
    const a = ok(reference(c, rel('countries')));
    c = a.catalog;
    assert.deepEqual(a.table, {
      rel: rel('countries'),
      kind: 'reference',
      column: null,
      type: null,
      colocationId: 1,
      firstShardId: 102008,
    });
    const b = ok(reference(c, rel('currencies')));
    assert.equal(b.table.colocationId, 1);
    assert.equal(b.table.firstShardId, 102009);
    const colo = b.catalog.colocations.get(1)!;
    assert.equal(colo.shardCount, 1);
    assert.equal(colo.type, null);
    assert.equal(b.catalog.nextShardId, 102010);
  });

  test('undistribute removes the table; the last table takes its colocation along; ids are not reused', () => {
    let c = build(['0', '1'], ['a'], ['b']);
    c = ok(undistribute(c, rel('a'))).catalog;
    assert.equal(c.tables.has('public.a'), false);
    assert.equal(c.colocations.size, 1, 'b still uses the colocation');
    c = ok(undistribute(c, rel('b'))).catalog;
    assert.equal(c.colocations.size, 0);
    assert.equal(c.nextShardId, 102008 + 64);
    const again = ok(dist(c, 'a'));
    assert.equal(again.table.firstShardId, 102072);
    assert.equal(again.table.colocationId, 1, 'colocation ids restart above the highest existing one');
  });

  test("undistributing a table that is not distributed: Citus's error", () => {
    refused(
      undistribute(emptyCatalog(['0']), rel('t')),
      'XX000',
      'cannot undistribute table because the table is not distributed',
    );
    const c = ok(reference(emptyCatalog(['0']), rel('r'))).catalog;
    assert.equal(ok(undistribute(c, rel('r'))).catalog.colocations.size, 0);
  });

  test('nextVersion advances only the version', () => {
    const c = build(['0'], ['a']);
    const n = nextVersion(c);
    assert.equal(n.version, c.version + 1);
    assert.equal(n.tables, c.tables);
  });
});

describe('parseRelName', () => {
  test('plain, qualified, quoted, folded', () => {
    assert.deepEqual(parseRelName('Users'), rel('users'));
    assert.deepEqual(parseRelName('App.Users'), rel('users', 'app'));
    assert.deepEqual(parseRelName('"App"."My ""T"""'), rel('My "T"', 'App'));
    assert.deepEqual(parseRelName(' a . b '), rel('b', 'a'));
    assert.deepEqual(parseRelName('t', 'app'), rel('t', 'app'));
    assert.deepEqual(parseRelName('Ünïcode'), rel('Ünïcode'), 'only ASCII letters fold');
  });

  test('garbage is a name syntax error', () => {
    for (const bad of ['', '.', 'a.', '.a', '""', 'a b', '"a"b'])
      assert.ok(isCatalogError(parseRelName(bad)), bad);
  });
});

describe('applyPlanned', () => {
  const c0 = build(['0', '1'], ['x', { shardCount: 2 }]);

  test('on the catalog it was planned on: the planned catalog', () => {
    const plan = ok(dist(c0, 'a', { shardCount: 4 }));
    const c = applyPlanned(c0, plan);
    assert.ok(!isCatalogError(c));
    assert.deepStrictEqual(c, plan.catalog);
  });

  test('after an unrelated change: both kept, the planned ids and placement unchanged', () => {
    const plan = ok(dist(c0, 'a', { shardCount: 4, colocateWith: 'none' }));
    const meanwhile = ok(undistribute(c0, rel('x'))).catalog;
    const c = applyPlanned(meanwhile, plan);
    assert.ok(!isCatalogError(c));
    assert.equal(c.tables.has('public.x'), false);
    assert.deepEqual(c.tables.get('public.a'), plan.table);
    assert.deepEqual(
      c.colocations.get(plan.table.colocationId),
      plan.catalog.colocations.get(plan.table.colocationId),
    );
    assert.equal(c.nextShardId, plan.catalog.nextShardId);
  });

  test('another table took the planned shard ids: 40001, run it again', () => {
    const plan = ok(dist(c0, 'a'));
    const meanwhile = ok(dist(c0, 'b', { type: 'text' })).catalog;
    const r = applyPlanned(meanwhile, plan);
    refused(
      r,
      '40001',
      'the sharding catalog changed while distributing "a"',
      'shard ids 102010..102041 were taken by b.',
    );
    assert.equal((r as CatalogError).hint, 'Run the call again.');
  });

  test('the table itself appeared meanwhile: already distributed', () => {
    const plan = ok(dist(c0, 'a'));
    refused(applyPlanned(plan.catalog, plan), '42P16', 'table "a" is already distributed');
  });

  test('the planned colocation id now names another placement: 40001', () => {
    // Planned: a new colocation 2 with shard ids 102010..102011. Meanwhile colocation 2 is made
    // with 3 shards for `gone`, `keep` joins it, and `gone` is dropped: its ids are free again,
    // so only the colocation is in the way.
    const plan = ok(dist(c0, 'a', { colocateWith: 'none', shardCount: 2 }));
    let m = ok(dist(c0, 'gone', { colocateWith: 'none', shardCount: 3 })).catalog;
    m = ok(dist(m, 'keep', { colocateWith: 'gone' })).catalog;
    m = ok(undistribute(m, rel('gone'))).catalog;
    assert.equal(m.tables.get('public.keep')!.colocationId, plan.table.colocationId);
    assert.equal(m.tables.get('public.keep')!.firstShardId, 102013);
    refused(
      applyPlanned(m, plan),
      '40001',
      'the sharding catalog changed while distributing "a"',
      'colocation 2 was made for another placement.',
    );
    const moved = ok(undistribute(m, rel('keep'))).catalog;
    refused(applyPlanned(m, plan), '40001', 'the sharding catalog changed while distributing "a"');
    assert.ok(!isCatalogError(applyPlanned(moved, plan)), 'with the colocation gone again it fits');
  });

  test('a planned group that left meanwhile: 40001', () => {
    const e = emptyCatalog(['0', '1', '2']);
    const plan = ok(dist(e, 'a', { shardCount: 3 }));
    const fewer = withGroups(e, ['0', '1']);
    assert.ok(!isCatalogError(fewer));
    refused(
      applyPlanned(fewer, plan),
      '40001',
      'the sharding catalog changed while distributing "a"',
      'group "2" left the catalog.',
    );
  });

  test('a planned reference table joins the reference colocation made meanwhile', () => {
    const e = emptyCatalog(['0', '1']);
    const plan = ok(reference(e, rel('r')));
    let m = ok(dist(e, 'u')).catalog;
    m = ok(reference(m, rel('q'))).catalog;
    m = ok(undistribute(m, rel('u'))).catalog;
    const refColocation = m.tables.get('public.q')!.colocationId;
    assert.notEqual(refColocation, plan.table.colocationId);
    const c = applyPlanned(m, plan);
    assert.ok(!isCatalogError(c));
    assert.equal(c.tables.get('public.r')!.colocationId, refColocation);
    assert.equal(c.tables.get('public.r')!.firstShardId, plan.table.firstShardId);
    assert.equal([...c.colocations.values()].filter((x) => x.type === null).length, 1);
  });
});
