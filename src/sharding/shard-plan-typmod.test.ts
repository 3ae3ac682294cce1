// Distribution columns with a type modifier (numeric(p, s), varchar(n), char(n)): a value being
// stored (INSERT rows, UPDATE … SET k) is routed as PostgreSQL stores it — rounded to the scale,
// trailing spaces beyond n cut — and refused with PostgreSQL's SQLSTATE when it does not fit;
// a value compared in WHERE is routed as written (PostgreSQL does not coerce it). With the real
// partition hash (hash.ts); its parity with PostgreSQL is test/sharding-hash.test.ts's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { loadParser } from '../sql/pg-parser.js';
import { decode, encode } from './catalog-codec.js';
import { hashRemainder } from './hash.js';
import { resolveShards, shardKeyPlan, type ShardRoute } from './shard-plan.js';
import { FIRST_SHARD_ID, relKey, type Catalog, type ColumnValue, type DistributedTable } from './types.js';

await loadParser();

/** atttypmod of numeric(p, s), varchar(n), char(n). */
const numericTypmod = (p: number, s: number): number => ((p << 16) | (s & 0x7ff)) + 4;
const charTypmod = (n: number): number => n + 4;

const SHARDS = 32;
const PLACEMENT = Array.from({ length: SHARDS }, (_, r) => String(r % 2));

function table(name: string, type: 'numeric' | 'varchar' | 'bpchar', typmod: number, colocationId: number) {
  const t: DistributedTable = {
    rel: { schema: 'public', name },
    kind: 'distributed',
    column: 'k',
    type,
    typmod,
    colocationId,
    firstShardId: FIRST_SHARD_ID + SHARDS * (colocationId - 1),
  };
  return t;
}

const tables = [
  table('prices', 'numeric', numericTypmod(10, 2), 1),
  table('codes', 'varchar', charTypmod(5), 2),
  table('tags', 'bpchar', charTypmod(8), 3),
];
const catalog: Catalog = {
  version: 1,
  tables: new Map(tables.map((t) => [relKey(t.rel), t])),
  colocations: new Map(
    (['numeric', 'varchar', 'bpchar'] as const).map((type, i) => [
      i + 1,
      { id: i + 1, shardCount: SHARDS, type, placement: PLACEMENT },
    ]),
  ),
  groups: ['0', '1'],
  nextShardId: FIRST_SHARD_ID + 3 * SHARDS,
};

const t = (text: string): ColumnValue => ({ format: 'text', text });

function route(sql: string, params: (ColumnValue | null)[] = []): ShardRoute {
  return resolveShards(shardKeyPlan(sql, catalog), params, hashRemainder);
}

/** The route of a row of `name` whose stored key is `stored`. */
function storedAt(name: string, stored: string): ShardRoute {
  const tb = catalog.tables.get(`public.${name}`)!;
  const r = hashRemainder(tb.type!, t(stored), SHARDS);
  return { kind: 'one', group: PLACEMENT[r]!, shards: [tb.firstShardId + r] };
}

const sqlLiteral = (s: string): string => `'${s.replace(/'/g, "''")}'`;

test('numeric(10,2): an INSERTed value is routed rounded to the scale (literal, text parameter, UPDATE … SET)', () => {
  fc.assert(
    fc.property(fc.integer({ min: -99999, max: 99999 }), fc.integer({ min: 0, max: 99999 }), (i, f) => {
      const written = `${i}.${String(f).padStart(5, '0')}`; // five decimals: rounds to two
      // Half away from zero as PostgreSQL rounds, on the digits (not in binary floating point).
      const exact = roundHalfAway(written, 2);
      const want = storedAt('prices', exact);
      assert.deepEqual(route(`INSERT INTO prices (k) VALUES (${written})`), want, written);
      assert.deepEqual(route(`INSERT INTO prices (k) VALUES ('${written}')`), want, written);
      assert.deepEqual(
        route('INSERT INTO prices (k, v) VALUES ($1, $2)', [t(written), t('x')]),
        want,
        written,
      );
      // An UPDATE that sets the key to the value it already has once stored stays on its group.
      assert.deepEqual(
        route(`UPDATE prices SET k = ${written} WHERE k = ${exact}`),
        storedAt('prices', exact),
        written,
      );
    }),
    { numRuns: 300, seed: 15 },
  );
});

test('numeric(10,2): a WHERE value is routed as written; an overflow is refused with 22003', () => {
  assert.deepEqual(route('SELECT * FROM prices WHERE k = 12.345'), storedAt('prices', '12.345'));
  const r = route('INSERT INTO prices (k) VALUES (123456789.1)');
  assert.equal(r.kind, 'error');
  assert.equal(r.kind === 'error' ? r.sqlstate : '', '22003');
  const inf = route("INSERT INTO prices (k) VALUES ('Infinity')");
  assert.equal(inf.kind === 'error' ? inf.sqlstate : inf.kind, '22003');
});

test('varchar(5) and char(8): trailing spaces beyond n are cut; a longer value is refused with 22001', () => {
  assert.deepEqual(route(`INSERT INTO codes (k) VALUES ('abc    ')`), storedAt('codes', 'abc  '));
  assert.deepEqual(route('INSERT INTO codes (k) VALUES ($1)', [t('abcde   ')]), storedAt('codes', 'abcde'));
  const long = route(`INSERT INTO codes (k) VALUES ('abcdef')`);
  assert.equal(long.kind === 'error' ? long.sqlstate : long.kind, '22001');
  assert.deepEqual(route(`INSERT INTO tags (k) VALUES ('abc')`), storedAt('tags', 'abc'));
  assert.deepEqual(route(`INSERT INTO tags (k) VALUES ('abcdefgh   ')`), storedAt('tags', 'abcdefgh'));
  const tooLong = route('INSERT INTO tags (k) VALUES ($1)', [t('abcdefghi')]);
  assert.equal(tooLong.kind === 'error' ? tooLong.sqlstate : tooLong.kind, '22001');
  // Compared in WHERE, a too-long value is no error: it matches no row.
  assert.equal(route(`SELECT * FROM codes WHERE k = ${sqlLiteral('abcdef')}`).kind, 'one');
});

test('the catalog keeps the typmod; a catalog stored without it reads as none', () => {
  const back = decode(encode(catalog));
  assert.equal(back.tables.get('public.prices')!.typmod, numericTypmod(10, 2));
  const old = JSON.parse(encode(catalog)) as { tables: Record<string, unknown>[] };
  for (const row of old.tables) delete row.typmod;
  const read = decode(JSON.stringify(old));
  assert.equal(read.tables.get('public.prices')!.typmod, undefined);
  // Without a typmod, the value is routed as written (what catalogs from before did).
  const plan = shardKeyPlan('INSERT INTO prices (k) VALUES (12.345)', read);
  assert.deepEqual(resolveShards(plan, [], hashRemainder), storedAt('prices', '12.345'));
});

/** `text` (a plain decimal) rounded half away from zero to `scale` decimals, as numeric does. */
function roundHalfAway(text: string, scale: number): string {
  const negative = text.startsWith('-');
  const [int, frac = ''] = text.replace(/^-/, '').split('.');
  const digits = BigInt(int! + frac.padEnd(scale + 1, '0').slice(0, scale + 1));
  const rounded = (digits + 5n) / 10n;
  const s = rounded.toString().padStart(scale + 1, '0');
  const out = `${s.slice(0, s.length - scale)}.${s.slice(s.length - scale)}`;
  return negative && rounded !== 0n ? `-${out}` : out;
}
