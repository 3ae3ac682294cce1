import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { anyText, sqlishText } from './arbitraries.test-util.js';
import { splitStatements } from './split.js';

function texts(sql: string): string[] {
  return splitStatements(sql).map((s) => s.text);
}

const cases: [string, string[]][] = [
  ['set statement_timeout = 0; select 1', ['set statement_timeout = 0', 'select 1']],
  ['  select 1 ;; ; select 2;  ', ['select 1', 'select 2']],
  ["select ';'; select 2", ["select ';'", 'select 2']],
  ['select "a;b"; select 2', ['select "a;b"', 'select 2']],
  ['select $a$ ; $a$; select $$;$$', ['select $a$ ; $a$', 'select $$;$$']],
  ["select 1 /* ; ' /* ; */ */; select 2 -- ;\n; select 3", ['select 1', 'select 2', 'select 3']],
  ["select E'\\';'; select 2", ["select E'\\';'", 'select 2']],
  ['select $1; select $2', ['select $1', 'select $2']],
  [
    'create rule r as on insert to t do also (insert into a values (1); insert into b values (2)); select 1',
    [
      'create rule r as on insert to t do also (insert into a values (1); insert into b values (2))',
      'select 1',
    ],
  ],
  [
    'CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END; SELECT 3',
    [
      'CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END',
      'SELECT 3',
    ],
  ],
  [
    'create or replace procedure p() begin atomic insert into t values (1); end; begin; commit',
    ['create or replace procedure p() begin atomic insert into t values (1); end', 'begin', 'commit'],
  ],
  [
    "create function f() returns int as 'begin' language sql; begin; select 1",
    ["create function f() returns int as 'begin' language sql", 'begin', 'select 1'],
  ],
  ['/* only a comment */ ; -- and another', []],
  ['', []],
  ["select 'unterminated; select 2", ["select 'unterminated; select 2"]],
  ['select (1; select 2', ['select (1; select 2']],
  ['select 1); select 2', ['select 1)', 'select 2']],
];

void test('splitStatements: tricky inputs', () => {
  for (const [sql, expected] of cases) assert.deepEqual(texts(sql), expected, sql);
});

void test('splitStatements: offsets point into the original text', () => {
  const sql = ' /* x */ select 1 ; \n select 2 -- c';
  for (const s of splitStatements(sql)) assert.equal(sql.slice(s.start, s.end), s.text);
  assert.deepEqual(
    splitStatements(sql).map((s) => [s.start, s.end]),
    [
      [9, 17],
      [22, 30],
    ],
  );
});

/** A statement without top-level `;`, starting and ending with a token (so trimming keeps it). */
const word = fc.constantFrom('select', 'x', '"Q;"', "'a;b'", '$$;$$', '$t$ ; $t$', '1', '$1', '=', '::', 'é');
const inner = fc.constantFrom(' ', ' /* ; */ ', '\n', ' -- ;\n', '(;)', ' ');
const statement = fc
  .tuple(word, fc.array(fc.tuple(inner, word), { maxLength: 6 }))
  .map(([w, rest]) => w + rest.map(([s, x]) => s + x).join(''));

void test('property: splitStatements(a.join(";")) gives back a', () => {
  fc.assert(
    fc.property(fc.array(statement, { maxLength: 8 }), (a) => {
      assert.deepEqual(texts(a.join(';')), a);
      assert.deepEqual(texts(a.join(' ;\n')), a);
    }),
  );
});

void test('property: never throws; spans are ordered, in bounds and match the text', () => {
  fc.assert(
    fc.property(fc.oneof(anyText, sqlishText), (sql) => {
      let last = 0;
      for (const s of splitStatements(sql)) {
        assert.ok(s.start >= last && s.end > s.start && s.end <= sql.length);
        assert.equal(sql.slice(s.start, s.end), s.text);
        // PostgreSQL's whitespace is ASCII only (scan.l: space, \t, \n, \r, \f, \v); U+00A0 and
        // friends start an identifier there, which String.trimStart would strip.
        assert.equal(s.text, s.text.replace(/^[ \t\n\r\f\v]+/, ''));
        last = s.end;
      }
    }),
    { numRuns: 1000 },
  );
});

void test('non-ASCII spaces are not whitespace for PostgreSQL: they stay in the statement', () => {
  for (const sp of ['\u00a0', '\u3000', '\ufeff', '\u2028'])
    assert.deepEqual(texts(`${sp}select 1; select 2`), [`${sp}select 1`, 'select 2']);
});

void test('splitStatements: 10 MB and deep nesting complete', () => {
  const big = "set a = 'x;y'; select $$;$$ /* ; */;".repeat(300_000);
  assert.ok(big.length > 10_000_000);
  assert.equal(splitStatements(big).length, 600_000);
  assert.equal(splitStatements('('.repeat(100_000) + ';' + ')'.repeat(100_000) + '; select 1').length, 2);
});
