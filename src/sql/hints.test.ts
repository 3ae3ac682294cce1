import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { anyText, sqlishText } from './arbitraries.test-util.js';
import { routingHint } from './hints.js';

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
