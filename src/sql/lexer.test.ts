import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { anyText, sqlishText } from './arbitraries.test-util.js';
import { lex, tokenize } from './lexer.js';

/** kind:value pairs, the compact form the table below is written in. */
function kv(sql: string): string[] {
  return tokenize(sql).tokens.map((t) => `${t.kind}:${t.value}`);
}

const cases: [string, string[]][] = [
  ['SELECT 1', ['ident:select', 'number:1']],
  ['"My""Col" "select"', ['quoted_ident:My"Col', 'quoted_ident:select']],
  ["'it''s'", ["string:it's"]],
  ["E'\\''", ["string:'"]],
  ["e'a\\nb\\x41\\101\\u00e9'", ['string:a\nbAAé']],
  ["E'\\\\' x", ['string:\\', 'ident:x']],
  ["U&'d\\0061t\\+000061'", ['string:data']],
  ['U&"d\\0061t"', ['quoted_ident:dat']],
  ["B'101' X'1F' N'n'", ['string:101', 'string:1F', 'string:n']],
  ['$a$ ; $a$', ['dollar_string: ; ']],
  ["$$it's$$", ["dollar_string:it's"]],
  ['$a$ $b$ $a$', ['dollar_string: $b$ ']],
  ['$1 $23', ['param:$1', 'param:$23']],
  ['a$$b', ['ident:a$$b']],
  ['x::text', ['ident:x', 'punct:::', 'ident:text']],
  ['x=-1', ['ident:x', 'op:=', 'op:-', 'number:1']],
  ['a @- b', ['ident:a', 'op:@-', 'ident:b']],
  ['a*/*c*/b', ['ident:a', 'op:*', 'ident:b']],
  ['a--c\nb', ['ident:a', 'ident:b']],
  ['/* a /* ; \' */ " */ x', ['ident:x']],
  [
    '1..5 .5e3 1.5e-3 0x1F 1_000',
    ['number:1', 'punct:..', 'number:5', 'number:.5e3', 'number:1.5e-3', 'number:0x1F', 'number:1_000'],
  ],
  ['ÉTÉ Straße', ['ident:ÉtÉ', 'ident:straße']],
  ['x := 1', ['ident:x', 'punct::=', 'number:1']],
  [
    'f(a, b[1]);',
    [
      'ident:f',
      'punct:(',
      'ident:a',
      'punct:,',
      'ident:b',
      'punct:[',
      'number:1',
      'punct:]',
      'punct:)',
      'punct:;',
    ],
  ],
  ['a <> b', ['ident:a', 'op:<>', 'ident:b']],
  ['\\ {', ['other:\\', 'other:{']],
  ['$ x', ['other:$', 'ident:x']],
  ['😀x', ['ident:😀x']],
];

void test('lexer: tricky inputs', () => {
  for (const [sql, expected] of cases) assert.deepEqual(kv(sql), expected, sql);
});

void test('lexer: comments are returned with their bodies', () => {
  const r = tokenize('/* pgscale:primary */ select -- tail\n1 /* a /* b */ c */');
  assert.deepEqual(
    r.comments.map((c) => c.text),
    [' pgscale:primary ', ' tail', ' a /* b */ c '],
  );
  assert.equal(r.comments[0]?.start, 0);
  assert.equal(r.comments[0]?.end, 21);
  assert.equal(r.unterminated, false);
});

void test('lexer: unterminated input yields tokens so far and the flag', () => {
  for (const sql of [
    "select 'abc",
    'select "abc',
    'select $x$ abc',
    'select /* a /* b */',
    "select E'\\'",
    '$$',
  ]) {
    const r = tokenize(sql);
    assert.equal(r.unterminated, true, sql);
    if (sql !== '$$') assert.equal(r.tokens[0]?.value, 'select', sql);
  }
  assert.equal(tokenize("select 'a''").tokens[1]?.value, "a'");
  assert.equal(tokenize('/* a /* b */').comments[0]?.text, ' a /* b */');
});

void test('lexer: standard_conforming_strings off makes backslash escape in plain strings', () => {
  assert.deepEqual(
    tokenize("'a\\'b' c", { standardConformingStrings: false }).tokens.map((t) => t.value),
    ["a'b", 'c'],
  );
  // With it on (the default) the string ends at the second quote, and b' starts a bit string.
  assert.deepEqual(
    tokenize("'a\\'b' c").tokens.map((t) => t.value),
    ['a\\', ' c'],
  );
});

void test('lexer: offsets reproduce the raw text', () => {
  const sql = 'SELECT E\'x\' || $q$y$q$ FROM "T" -- c';
  const r = tokenize(sql);
  assert.deepEqual(
    r.tokens.map((t) => sql.slice(t.start, t.end)),
    ['SELECT', "E'x'", '||', '$q$y$q$', 'FROM', '"T"'],
  );
});

function checkInvariants(sql: string): void {
  const r = tokenize(sql);
  let last = 0;
  for (const t of r.tokens) {
    assert.ok(t.start >= last && t.end > t.start && t.end <= sql.length);
    last = t.end;
  }
  // Tokens and comments never overlap.
  const spans = [...r.tokens, ...r.comments].sort((a, b) => a.start - b.start);
  for (let i = 1; i < spans.length; i++) assert.ok(spans[i]!.start >= spans[i - 1]!.end);
  // Everything between them is whitespace.
  let pos = 0;
  for (const s of spans) {
    assert.match(sql.slice(pos, s.start), /^[ \t\n\r\f\v]*$/);
    pos = s.end;
  }
  assert.match(sql.slice(pos), /^[ \t\n\r\f\v]*$/);
}

void test('property: never throws; tokens in order, in bounds, and cover all but whitespace', () => {
  fc.assert(
    fc.property(anyText, (s) => checkInvariants(s)),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(sqlishText, (s) => checkInvariants(s)),
    { numRuns: 2000 },
  );
});

void test('property: lexing the concatenation of closed tokens gives the same tokens', () => {
  const piece = fc.constantFrom(
    "'a''b'",
    '"X"',
    '$t$;$t$',
    '$1',
    'foo',
    '42',
    '(',
    ';',
    '::',
    "E'\\''",
    '/* ; */',
  );
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 20 }), (parts) => {
      const r = lex(parts.join(' '));
      assert.equal(r.unterminated, false);
      assert.equal(r.count + r.commentCount, parts.length);
    }),
  );
});

void test('lexer: 10 MB of SQL and 100k nested parentheses complete', () => {
  const big = "insert into t values (1, 'a''b', $$x;y$$) /* c */ -- d\n;".repeat(180_000);
  assert.ok(big.length > 10_000_000);
  const l = lex(big);
  assert.equal(l.unterminated, false);
  assert.equal(l.count, 180_000 * 12);
  const deep = lex('('.repeat(100_000) + ')'.repeat(100_000));
  assert.equal(deep.count, 200_000);
  const comments = lex('/*'.repeat(100_000) + '*/'.repeat(100_000));
  assert.equal(comments.commentCount, 1);
  assert.equal(comments.unterminated, false);
});
