/**
 * Unit tests of the partition hash. The expected 64-bit row hashes were computed on PostgreSQL
 * 15.18 (x86-64) as (<type's extended hash>(v, HASH_PARTITION_SEED) + 0x49a0f4dd15e5a8e3) mod
 * 2^64; test/sharding-hash.test.ts checks many more values against a live server.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkDistributionCollation, hashRemainder, HashInputError, partitionHash } from './hash.js';
import type { ColumnValue, DistType } from './types.js';

const text = (t: string): ColumnValue => ({ format: 'text', text: t });
const binary = (bytes: Buffer): ColumnValue => ({ format: 'binary', bytes });

const KNOWN: [DistType, string, bigint][] = [
  ['int2', '0', 901916981443598768n],
  ['int2', '-1', 288437243775528869n],
  ['int2', '32767', 17315557435858050766n],
  ['int2', '-32768', 11190752103532758141n],
  ['int4', '0', 901916981443598768n],
  ['int4', '-1', 288437243775528869n],
  ['int4', '2147483647', 17701988066039669119n],
  ['int4', '-2147483648', 10244051894435199606n],
  ['int4', '42', 12669485132091644514n],
  ['int4', ' 42 ', 12669485132091644514n],
  ['int8', '0', 901916981443598768n],
  ['int8', '-1', 288437243775528869n],
  ['int8', '9223372036854775807', 10244051894435199606n],
  ['int8', '-9223372036854775808', 17701988066039669119n],
  ['int8', '2147483648', 10244051894435199606n],
  ['int8', '-2147483649', 17701988066039669119n],
  ['int8', '1234567890123', 9539693899603275471n],
  ['int8', '1820000000000000000', 12861630705670495542n],
  ['int8', '-1820000000000000001', 14509366029980489712n],
  ['int8', ' +9223372036854775806 ', 12978303377989783902n],
  ['text', '', 18051608080690800806n],
  ['text', 'a', 17047028206024085342n],
  ['text', 'hello', 2670230039693765524n],
  ['text', 'Ünïcödé ✓ 𝄞 日本語', 9029033140061192914n],
  ['text', '12345678901234567890', 15722470062554382141n],
  ['text', 'a  ', 17651138612210843308n],
  ['varchar', 'hello', 2670230039693765524n],
  ['varchar', 'a  ', 17651138612210843308n],
  ['bpchar', 'a', 17047028206024085342n],
  ['bpchar', 'a  ', 17047028206024085342n],
  ['bpchar', '', 18051608080690800806n],
  ['bpchar', '   ', 18051608080690800806n],
  ['uuid', '00000000-0000-0000-0000-000000000000', 24427445038037925n],
  ['uuid', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 5730022782425327056n],
  ['uuid', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 5730022782425327056n],
  ['uuid', '{a0eebc999c0b4ef8bb6d6bb9bd380a11}', 5730022782425327056n],
  ['uuid', 'a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11', 5730022782425327056n],
  ['uuid', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 5156523127093460353n],
  ['numeric', '1', 2073954498306825025n],
  ['numeric', '1.0', 2073954498306825025n],
  ['numeric', '1.00', 2073954498306825025n],
  ['numeric', '-1', 2073954498306825025n],
  ['numeric', '0', 14122187904306152927n],
  ['numeric', '-0', 14122187904306152927n],
  ['numeric', '0.000', 14122187904306152927n],
  ['numeric', 'NaN', 14122187904306152928n],
  ['numeric', 'Infinity', 14122187904306152928n],
  ['numeric', '-Infinity', 14122187904306152928n],
  ['numeric', ' inf ', 14122187904306152928n],
  ['numeric', '1e-100', 8537064684562708124n],
  ['numeric', '1e100', 2073954498306825002n],
  ['numeric', '99999999999999999999999999999999999999', 4630004598530254603n],
  ['numeric', '0.00012345', 892770958399596194n],
  ['numeric', '-123.456', 7239501107063142905n],
  ['numeric', '10000', 2073954498306825026n],
  ['numeric', '9999.9999', 10171070857590227690n],
];

// left('abcdefghijklmnopqrstuvwxyz', n) for n = 0..26: every tail length of the 12-byte blocks.
const PREFIXES = [
  18051608080690800806n,
  17047028206024085342n,
  5901518622334950432n,
  8934288089726683813n,
  9334894543698614609n,
  10114768684369166524n,
  4646903693598249049n,
  3789272610284323985n,
  15997508480282377109n,
  15891514717572592771n,
  15445969435692547972n,
  3259074282889399131n,
  15875462123530940521n,
  16966499550419038102n,
  95532275262964630n,
  9049613109606003835n,
  2342263138743841834n,
  1015421588669396892n,
  1329315109032130841n,
  11717083244920221302n,
  1575223572008165326n,
  14742777136508557313n,
  7109701560165381459n,
  16427610996441415012n,
  5294550489494490193n,
  6688528176144375970n,
  16580961530067401275n,
];

function sqlstateOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof HashInputError, `expected a HashInputError, got ${String(e)}`);
    return e.sqlstate;
  }
  assert.fail('expected an error');
}

/** numeric's binary wire format for a decimal string (what a driver sends), dscale as written. */
function numericBinary(s: string): Buffer {
  const neg = s.startsWith('-');
  const [ip = '', fp = ''] = s.replace(/^[+-]/, '').split('.');
  const intPad = ip.padStart(Math.ceil(ip.length / 4) * 4, '0');
  const fracPad = fp.padEnd(Math.ceil(fp.length / 4) * 4, '0');
  const digits: number[] = [];
  for (let i = 0; i < intPad.length; i += 4) digits.push(Number(intPad.slice(i, i + 4)));
  for (let i = 0; i < fracPad.length; i += 4) digits.push(Number(fracPad.slice(i, i + 4)));
  const b = Buffer.alloc(8 + 2 * digits.length);
  b.writeUInt16BE(digits.length, 0);
  b.writeInt16BE(intPad.length / 4 - 1, 2);
  b.writeUInt16BE(neg ? 0x4000 : 0, 4);
  b.writeUInt16BE(fp.length, 6);
  digits.forEach((d, i) => b.writeUInt16BE(d, 8 + 2 * i));
  return b;
}

