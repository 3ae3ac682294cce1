/**
 * Hash parity with a real PostgreSQL (every build the harness finds: the system one and the
 * embedded one): for every distribution type, many generated values, the proxy's partition hash
 * (src/sharding/hash.ts) must agree with the server's, bit for bit —
 *   - the 64-bit row hash, against the type's extended hash function with HASH_PARTITION_SEED;
 *   - the remainder for moduli 1, 2, 3, 7, 32, 64, against satisfies_hash_partition();
 *   - the partition a row actually lands in (modulus 32), inserted with text values and, one
 *     Bind parameter per value, in binary format (the `pg` driver sends a Buffer as binary);
 *   - columns with a type modifier (numeric(p,s), varchar(n), char(n)): the value is rounded or
 *     cut before it is routed, and refused with the same SQLSTATE;
 *   - text the type's input function refuses: the same SQLSTATE.
 * Values travel in arrays and multi-row statements: a handful of round trips per type.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import pg from 'pg';
import { binarySets, makeCluster, withoutHa } from './harness.js';
import type { TestCluster } from './harness.js';
import { directTarget } from './drivers/target.js';
import { hashRemainder, HashInputError, partitionHash } from '../src/sharding/hash.js';
import { DIST_TYPES } from '../src/sharding/types.js';
import type { ColumnValue, DistType } from '../src/sharding/types.js';

const MODULI = [1, 2, 3, 7, 32, 64];
const RUNS = 250;
const SEED = Number(process.env.PGSCALE_HASH_SEED ?? Date.now() % 1_000_000);

/** The type's extended hash as SQL, on `v`; HASH_PARTITION_SEED is 8816678312871386365. */
const HASH_SQL: Record<DistType, string> = {
  int2: 'hashint2extended(v, 8816678312871386365)',
  int4: 'hashint4extended(v, 8816678312871386365)',
  int8: 'hashint8extended(v, 8816678312871386365)',
  text: 'hashtextextended(v, 8816678312871386365)',
  varchar: 'hashtextextended(v, 8816678312871386365)',
  bpchar: 'hashbpcharextended(v, 8816678312871386365)',
  uuid: 'uuid_hash_extended(v, 8816678312871386365)',
  numeric: 'hash_numeric_extended(v, 8816678312871386365)',
};

const spaces = fc.constantFrom('', ' ', '  ', ' \t ', '\n');
const noNul = (s: string): string => s.replaceAll('\0', '');

function intText(min: bigint, max: bigint): fc.Arbitrary<string> {
  const edge = fc.constantFrom(
    min,
    max,
    0n,
    -1n,
    1n,
    min + 1n,
    max - 1n,
    2147483647n,
    -2147483648n,
    2147483648n,
    -2147483649n,
  );
  const n = fc.oneof(
    fc.bigInt({ min, max }),
    fc.bigInt({ min: min > -70000n ? min : -70000n, max: max < 70000n ? max : 70000n }),
    edge.filter((v) => v >= min && v <= max),
  );
  return fc
    .tuple(spaces, fc.constantFrom('', '+'), n, spaces)
    .map(([a, plus, v, b]) => `${a}${v >= 0n ? plus : ''}${v}${b}`);
}

function numericText(modern: boolean): fc.Arbitrary<string> {
  const digits = (max: number) => fc.stringMatching(new RegExp(`^[0-9]{1,${max}}$`));
  const decimal = fc
    .tuple(
      fc.constantFrom('', '-', '+'),
      digits(25),
      fc.option(fc.oneof(digits(25), fc.constant('')), { nil: undefined }),
      fc.option(fc.integer({ min: -60, max: 60 }), { nil: undefined }),
    )
    .map(([s, i, f, e]) => `${s}${i}${f === undefined ? '' : `.${f}`}${e === undefined ? '' : `e${e}`}`);
  const arbs = [
    decimal,
    fc.stringMatching(/^-?0\.0{0,12}[1-9][0-9]{0,8}$/),
    fc.stringMatching(/^-?[1-9]0{0,40}(\.0{0,10})?$/),
    fc.constantFrom(
      'NaN',
      'nan',
      'Infinity',
      '-Infinity',
      ' inf ',
      '0',
      '-0',
      '0.000',
      '1',
      '1.0',
      '1.00',
      '9999.9999',
      '10000',
      '1e131071',
    ),
  ];
  if (modern) arbs.push(fc.constantFrom('1_000.000_5', '0xFF', '-0o17', '0b_1010', '1_2e1_0'));
  return fc.oneof(...arbs);
}

