/**
 * How `npm run test:regress` reads pg_regress (bench/regress-run.ts): test statuses from its
 * output and one diff per test from regression.diffs, on text in PostgreSQL 15's exact format.
 * Pure parsing: no server is started.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffExcerpt, parseRegressOutput, splitDiffs } from '../bench/regress-run.js';

const OUTPUT = `============== running regression test queries        ==============
test test_setup                   ... ok          406 ms
parallel group (20 tests):  text oid boolean char varchar
     boolean                      ... ok          415 ms
     date                         ... FAILED      304 ms
     stats                        ... failed (ignored)     12 ms
test fast_default                 ... ok          986 ms

=========================
 1 of 4 tests failed, 1 of these failures ignored.
=========================
`;

test('statuses come from both the serial and the parallel-group lines', () => {
  assert.deepEqual(parseRegressOutput(OUTPUT), [
    { name: 'test_setup', status: 'ok' },
    { name: 'boolean', status: 'ok' },
    { name: 'date', status: 'failed' },
    { name: 'stats', status: 'ignored' },
    { name: 'fast_default', status: 'ok' },
  ]);
});

const DIFFS = `diff -U3 /src/expected/date.out /out/results/date.out
--- /src/expected/date.out\t2026-05-11 19:49:58.000000000 +0000
+++ /out/results/date.out\t2026-12-06 14:13:07.591596265 +0000
@@ -944,2 +944,2 @@
- 04-09-1957    |  1957
+ 1957-04-09    |  1957
diff -U3 /src/expected/guc.out /out/results/guc.out
--- /src/expected/guc.out\t2026-05-11 19:49:58.000000000 +0000
+++ /out/results/guc.out\t2026-12-06 14:13:07.591596265 +0000
@@ -495,3 +495,3 @@
 SHOW datestyle;
- Postgres, MDY
+ ISO, MDY
`;

test('regression.diffs is cut into one diff per test, and an excerpt keeps only changed lines', () => {
  const d = splitDiffs(DIFFS);
  assert.deepEqual(Object.keys(d), ['date', 'guc']);
  assert.match(d.date!, /^diff -U3 .*date\.out/);
  assert.doesNotMatch(d.date!, /guc/);
  assert.deepEqual(diffExcerpt(d.guc!), ['- Postgres, MDY', '+ ISO, MDY']);
});
