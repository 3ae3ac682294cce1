import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { catalogs } from './catalog-arbitrary.test-util.js';
import { CatalogFormatError, decode, distribute, emptyCatalog, encode, reference } from './catalog.js';
import type { Catalog } from './types.js';

function sample(): Catalog {
  let c = emptyCatalog(['0', '1']);
  const a = distribute(c, {
    rel: { schema: 'public', name: 'users' },
    column: 'id',
    type: 'int8',
    shardCount: 4,
  });
  assert.ok('catalog' in a);
  const b = reference(a.catalog, { schema: 'public', name: 'countries' });
  assert.ok('catalog' in b);
  c = b.catalog;
  return c;
}

/** The sample's stored document, for editing one field at a time. */
const doc = () =>
  JSON.parse(encode(sample())) as Record<string, unknown> & {
    colocations: Record<string, unknown>[];
    tables: Record<string, unknown>[];
  };

function rejects(text: string, pattern: RegExp): void {
  assert.throws(
    () => decode(text),
    (e: unknown) => e instanceof CatalogFormatError && pattern.test(e.message),
    `expected a CatalogFormatError matching ${pattern}`,
  );
}

describe('encode / decode', () => {
  test('decode(encode(c)) equals c for generated catalogs', () => {
    fc.assert(
      fc.property(catalogs, (c) => {
        const back = decode(encode(c));
        assert.deepStrictEqual(back, c);
        assert.equal(encode(back), encode(c), 'equal catalogs encode to equal text');
      }),
      { numRuns: 300 },
    );
  });

  test('the stored form is versioned JSON with Citus-like field names', () => {
    const d = doc();
    assert.equal(d.format, 1);
    assert.deepEqual(d.tables[1], {
      schema: 'public',
      name: 'users',
      kind: 'distributed',
      column: 'id',
      type: 'int8',
      colocation_id: 1,
      first_shard_id: 102008,
    });
    assert.deepEqual(d.colocations[0], {
      id: 1,
      shard_count: 4,
      type: 'int8',
      placement: ['0', '1', '0', '1'],
    });
  });

  test('garbage is a CatalogFormatError, never another exception', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.json(),
          fc.jsonValue().map((v) => JSON.stringify(v)),
        ),
        (text) => {
          try {
            decode(text);
          } catch (e) {
            assert.ok(e instanceof CatalogFormatError, String(e));
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  test('a valid document with one field changed decodes or is refused clearly', () => {
    const base = encode(sample());
    const anyValue = fc.oneof(
      fc.jsonValue(),
      fc.constant(undefined),
      fc.integer(),
      fc.constantFrom('0', '1', 'int8', 'reference'),
    );
    fc.assert(
      fc.property(fc.nat(), fc.nat(), anyValue, (i, j, v) => {
        const d = JSON.parse(base) as Record<string, unknown>;
        const paths: [Record<string, unknown>, string][] = [];
        const walk = (o: Record<string, unknown>) => {
          for (const [k, x] of Object.entries(o)) {
            paths.push([o, k]);
            if (typeof x === 'object' && x !== null) walk(x as Record<string, unknown>);
          }
        };
        walk(d);
        const [o, k] = paths[(i + j) % paths.length]!;
        o[k] = v;
        try {
          decode(JSON.stringify(d));
        } catch (e) {
          assert.ok(e instanceof CatalogFormatError, String(e));
        }
      }),
      { numRuns: 500 },
    );
  });

  test('each broken rule is named', () => {
    rejects('{', /is not JSON/);
    rejects('[]', /the catalog is not an object/);
    rejects(JSON.stringify({ ...doc(), format: 2 }), /format 2 is not 1/);
    rejects(JSON.stringify({ ...doc(), version: -1 }), /version is not an integer ≥ 0/);
    rejects(JSON.stringify({ ...doc(), groups: ['0', '0'] }), /lists a group twice/);
    let d = doc();
    d.colocations[0]!.placement = ['0', '1', '0', '9'];
    rejects(JSON.stringify(d), /placement\[3\] names group "9", which is not in groups/);
    d = doc();
    d.colocations[0]!.placement = ['0'];
    rejects(JSON.stringify(d), /placement has 1 groups for 4 shards/);
    d = doc();
    d.colocations[0]!.shard_count = 64001;
    rejects(JSON.stringify(d), /shard_count 64001 is above 64000/);
    d = doc();
    d.tables[1]!.colocation_id = 7;
    rejects(JSON.stringify(d), /colocation 7 does not exist/);
    d = doc();
    d.tables[1]!.type = 'int4';
    rejects(JSON.stringify(d), /type int4 differs from colocation 1's int8/);
    d = doc();
    d.tables[1]!.type = 'float8';
    rejects(JSON.stringify(d), /type is not one of int2/);
    d = doc();
    d.tables[0]!.first_shard_id = 102009;
    rejects(JSON.stringify(d), /share shard ids|reach next_shard_id/);
    d = doc();
    d.tables[1]!.first_shard_id = 102010;
    rejects(JSON.stringify(d), /reach next_shard_id 102013/);
    d = doc();
    d.tables.push({ ...d.tables[1]! });
    rejects(JSON.stringify(d), /listed twice|share shard ids/);
    d = doc();
    d.tables[0]!.kind = 'local';
    rejects(JSON.stringify(d), /kind must be "distributed" or "reference"/);
    d = doc();
    d.tables[0]!.column = 'x';
    rejects(JSON.stringify(d), /tables\[0\]\.column must be null/);
    d = doc();
    d.tables.pop();
    rejects(JSON.stringify(d), /colocation 1 has no tables/);
    d = doc();
    d.colocations[1]!.shard_count = 2;
    rejects(JSON.stringify(d), /reference tables' colocation has one shard/);
  });

  test("a distribution column's typmod: kept when there is one, absent reads as none, bad ones named", () => {
    const d = doc();
    assert.equal(d.tables[1]!.typmod, undefined); // none: the document is as before typmods were kept
    d.tables[1]!.typmod = 655366; // numeric(10,2)
    const c = decode(JSON.stringify(d));
    assert.equal(c.tables.get('public.users')!.typmod, 655366);
    assert.deepEqual(JSON.parse(encode(c)), d);
    d.tables[1]!.typmod = -1;
    rejects(JSON.stringify(d), /tables\[1\]\.typmod is not an integer ≥ 0/);
    const r = doc();
    r.tables[0]!.typmod = 24;
    rejects(JSON.stringify(r), /a reference table has no distribution column typmod/);
  });
});