describe('partition hash: values computed on PostgreSQL 15', () => {
  for (const [type, value, want] of KNOWN) {
    test(`${type} ${JSON.stringify(value)}`, () => {
      assert.equal(partitionHash(type, text(value)), want);
      assert.equal(hashRemainder(type, text(value), 32), Number(want % 32n));
      assert.equal(hashRemainder(type, text(value), 7), Number(want % 7n));
    });
  }

  test('a key larger than the reused buffer hashes as the same key built again', () => {
    const big = 'é'.repeat(100_000) + 'x';
    const h = partitionHash('text', text(big));
    partitionHash('text', text('small'));
    assert.equal(partitionHash('text', text(big)), h);
    assert.equal(partitionHash('text', binary(Buffer.from(big))), h);
  });

  test('text of every length 0..26 (each tail of a 12-byte block)', () => {
    const abc = 'abcdefghijklmnopqrstuvwxyz';
    PREFIXES.forEach((want, n) =>
      assert.equal(partitionHash('text', text(abc.slice(0, n))), want, `length ${n}`),
    );
  });
});

describe('partition hash: identities PostgreSQL guarantees', () => {
  test('an int8 that fits in int4 hashes like that int4, and int2 like int4', () => {
    fc.assert(
      fc.property(fc.integer({ min: -2147483648, max: 2147483647 }), (n) => {
        const h = partitionHash('int4', text(String(n)));
        assert.equal(partitionHash('int8', text(String(n))), h);
        if (n >= -32768 && n <= 32767) assert.equal(partitionHash('int2', text(String(n))), h);
      }),
    );
  });

  test('numeric ignores scale, trailing zeros and sign', () => {
    for (const [a, b] of [
      ['1', '1.000000'],
      ['100', '1e2'],
      ['0.5', '5e-1'],
      ['12.3400', '-12.34'],
      ['0', '0e10'],
      ['5.', '5'],
      ['.5', '0.5'],
    ] as const) {
      assert.equal(partitionHash('numeric', text(a)), partitionHash('numeric', text(b)), `${a} vs ${b}`);
    }
  });

  test('numeric: the plain-decimal fast path reads as the general one (forced by a trailing e0)', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[ \t]{0,2}[+-]?0{0,3}[0-9]{0,12}(\.[0-9]{0,12}0{0,3})?[ \n]{0,2}$/),
        (s) => {
          const t = s.trim();
          fc.pre(/[0-9]/.test(t));
          assert.equal(partitionHash('numeric', text(s)), partitionHash('numeric', text(`${t}e0`)), s);
        },
      ),
      { numRuns: 2000 },
    );
  });

  test('bpchar ignores trailing spaces only; text and varchar keep them', () => {
    assert.equal(partitionHash('bpchar', text('ab  ')), partitionHash('text', text('ab')));
    assert.notEqual(partitionHash('bpchar', text('ab\t')), partitionHash('text', text('ab')));
    assert.notEqual(partitionHash('varchar', text('ab ')), partitionHash('varchar', text('ab')));
  });

  test('PostgreSQL 16+ literals: base prefixes and underscores', () => {
    assert.equal(partitionHash('int4', text('0x1F')), partitionHash('int4', text('31')));
    assert.equal(partitionHash('int8', text('-0o17')), partitionHash('int8', text('-15')));
    assert.equal(partitionHash('int2', text('0b_1010')), partitionHash('int2', text('10')));
    assert.equal(partitionHash('int4', text('1_000_000')), partitionHash('int4', text('1000000')));
    assert.equal(partitionHash('numeric', text('1_000.000_5')), partitionHash('numeric', text('1000.0005')));
    assert.equal(partitionHash('numeric', text('0xFF')), partitionHash('numeric', text('255')));
  });

  test('remainder: modulus 1 is always 0; any modulus agrees with the 64-bit hash', () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 1, max: 2147483647 }), (s, m) => {
        fc.pre(!s.includes('\0'));
        const h = partitionHash('text', text(s));
        assert.equal(hashRemainder('text', text(s), m), Number(h % BigInt(m)));
        assert.equal(hashRemainder('text', text(s), 1), 0);
      }),
    );
  });
});