function uuidText(): fc.Arbitrary<string> {
  return fc.tuple(fc.uuid(), fc.integer({ min: 0, max: 3 })).map(([u, form]) => {
    if (form === 1) return u.toUpperCase();
    if (form === 2) return `{${u}}`;
    if (form === 3) return u.replaceAll('-', '');
    return u;
  });
}

function textArb(type: DistType, modern: boolean): fc.Arbitrary<string> {
  switch (type) {
    case 'int2':
      return intText(-32768n, 32767n);
    case 'int4':
      return intText(-2147483648n, 2147483647n);
    case 'int8':
      return intText(-(1n << 63n), (1n << 63n) - 1n);
    case 'uuid':
      return uuidText();
    case 'numeric':
      return numericText(modern);
    default:
      return fc
        .tuple(fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ maxLength: 30 })), spaces)
        .map(([s, pad]) => noNul(s) + (type === 'bpchar' ? pad.replaceAll(/[\t\n]/g, ' ') : ''));
  }
}

/** A random value in numeric's binary wire format, including digits its dscale hides. */
const numericWire = fc
  .tuple(
    fc.array(fc.integer({ min: 0, max: 9999 }), { maxLength: 8 }),
    fc.integer({ min: -20, max: 20 }),
    fc.constantFrom(0x0000, 0x4000, 0x0000, 0x4000, 0xc000),
    fc.integer({ min: 0, max: 40 }),
  )
  .map(([digits, weight, sign, dscale]) => {
    const b = Buffer.alloc(8 + 2 * digits.length);
    b.writeUInt16BE(digits.length, 0);
    b.writeInt16BE(weight, 2);
    b.writeUInt16BE(sign, 4);
    b.writeUInt16BE(dscale, 6);
    digits.forEach((d, i) => b.writeUInt16BE(d, 8 + 2 * i));
    return b;
  });

/** The binary Bind parameters the same values would be sent as (numeric: random wire values). */
function binaryValues(type: DistType, texts: readonly string[]): Buffer[] {
  switch (type) {
    case 'int2':
    case 'int4':
    case 'int8': {
      const size = type === 'int2' ? 2 : type === 'int4' ? 4 : 8;
      return texts.map((t) => {
        const b = Buffer.alloc(8);
        b.writeBigInt64BE(BigInt(t.trim()));
        return b.subarray(8 - size);
      });
    }
    case 'uuid':
      return texts.map((t) => Buffer.from(t.replace(/[{}-]/g, ''), 'hex'));
    case 'numeric':
      return fc.sample(numericWire, { numRuns: texts.length, seed: SEED });
    default:
      return texts.map((t) => Buffer.from(t, 'utf8'));
  }
}

