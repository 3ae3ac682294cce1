import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { anyText, sqlishText } from './arbitraries.test-util.js';
import { mapPosition, renamePreparedRefs, renamePreparedRefsAt } from './rename-prepared.js';
import { sessionEffects } from './session-effects.js';
import { quoteIdentifier } from './quote-ident.js';

const prefix = (name: string): string => `c7_${name}`;

const cases: [string, string][] = [
  ['PREPARE q1 (int) AS SELECT $1', 'PREPARE c7_q1 (int) AS SELECT $1'],
  ['execute Q1(1)', 'execute c7_q1(1)'],
  ['EXECUTE "Q1"', 'EXECUTE "c7_Q1"'],
  ['explain (analyze) /* x */ execute q', 'explain (analyze) /* x */ execute c7_q'],
  ['EXPLAIN ANALYZE EXECUTE q', 'EXPLAIN ANALYZE EXECUTE c7_q'],
  ['create table t as execute q(1) with data', 'create table t as execute c7_q(1) with data'],
  ['DEALLOCATE q', 'DEALLOCATE c7_q'],
  ['deallocate prepare q', 'deallocate prepare c7_q'],
  ['DEALLOCATE ALL', 'DEALLOCATE ALL'],
  ["PREPARE TRANSACTION 'q'", "PREPARE TRANSACTION 'q'"],
  [
    "prepare a as select 'execute a'; execute a; select 'prepare a' -- execute a\n; deallocate a",
    "prepare c7_a as select 'execute a'; execute c7_a; select 'prepare a' -- execute a\n; deallocate c7_a",
  ],
  ['DO $$ BEGIN EXECUTE q; END $$', 'DO $$ BEGIN EXECUTE q; END $$'],
  ['select execute(q)', 'select execute(q)'],
];

void test('renamePreparedRefs: tricky inputs', () => {
  for (const [sql, expected] of cases) assert.equal(renamePreparedRefs(sql, prefix), expected, sql);
});

void test('renamePreparedRefs: quotes names that need it, leaves others alone', () => {
  assert.equal(
    renamePreparedRefs('execute a; execute b', (n) => (n === 'a' ? 'My "A"' : undefined)),
    'execute "My ""A"""; execute b',
  );
  assert.equal(
    renamePreparedRefs('execute a', () => 'select'),
    'execute "select"',
  );
  assert.equal(
    renamePreparedRefs('execute a', () => ''),
    'execute a',
  );
  assert.equal(
    renamePreparedRefs('EXECUTE A', (n) => n),
    'EXECUTE A',
  );
});

void test('quoteIdentifier', () => {
  assert.equal(quoteIdentifier('abc_1'), 'abc_1');
  assert.equal(quoteIdentifier('Abc'), '"Abc"');
  assert.equal(quoteIdentifier('1a'), '"1a"');
  assert.equal(quoteIdentifier('all'), '"all"');
  assert.equal(quoteIdentifier('a"b'), '"a""b"');
  assert.equal(quoteIdentifier('été'), '"été"');
});

void test('property: renamePreparedRefs(x, () => undefined) === x', () => {
  fc.assert(
    fc.property(fc.oneof(anyText, sqlishText), (x) => {
      assert.equal(
        renamePreparedRefs(x, () => undefined),
        x,
      );
    }),
    { numRuns: 1000 },
  );
});

const name = fc.oneof(fc.stringMatching(/^[a-z_][a-z0-9_]{0,8}$/), fc.string({ minLength: 1, maxLength: 8 }));
const template = fc.constantFrom(
  (n: string) => `PREPARE ${n} AS SELECT 1`,
  (n: string) => `EXECUTE ${n}(1, 'x')`,
  (n: string) => `EXPLAIN (ANALYZE) EXECUTE ${n}`,
  (n: string) => `DEALLOCATE PREPARE ${n}`,
  (n: string) => `CREATE TABLE t AS EXECUTE ${n}`,
);

void test('property: renamed names come back through sessionEffects, other text unchanged', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(template, name), { minLength: 1, maxLength: 5 }), (parts) => {
      const sql = parts.map(([t, n]) => t(quoteIdentifier(n))).join('; ');
      const renamed = renamePreparedRefs(sql, (n) => `p1_${n}`);
      const before = sessionEffects(sql);
      const after = sessionEffects(renamed);
      assert.equal(after.length, parts.length);
      after.forEach((e, i) => {
        const b = before[i]!;
        assert.equal(e.kind, b.kind);
        assert.ok('name' in e && 'name' in b);
        assert.equal(e.name, `p1_${parts[i]![1]}`);
        assert.equal(b.name, parts[i]![1]);
      });
      // Renaming back restores the original text whenever the originals needed no other quoting.
      assert.equal(
        renamePreparedRefs(renamed, (n) => n.slice(3)),
        parts.map(([t, n]) => t(quoteIdentifier(n))).join('; '),
      );
    }),
  );
});

void test('renamePreparedRefs: 10 MB completes', () => {
  const big = "execute q(1, 'a;b'); select $$ execute q $$;".repeat(230_000);
  assert.ok(big.length > 10_000_000);
  const out = renamePreparedRefs(big, prefix);
  assert.equal(out.length, big.length + 3 * 230_000);
});

void test('renamePreparedRefsAt: renames per statement and reports the spans it changed', () => {
  const sql = 'PREPARE q AS SELECT 1; EXECUTE q; DEALLOCATE q; PREPARE q AS SELECT 2';
  const r = renamePreparedRefsAt(sql, (name, i) => (i === 3 ? 'second' : i === 2 ? undefined : `${name}_first`));
  assert.equal(r.text, 'PREPARE q_first AS SELECT 1; EXECUTE q_first; DEALLOCATE q; PREPARE second AS SELECT 2');
  assert.deepEqual(r.spans, [
    { start: 8, newLength: 7, oldLength: 1 },
    { start: 37, newLength: 7, oldLength: 1 },
    { start: 68, newLength: 6, oldLength: 1 },
  ]);
  assert.deepEqual(renamePreparedRefsAt('SELECT 1', () => 'x'), { text: 'SELECT 1', spans: [] });
});

void test('mapPosition: positions in the rewritten text point into the client\'s', () => {
  const client = "PREPARE é AS SELECT 1; EXECUTE é('bad')";
  const r = renamePreparedRefsAt(client, () => 'pgscale_s_0123');
  const chars = (s: string) => [...s];
  // Every character outside a name maps to the same character of the client's text.
  const out = chars(r.text);
  for (let i = 0; i < out.length; i++) {
    const p = mapPosition(i + 1, r.spans);
    const inName = r.spans.some((s) => i >= s.start && i < s.start + s.newLength);
    if (inName) assert.equal(chars(client)[p - 1], 'é', `position ${i + 1}`);
    else assert.equal(chars(client)[p - 1], out[i], `position ${i + 1}`);
  }
});
