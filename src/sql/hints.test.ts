import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { routingHint } from './hints.js';

/** Arbitrary text, and text made of the fragments that switch the lexer between states. */
// fc.string() is ASCII-ish; 'binary' is v4's replacement for fullUnicodeString; the last adds lone surrogates.
const anyText = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((n) => String.fromCharCode(n)) }),
);
const sqlishText = fc
  .array(
    fc.oneof(
      fc.constantFrom(
        "'",
        '"',
        '$$',
        '$a$',
        '$1',
        '/*',
        '*/',
        '--',
        '\n',
        ';',
        '(',
        ')',
        '\\',
        "E'",
        'U&"',
        ' ',
      ),
      fc.constantFrom('set ', 'execute ', 'x', 'é', '::', '=', '-', '.', '0', '😀'),
      fc.string({ maxLength: 3 }),
    ),
    { maxLength: 40 },
  )
  .map((parts) => parts.join(''));

const cases: [string, ReturnType<typeof routingHint>][] = [
  ['/* pgscale:primary */ select 1', 'primary'],
  ['select 1 -- pgscale:replica', 'replica'],
  ['select /*pgscale:any*/ 1', 'any'],
  ['/* app=web pgscale:Replica */ select 1', 'replica'],
  ['/* pgscale:replica */ select 1 /* pgscale:primary */', 'replica'],
  ['-- pgscale:primary\n/* pgscale:replica */ select 1', 'primary'],
  ["select '/* pgscale:primary */'", null],
  ['select $$-- pgscale:primary$$', null],
  ['select "-- pgscale:primary"', null],
  ['/* pgscale:primaryx */ select 1', null],
  ['/* xpgscale:primary */ select 1', null],
  ['/* pgscale:master */ select 1', null],
  ['/* outer /* pgscale:replica */ */ select 1', 'replica'],
  ['select 1', null],
  ['', null],
];

void test('routingHint: tricky inputs', () => {
  for (const [sql, expected] of cases) assert.equal(routingHint(sql), expected, sql);
});

void test('property: routingHint never throws and answers one of its values', () => {
  fc.assert(
    fc.property(fc.oneof(anyText, sqlishText), (sql) => {
      assert.ok([null, 'primary', 'replica', 'any'].includes(routingHint(sql)));
    }),
    { numRuns: 500 },
  );
});