describe('partition hash: binary Bind parameters hash as their text form', () => {
  test('int2, int4, int8 big-endian', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }), (n) => {
        const b8 = Buffer.alloc(8);
        b8.writeBigInt64BE(n);
        assert.equal(partitionHash('int8', binary(b8)), partitionHash('int8', text(n.toString())));
        const n32 = Number(BigInt.asIntN(32, n));
        const b4 = Buffer.alloc(4);
        b4.writeInt32BE(n32);
        assert.equal(partitionHash('int4', binary(b4)), partitionHash('int4', text(String(n32))));
        const n16 = Number(BigInt.asIntN(16, n));
        const b2 = Buffer.alloc(2);
        b2.writeInt16BE(n16);
        assert.equal(partitionHash('int2', binary(b2)), partitionHash('int2', text(String(n16))));
      }),
    );
  });

  test('text, varchar, bpchar as UTF-8 bytes; uuid as 16 bytes', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.uuid(), (s, u) => {
        fc.pre(!s.includes('\0'));
        for (const t of ['text', 'varchar', 'bpchar'] as const) {
          assert.equal(partitionHash(t, binary(Buffer.from(s))), partitionHash(t, text(s)));
        }
        const ub = Buffer.from(u.replaceAll('-', ''), 'hex');
        assert.equal(partitionHash('uuid', binary(ub)), partitionHash('uuid', text(u)));
      }),
    );
  });

  test('numeric wire format (ndigits, weight, sign, dscale, digits)', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?$/), (s) =>
        assert.equal(partitionHash('numeric', binary(numericBinary(s))), partitionHash('numeric', text(s))),
      ),
    );
    const nan = Buffer.from([0, 0, 0, 0, 0xc0, 0, 0, 0]);
    assert.equal(partitionHash('numeric', binary(nan)), partitionHash('numeric', text('NaN')));
    const ninf = Buffer.from([0, 0, 0, 0, 0xf0, 0, 0, 0]);
    assert.equal(partitionHash('numeric', binary(ninf)), partitionHash('numeric', text('-Infinity')));
  });

  test('numeric: digits hidden by the display scale are cut off, as numeric_recv does', () => {
    // 1.2345 sent with dscale 2 is stored as 1.23
    const b = Buffer.from([0, 2, 0, 0, 0, 0, 0, 2, 0, 1, 0x09, 0x29]);
    assert.equal(partitionHash('numeric', binary(b)), partitionHash('numeric', text('1.23')));
    // leading and trailing zero digits are dropped: 0000 0001 0000 with weight 1 is 1
    const z = Buffer.from([0, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
    assert.equal(partitionHash('numeric', binary(z)), partitionHash('numeric', text('1')));
  });
});