/** Columns with a type modifier, and values around what they hold. */
const TYPMOD_COLUMNS: { name: string; type: DistType; decl: string; values: fc.Arbitrary<string> }[] = [
  {
    name: 'n72',
    type: 'numeric',
    decl: 'numeric(7,2)',
    values: fc.oneof(
      fc.stringMatching(/^-?[0-9]{0,6}\.[0-9]{1,5}$/),
      fc.constantFrom('99999.995', '99999.994', '-0.005', '0.004', 'NaN', 'Infinity'),
    ),
  },
  {
    name: 'nneg',
    type: 'numeric',
    decl: 'numeric(5,-2)',
    values: fc.oneof(
      fc.stringMatching(/^-?[0-9]{1,8}(\.[0-9]{1,3})?$/),
      fc.constantFrom('49', '50', '-150', '9999949', '9999950'),
    ),
  },
  {
    name: 'n35',
    type: 'numeric',
    decl: 'numeric(3,5)',
    values: fc.oneof(
      fc.stringMatching(/^0\.00[0-9]{1,6}$/),
      fc.constantFrom('0.009995', '0.009994', '0.01', '0'),
    ),
  },
  { name: 'vc5', type: 'varchar', decl: 'varchar(5)', values: shortText() },
  { name: 'bc5', type: 'bpchar', decl: 'char(5)', values: shortText() },
];

function shortText(): fc.Arbitrary<string> {
  const chars = fc.constantFrom('a', 'b', 'é', '日', '𝄞', ' ', ' ', '\t');
  return fc.array(chars, { maxLength: 9 }).map((a) => a.join(''));
}

/** Integers of `bits` bits (and a little beyond) written in PostgreSQL 16+'s forms. */
function modernInt(bits: bigint): fc.Arbitrary<string> {
  const limit = 1n << (bits - 1n);
  const group = (digits: string, every: number) =>
    digits.replace(new RegExp(`\\B(?=(.{${every}})+$)`, 'g'), '_');
  return fc
    .tuple(
      fc.bigInt({ min: -limit - 2n, max: limit + 1n }),
      fc.constantFrom(2, 8, 10, 16),
      fc.boolean(),
      fc.boolean(),
    )
    .map(([v, base, underscores, afterPrefix]) => {
      const abs = (v < 0n ? -v : v).toString(base);
      const digits = underscores ? group(abs, base === 10 ? 3 : 4) : abs;
      const prefix =
        base === 10 ? '' : `0${base === 16 ? 'x' : base === 8 ? 'o' : 'b'}${afterPrefix ? '_' : ''}`;
      return `${v < 0n ? '-' : ''}${prefix}${digits}`;
    });
}

/** Text that is often not a valid value of the type: typos, overflow, stray characters. */
function junk(type: DistType): fc.Arbitrary<string> {
  const valid = textArb(type, true);
  return fc.oneof(
    valid,
    fc.string({ maxLength: 12 }).map(noNul),
    fc
      .tuple(valid, fc.string({ maxLength: 2 }), fc.nat(40))
      .map(([v, ins, at]) => noNul(v.slice(0, at) + ins + v.slice(at))),
    valid.map((v) => v + '9'.repeat(20)),
    fc.constantFrom(
      '',
      ' ',
      '-',
      '+',
      '1e',
      '.',
      '--1',
      '1-',
      '0x',
      '1 2',
      '1.5',
      'NaN',
      '-NaN',
      '1e131072',
      '{}',
      '9223372036854775808',
      '-9223372036854775809',
      '99999999999999999999x',
      '12345678901x',
      '2147483648_',
      '32768 x',
      '1e9999999999x',
      '.e9999999999x',
      '0x',
      '1_',
    ),
  );
}

const sets = binarySets();
if (sets.length === 0) throw new Error('no PostgreSQL binaries found for the integration tests');

