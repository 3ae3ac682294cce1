/**
 * fast-check arbitraries of catalogs for the property tests: a random group list, then a random
 * sequence of the catalog's own operations (distribute with every colocate_with form, reference,
 * undistribute, adding groups), the refused ones skipped, and a random version — so generated
 * catalogs are the ones the rules can produce, names included (quotes, dots, non-ASCII, long).
 */
import fc from 'fast-check';
import {
  distribute,
  emptyCatalog,
  isCatalogError,
  makeCatalog,
  reference,
  undistribute,
  withGroups,
} from './catalog.js';
import { DIST_TYPES } from './types.js';
import type { Catalog, RelName } from './types.js';

const names = fc.oneof(
  fc.constantFrom(
    'users',
    'orders',
    'events',
    'Mixed',
    'a.b',
    'with "quote"',
    'ünïcödé',
    'x'.repeat(63),
    'é'.repeat(31),
  ),
  fc.string({ minLength: 1, maxLength: 12 }),
);
const rels: fc.Arbitrary<RelName> = fc.record({
  schema: fc.constantFrom('public', 'app', 'Other'),
  name: names,
});

type Op =
  | {
      op: 'dist';
      rel: RelName;
      type: string;
      shardCount?: number;
      colocate: 'default' | 'none' | 'table';
      with?: RelName;
    }
  | { op: 'ref'; rel: RelName }
  | { op: 'undist'; rel: RelName }
  | { op: 'group' };

const ops: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('dist' as const),
      rel: rels,
      type: fc.constantFrom(...DIST_TYPES),
      shardCount: fc.option(fc.integer({ min: 1, max: 40 }), { nil: undefined }),
      colocate: fc.constantFrom('default' as const, 'none' as const, 'table' as const),
      with: rels,
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('ref' as const), rel: rels }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('undist' as const), rel: rels }) },
  { weight: 1, arbitrary: fc.constant({ op: 'group' as const }) },
);

function apply(c: Catalog, o: Op): Catalog {
  let r;
  switch (o.op) {
    case 'dist': {
      // Colocate with an existing table half the time, so that path is exercised.
      const existing = [...c.tables.values()][0]?.rel;
      const colocateWith = o.colocate === 'table' ? (existing ?? o.with) : o.colocate;
      r = distribute(c, {
        rel: o.rel,
        column: 'k',
        type: o.type,
        ...(o.colocate === 'table' ? {} : { shardCount: o.shardCount }),
        ...(colocateWith !== undefined ? { colocateWith } : {}),
      });
      break;
    }
    case 'ref':
      r = reference(c, o.rel);
      break;
    case 'undist':
      r = undistribute(c, [...c.tables.values()][0]?.rel ?? o.rel);
      break;
    case 'group':
      r = withGroups(c, [...c.groups, `g${c.groups.length}`]);
      break;
  }
  if (isCatalogError(r)) return c;
  return 'catalog' in r ? r.catalog : r;
}

export const catalogs: fc.Arbitrary<Catalog> = fc
  .tuple(fc.integer({ min: 1, max: 5 }), fc.array(ops, { maxLength: 12 }), fc.nat({ max: 1_000_000 }))
  .map(([n, list, version]) => {
    const c = list.reduce(apply, emptyCatalog(Array.from({ length: n }, (_, i) => String(i))));
    return makeCatalog(version, c.tables, c.colocations, c.groups, c.nextShardId);
  });
