import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { sqlishText } from '../sql/arbitraries.test-util.js';
import { literalShape, withLiterals } from './literal-shape.js';

test('a shape cuts plain integers and plain strings, with their values', () => {
  const s = literalShape("UPDATE accounts SET note = 'it''s', n = n + 5 WHERE aid = 123");
  assert.ok(s);
  assert.deepEqual(s.raws, ["'it''s'", '5', '123']);
  assert.deepEqual(s.kinds, ['string', 'int', 'int']);
  assert.deepEqual(s.values, ["it's", '5', '123']);
  assert.equal(s.key, 'UPDATE accounts SET note = \0s, n = n + \0i WHERE aid = \0i');
});

test('literals the parser reads otherwise stay in the key', () => {
  for (const sql of [
    'SELECT * FROM t WHERE k = 007',
    'SELECT * FROM t WHERE k = 2147483648',
    'SELECT * FROM t WHERE k = 1.5',
    'SELECT * FROM t WHERE k = 1e3',
    "SELECT * FROM t WHERE k = E'a\\n'",
    "SELECT * FROM t WHERE k = U&'a'",
    "SELECT * FROM t WHERE k = B'101'",
    "SELECT * FROM t WHERE k = X'1f'",
    'SELECT * FROM t WHERE k = $$a$$',
  ])
    assert.equal(literalShape(sql), null, sql);
  assert.deepEqual(literalShape('SELECT * FROM t WHERE k = 2147483647')?.values, ['2147483647']);
  assert.deepEqual(literalShape('SELECT * FROM t WHERE k = 0')?.values, ['0']);
});

test('no shape: Bind parameters, NUL, an unterminated quote, no literal, non-standard strings', () => {
  assert.equal(literalShape('SELECT * FROM t WHERE k = $1 AND j = 5'), null);
  assert.equal(literalShape('SELECT 5\0'), null);
  assert.equal(literalShape("SELECT 'abc"), null);
  assert.equal(literalShape('SELECT now()'), null);
  assert.equal(literalShape("SELECT 'a'", false), null);
});

test('comments and quoted identifiers are not literals', () => {
  const s = literalShape("SELECT \"5\", 'x' /* 7 'y' */ -- 8\n FROM t");
  assert.deepEqual(s?.raws, ["'x'"]);
});

test('property: the literals put back give the text', () => {
  fc.assert(
    fc.property(sqlishText, (sql) => {
      const s = literalShape(sql);
      if (s === null) return;
      assert.equal(withLiterals(s, s.raws), sql);
      assert.equal(s.parts.length, s.raws.length + 1);
    }),
    { numRuns: 2000 },
  );
});

const intLit = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2147483647 })).map(String);
const strLit = fc.string({ maxLength: 6 }).map((v) => ({ raw: `'${v.replaceAll("'", "''")}'`, value: v }));
const lit = fc.oneof(
  intLit.map((v) => ({ raw: v, value: v, kind: 'int' as const })),
  strLit.map((s) => ({ ...s, kind: 'string' as const })),
);
/** A statement template: fixed pieces between literal positions. */
const pieces = fc.array(
  fc.constantFrom('SELECT ', ' FROM t WHERE k = ', ' AND j IN (', ', ', ')', ' + ', ' '),
  {
    minLength: 2,
    maxLength: 6,
  },
);

test('property: texts that differ only in their literals share a key; their values are read back', () => {
  fc.assert(
    fc.property(pieces, fc.array(fc.tuple(lit, lit), { minLength: 1, maxLength: 5 }), (ps, pairs) => {
      const n = Math.min(ps.length - 1, pairs.length);
      const build = (which: 0 | 1) => {
        let s = ps[0]!;
        for (let i = 0; i < n; i++) {
          const [a, b] = pairs[i]!;
          // Same kind in both texts at each position (a string and an integer make other shapes).
          const l = which === 0 ? a : a.kind === b.kind ? b : a;
          s += ` ${l.raw} ${ps[i + 1]!}`;
        }
        return s;
      };
      const s0 = literalShape(build(0));
      const s1 = literalShape(build(1));
      if (n === 0) return;
      assert.ok(s0 && s1);
      assert.equal(s0.key, s1.key);
      assert.deepEqual(
        s0.values,
        pairs.slice(0, n).map(([a]) => a.value),
      );
    }),
    { numRuns: 1000 },
  );
});

test('property: texts that differ in anything else do not share a key', () => {
  const word = fc.constantFrom(
    'k',
    'j',
    'aid',
    'users',
    '=',
    '<>',
    '+',
    '-',
    '(',
    ')',
    ',',
    'AND',
    'OR',
    '"k"',
  );
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          word,
          lit.map((l) => l.raw),
        ),
        { minLength: 1, maxLength: 8 },
      ),
      fc.nat(),
      word,
      (toks, at, other) => {
        const i = at % toks.length;
        if (toks[i] === other || /^\d|^'/.test(toks[i]!)) return;
        const a = toks.join(' ');
        const b = toks.map((t, j) => (j === i ? other : t)).join(' ');
        const sa = literalShape(a);
        const sb = literalShape(b);
        if (sa !== null && sb !== null) assert.notEqual(sa.key, sb.key);
      },
    ),
    { numRuns: 1000 },
  );
  // An integer and a string in the same place: two shapes.
  assert.notEqual(literalShape('SELECT 5')?.key, literalShape("SELECT '5'")?.key);
});