describe('partition hash: values PostgreSQL refuses are refused with its SQLSTATE', () => {
  const cases: [DistType, string, string][] = [
    ['int4', '12x', '22P02'],
    ['int4', '', '22P02'],
    ['int4', '-', '22P02'],
    ['int4', '1.5', '22P02'],
    ['int4', '1__0', '22P02'],
    ['int4', '_1', '22P02'],
    ['int4', '2147483648', '22003'],
    ['int4', '99999999999', '22003'],
    ['int2', '32768', '22003'],
    ['int2', '-32769', '22003'],
    ['int8', '9223372036854775808', '22003'],
    ['int8', '0x8000000000000000', '22003'],
    // As PostgreSQL, a magnitude too large is noticed while the digits are read, before any
    // trailing junk; a positive value just past the maximum only after it.
    ['int4', '99999999999999999999x', '22003'],
    ['int4', '12345678901x', '22003'],
    ['int4', '2147483648_', '22P02'],
    ['int8', '99999999999999999999x', '22003'],
    ['int8', '-9223372036854775809 x', '22003'],
    ['int8', '9223372036854775808', '22003'],
    ['int8', '-9223372036854775809', '22003'],
    ['int8', '12345678901234567890123', '22003'],
    ['int8', '0x', '22P02'],
    ['int8', '0x_', '22P02'],
    ['int8', '1_', '22P02'],
    ['uuid', 'x', '22P02'],
    ['uuid', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g', '22P02'],
    ['uuid', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1é', '22P02'],
    ['uuid', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a-1', '22P02'],
    ['uuid', ' a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '22P02'],
    ['uuid', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1', '22P02'],
    ['uuid', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-', '22P02'],
    ['uuid', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '22P02'],
    ['numeric', '.', '22P02'],
    ['numeric', '-NaN', '22P02'],
    ['numeric', '1e', '22P02'],
    ['numeric', 'abc', '22P02'],
    ['numeric', '1e131072', '22003'],
    ['numeric', '1e-20000', '22003'],
    ['numeric', '1e1000000000', '22003'],
    ['numeric', '1e9999999999x', '22003'],
    ['numeric', '1e99x', '22P02'],
    ['numeric', '.e9999999999x', '22P02'],
    ['text', 'a\0b', '22021'],
  ];
  for (const [type, value, sqlstate] of cases) {
    test(`${type} ${JSON.stringify(value)} → ${sqlstate}`, () => {
      assert.equal(
        sqlstateOf(() => hashRemainder(type, text(value), 32)),
        sqlstate,
      );
    });
  }

  test('messages name the type and the value as PostgreSQL does', () => {
    assert.throws(() => hashRemainder('int4', text('12x'), 32), {
      message: 'invalid input syntax for type integer: "12x"',
    });
    assert.throws(() => hashRemainder('int4', text('99999999999'), 32), {
      message: 'value "99999999999" is out of range for type integer',
    });
    assert.throws(() => hashRemainder('numeric', text('1e131072'), 32), {
      message: 'value overflows numeric format',
    });
  });

  test('1e131071 is the largest power of ten numeric holds', () => {
    assert.equal(typeof hashRemainder('numeric', text('1e131071'), 32), 'number');
  });

  test('binary: wrong lengths, bad numeric fields, bad UTF-8', () => {
    assert.equal(
      sqlstateOf(() => hashRemainder('int4', binary(Buffer.alloc(3)), 32)),
      '22P03',
    );
    assert.equal(
      sqlstateOf(() => hashRemainder('int8', binary(Buffer.alloc(4)), 32)),
      '22P03',
    );
    assert.equal(
      sqlstateOf(() => hashRemainder('uuid', binary(Buffer.alloc(15)), 32)),
      '22P03',
    );
    assert.equal(
      sqlstateOf(() => hashRemainder('numeric', binary(Buffer.alloc(6)), 32)),
      '22P03',
    );
    // one digit announced, none sent
    assert.equal(
      sqlstateOf(() => hashRemainder('numeric', binary(Buffer.from([0, 1, 0, 0, 0, 0, 0, 0])), 32)),
      '22P03',
    );
    // digit 10000
    const big = Buffer.from([0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10]);
    assert.equal(
      sqlstateOf(() => hashRemainder('numeric', binary(big), 32)),
      '22P03',
    );
    // sign 0x8000
    assert.equal(
      sqlstateOf(() => hashRemainder('numeric', binary(Buffer.from([0, 0, 0, 0, 0x80, 0, 0, 0])), 32)),
      '22P03',
    );
    assert.equal(
      sqlstateOf(() => hashRemainder('text', binary(Buffer.from([0x61, 0xff])), 32)),
      '22021',
    );
    assert.equal(
      sqlstateOf(() => hashRemainder('varchar', binary(Buffer.from([0x61, 0])), 32)),
      '22021',
    );
  });

  test('a modulus outside 1..2^31-1 is refused', () => {
    for (const m of [0, -1, 1.5, 2 ** 31, NaN]) {
      assert.equal(
        sqlstateOf(() => hashRemainder('int4', text('1'), m)),
        '22023',
      );
    }
  });

  test('random text never throws anything but HashInputError', () => {
    for (const type of ['int2', 'int4', 'int8', 'uuid', 'numeric'] as const) {
      fc.assert(
        fc.property(fc.string(), (s) => {
          try {
            const r = hashRemainder(type, text(s), 32);
            assert.ok(r >= 0 && r < 32);
          } catch (e) {
            assert.ok(e instanceof HashInputError, String(e));
          }
        }),
      );
    }
  });
});

describe('partition hash: a column type modifier, applied as on INSERT', () => {
  /** atttypmod of numeric(p, s) and of varchar(n) / char(n). */
  const numericMod = (p: number, sc: number) => ((p << 16) | (sc & 0x7ff)) + 4;
  const lengthMod = (n: number) => n + 4;
  const h = (type: DistType, v: string, typmod = -1) => partitionHash(type, text(v), typmod);

  test('numeric(p, s) rounds half away from zero at the scale before hashing', () => {
    const m72 = numericMod(7, 2);
    assert.equal(h('numeric', '1.005', m72), h('numeric', '1.01'));
    assert.equal(h('numeric', '1.004', m72), h('numeric', '1'));
    assert.equal(h('numeric', '-0.005', m72), h('numeric', '-0.01'));
    assert.equal(h('numeric', '0.004', m72), h('numeric', '0'));
    assert.equal(h('numeric', '99999.994', m72), h('numeric', '99999.99'));
    assert.equal(h('numeric', 'NaN', m72), h('numeric', 'NaN'));
    const mNeg = numericMod(5, -2);
    assert.equal(h('numeric', '149', mNeg), h('numeric', '100'));
    assert.equal(h('numeric', '150', mNeg), h('numeric', '200'));
    assert.equal(h('numeric', '9999949', mNeg), h('numeric', '9999900'));
    assert.equal(h('numeric', '0.0099949', numericMod(3, 5)), h('numeric', '0.00999'));
    // binary parameters too: 1.2345 with dscale 4 into numeric(7,2) is 1.23
    const b = Buffer.from([0, 2, 0, 0, 0, 0, 0, 4, 0, 1, 0x09, 0x29]);
    assert.equal(partitionHash('numeric', binary(b), m72), h('numeric', '1.23'));
  });

  test("numeric(p, s) refuses what does not fit (22003), with PostgreSQL's detail", () => {
    for (const [v, mod] of [
      ['99999.995', numericMod(7, 2)],
      ['100000', numericMod(7, 2)],
      ['Infinity', numericMod(7, 2)],
      ['9999950', numericMod(5, -2)],
      ['0.01', numericMod(3, 5)],
    ] as const) {
      assert.equal(
        sqlstateOf(() => h('numeric', v, mod)),
        '22003',
        v,
      );
    }
    assert.throws(() => h('numeric', '100000', numericMod(7, 2)), {
      message: 'numeric field overflow',
      detail: 'A field with precision 7, scale 2 must round to an absolute value less than 10^5.',
    });
  });

  test('varchar(n) and char(n) cut trailing spaces beyond n and refuse anything else (22001)', () => {
    const m5 = lengthMod(5);
    assert.equal(h('varchar', 'ab     ', m5), h('varchar', 'ab   '));
    assert.equal(h('varchar', 'ééééé  ', m5), h('varchar', 'ééééé'));
    assert.equal(h('varchar', '𝄞𝄞𝄞𝄞𝄞 ', m5), h('varchar', '𝄞𝄞𝄞𝄞𝄞'));
    assert.equal(h('bpchar', 'ab     ', m5), h('bpchar', 'ab'));
    assert.equal(h('text', 'ab     ', m5), h('text', 'ab     '), 'text has no length');
    assert.equal(
      sqlstateOf(() => h('varchar', 'abcdef', m5)),
      '22001',
    );
    assert.equal(
      sqlstateOf(() => h('varchar', 'ééééé\t', m5)),
      '22001',
    );
    assert.equal(
      sqlstateOf(() => h('bpchar', 'abcdefg', m5)),
      '22001',
    );
    assert.throws(() => h('varchar', 'abcdef', m5), {
      message: 'value too long for type character varying(5)',
    });
    assert.equal(partitionHash('varchar', binary(Buffer.from('ab     ')), m5), h('varchar', 'ab   '));
  });
});

describe('distribution column collations', () => {
  test('nondeterministic collations are refused for text-like columns (0A000)', () => {
    assert.equal(
      sqlstateOf(() => checkDistributionCollation('text', { name: 'und-ci', deterministic: false })),
      '0A000',
    );
    checkDistributionCollation('text', { name: 'C', deterministic: true });
    checkDistributionCollation('varchar', null);
    checkDistributionCollation('int8', { name: 'und-ci', deterministic: false });
  });
});