for (const bins of sets) {
  describe(`partition hash parity with PostgreSQL ${bins.version} (seed ${SEED})`, () => {
    let tc: TestCluster | undefined;
    let client: pg.Client;

    before(async () => {
      tc = await makeCluster(bins, { replicas: 0, extra: withoutHa });
      await tc.cluster.up();
      const t = directTarget(tc);
      client = new pg.Client({ ...t.admin, database: t.database });
      await client.connect();
      const ddl: string[] = [];
      for (const type of DIST_TYPES) {
        ddl.push(`CREATE TABLE h_${type} (i int, v ${type}) PARTITION BY HASH (v)`);
        for (let r = 0; r < 32; r++) {
          ddl.push(
            `CREATE TABLE h_${type}_${r} PARTITION OF h_${type} FOR VALUES WITH (MODULUS 32, REMAINDER ${r})`,
          );
        }
      }
      for (const col of TYPMOD_COLUMNS) {
        ddl.push(`CREATE TABLE t_${col.name} (i int, v ${col.decl}) PARTITION BY HASH (v)`);
        for (let r = 0; r < 32; r++) {
          ddl.push(
            `CREATE TABLE t_${col.name}_${r} PARTITION OF t_${col.name} FOR VALUES WITH (MODULUS 32, REMAINDER ${r})`,
          );
        }
      }
      // Stores one value as an INSERT of a literal would (the column's input function and type
      // modifier) and says where it went, or the SQLSTATE it was refused with.
      ddl.push(`CREATE FUNCTION place(tbl text, v text) RETURNS text LANGUAGE plpgsql AS $f$
        DECLARE part text;
        BEGIN
          EXECUTE format('INSERT INTO %I (v) VALUES (%L) RETURNING tableoid::regclass::text', tbl, v) INTO part;
          RETURN part;
        EXCEPTION WHEN others THEN RETURN 'ERROR ' || SQLSTATE;
        END $f$`);
      await client.query(ddl.join(';\n'));
    });

    /** Where PostgreSQL stores each value (or the SQLSTATE it refuses it with), one round trip. */
    async function placeAll(table: string, texts: readonly string[]): Promise<string[]> {
      const r = await client.query<{ i: string; p: string }>(
        'SELECT i, place($1, v) AS p FROM unnest($2::text[]) WITH ORDINALITY AS u(v, i) ORDER BY i',
        [table, texts],
      );
      return r.rows.map((row) => row.p);
    }

    /** Our answer in place()'s words. */
    function ours(table: string, type: DistType, value: ColumnValue, typmod = -1): string {
      try {
        return `${table}_${hashRemainder(type, value, 32, typmod)}`;
      } catch (e) {
        if (e instanceof HashInputError) return `ERROR ${e.sqlstate}`;
        throw e;
      }
    }

    after(async () => {
      await client?.end().catch(() => undefined);
      await tc?.cleanup();
    });

    for (const type of DIST_TYPES) {
      test(`${type}: 64-bit hash, remainders and the partition of inserted rows`, async () => {
        const texts = fc.sample(textArb(type, bins.major >= 16), { numRuns: RUNS, seed: SEED });

        // The 64-bit row hash: hash_combine64(0, h) = h + 0x49a0f4dd15e5a8e3 mod 2^64.
        const full = await client.query<{ i: string; h: string }>(
          `SELECT i, ((${HASH_SQL[type]}::numeric + 18446744073709551616 + 5305509591434766563)
                      % 18446744073709551616)::text AS h
             FROM unnest($1::${type}[]) WITH ORDINALITY AS u(v, i)`,
          [texts],
        );
        assert.equal(full.rows.length, texts.length);
        for (const row of full.rows) {
          const v = texts[Number(row.i) - 1]!;
          assert.equal(
            partitionHash(type, { format: 'text', text: v }),
            BigInt(row.h),
            `${type} ${JSON.stringify(v)}`,
          );
        }

        // Every modulus: the one remainder satisfies_hash_partition accepts.
        const rem = await client.query<{ i: string; m: number; r: number }>(
          `SELECT u.i, m, r
             FROM unnest($1::${type}[]) WITH ORDINALITY AS u(v, i),
                  unnest($2::int[]) AS m, generate_series(0, m - 1) AS r
            WHERE satisfies_hash_partition('h_${type}'::regclass, m, r, u.v)`,
          [texts, MODULI],
        );
        assert.equal(rem.rows.length, texts.length * MODULI.length);
        for (const row of rem.rows) {
          const v = texts[Number(row.i) - 1]!;
          const got = hashRemainder(type, { format: 'text', text: v }, row.m);
          assert.equal(got, row.r, `${type} ${JSON.stringify(v)} modulus ${row.m}`);
        }

        // The partition PostgreSQL itself routes a row to, values as text …
        const ins = await client.query<{ i: string; part: string }>(
          `INSERT INTO h_${type} (i, v) SELECT i, v FROM unnest($1::${type}[]) WITH ORDINALITY AS u(v, i)
           RETURNING i, tableoid::regclass::text AS part`,
          [texts],
        );
        for (const row of ins.rows) {
          const v = texts[Number(row.i) - 1]!;
          assert.equal(
            `h_${type}_${hashRemainder(type, { format: 'text', text: v }, 32)}`,
            row.part,
            JSON.stringify(v),
          );
        }

        // … and as binary Bind parameters, one per value.
        const bin = binaryValues(type, texts);
        const values = bin.map((_, k) => `(${k + 1}, $${k + 1})`).join(', ');
        const binIns = await client.query<{ i: number; part: string }>(
          `INSERT INTO h_${type} (i, v) VALUES ${values} RETURNING i, tableoid::regclass::text AS part`,
          bin,
        );
        assert.equal(binIns.rows.length, bin.length);
        for (const row of binIns.rows) {
          const b = bin[row.i - 1]!;
          const want = `h_${type}_${hashRemainder(type, { format: 'binary', bytes: b }, 32)}`;
          assert.equal(want, row.part, `${type} binary ${b.toString('hex')}`);
        }
      });
    }

    for (const col of TYPMOD_COLUMNS) {
      test(`${col.decl}: the type modifier applied before routing (rounding, cut spaces, refusals)`, async () => {
        const att = await client.query<{ t: number }>(
          `SELECT atttypmod AS t FROM pg_attribute WHERE attrelid = 't_${col.name}'::regclass AND attname = 'v'`,
        );
        const typmod = att.rows[0]!.t;
        const texts = fc.sample(col.values, { numRuns: RUNS, seed: SEED });
        const placed = await placeAll(`t_${col.name}`, texts);
        texts.forEach((v, k) => {
          assert.equal(
            ours(`t_${col.name}`, col.type, { format: 'text', text: v }, typmod),
            placed[k],
            JSON.stringify(v),
          );
        });
        // Binary parameters that fit, in one multi-row INSERT.
        const bin = binaryValues(col.type, texts).filter(
          (b) => !ours('t', col.type, { format: 'binary', bytes: b }, typmod).startsWith('ERROR'),
        );
        assert.ok(bin.length > 0, 'some binary values fit the column');
        const values = bin.map((_, k) => `(${k + 1}, $${k + 1})`).join(', ');
        const binIns = await client.query<{ i: number; part: string }>(
          `INSERT INTO t_${col.name} (i, v) VALUES ${values} RETURNING i, tableoid::regclass::text AS part`,
          bin,
        );
        for (const row of binIns.rows) {
          const b = bin[row.i - 1]!;
          assert.equal(
            ours(`t_${col.name}`, col.type, { format: 'binary', bytes: b }, typmod),
            row.part,
            b.toString('hex'),
          );
        }
      });
    }

    test('numeric(p,s), varchar(n), char(n) with random modifiers: values with more decimals or characters than fit', async () => {
      // PostgreSQL 15+ allows a scale below 0 or above the precision.
      const wide = bins.major >= 15;
      const mods = fc.sample(
        fc.oneof(
          fc
            .integer({ min: 1, max: 30 })
            .chain((p) =>
              fc.record({
                kind: fc.constant('numeric' as const),
                p: fc.constant(p),
                s: fc.integer({ min: wide ? -3 : 0, max: wide ? p + 2 : p }),
              }),
            ),
          fc.record({
            kind: fc.constantFrom('varchar' as const, 'bpchar' as const),
            p: fc.integer({ min: 1, max: 12 }),
            s: fc.constant(0),
          }),
        ),
        { numRuns: 12, seed: SEED },
      );
      for (const [m, mod] of mods.entries()) {
        const table = `r_${m}`;
        const decl =
          mod.kind === 'numeric'
            ? `numeric(${mod.p},${mod.s})`
            : `${mod.kind === 'varchar' ? 'varchar' : 'char'}(${mod.p})`;
        const parts = Array.from(
          { length: 32 },
          (_, r) =>
            `CREATE TABLE ${table}_${r} PARTITION OF ${table} FOR VALUES WITH (MODULUS 32, REMAINDER ${r})`,
        );
        await client.query(
          `CREATE TABLE ${table} (i int, v ${decl}) PARTITION BY HASH (v); ${parts.join(';')}`,
        );
        const att = await client.query<{ t: number }>(
          `SELECT atttypmod AS t FROM pg_attribute WHERE attrelid = '${table}'::regclass AND attname = 'v'`,
        );
        const typmod = att.rows[0]!.t;
        // Numbers with up to s + 4 decimals and about p - s digits before the point (some too many),
        // texts up to n + 3 characters (some with trailing spaces only beyond n).
        const intDigits = Math.max(0, mod.p - mod.s);
        const values =
          mod.kind === 'numeric'
            ? fc
                .tuple(
                  fc.boolean(),
                  fc.stringMatching(new RegExp(`^[0-9]{0,${Math.min(intDigits + 1, 40)}}$`)),
                  fc.stringMatching(new RegExp(`^[0-9]{1,${Math.max(1, mod.s + 4)}}$`)),
                )
                .map(([neg, i, f]) => `${neg ? '-' : ''}${i}.${f}`)
            : fc
                .tuple(
                  fc.stringMatching(new RegExp(`^[a-z]{0,${mod.p + 1}}$`)),
                  fc.constantFrom('', ' ', '   ', '    x'),
                )
                .map(([a, b]) => a + b);
        const texts = fc.sample(values, { numRuns: 60, seed: SEED + m });
        const placed = await placeAll(table, texts);
        texts.forEach((v, k) => {
          assert.equal(
            ours(table, mod.kind, { format: 'text', text: v }, typmod),
            placed[k],
            `${decl} ${JSON.stringify(v)}`,
          );
        });
      }
    });

    test(
      'PostgreSQL 16+ literals: 0x/0o/0b integers and _ between digits',
      { skip: bins.major < 16 },
      async () => {
        for (const type of ['int2', 'int4', 'int8', 'numeric'] as const) {
          const bits = type === 'int2' ? 16n : type === 'int4' ? 32n : 64n;
          const texts = fc.sample(modernInt(bits), { numRuns: RUNS, seed: SEED });
          const placed = await placeAll(`h_${type}`, texts);
          texts.forEach((v, k) =>
            assert.equal(ours(`h_${type}`, type, { format: 'text', text: v }), placed[k], v),
          );
        }
      },
    );

    test('text PostgreSQL refuses is refused with the same SQLSTATE', async () => {
      for (const type of ['int2', 'int4', 'int8', 'uuid', 'numeric'] as const) {
        const texts = fc.sample(junk(type), { numRuns: RUNS, seed: SEED });
        const placed = await placeAll(`h_${type}`, texts);
        // The sample must hold both kinds, or it proves nothing.
        const refused = placed.filter((p) => p.startsWith('ERROR')).length;
        assert.ok(
          refused >= 10 && refused <= texts.length - 10,
          `${type}: ${refused} of ${texts.length} refused`,
        );
        texts.forEach((v, k) => {
          const mine = ours(`h_${type}`, type, { format: 'text', text: v });
          // PostgreSQL 16 added 0x/0o/0b and `_` in numbers; older servers refuse what we accept.
          if (bins.major < 16 && /_|^\s*[+-]?0[xXoObB]/.test(v) && placed[k] === 'ERROR 22P02') return;
          assert.equal(mine, placed[k], `${type} ${JSON.stringify(v)}`);
        });
      }
    });
  });
}
