import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { anyText, sqlishText } from '../../sql/arbitraries.test-util.js';
import { Analyzer } from '../../sql/analyze.js';
import { cannotChangeSession, sessionEffects } from '../../sql/session-effects.js';
import { hiddenEffectRisk, mayHideEffects, runsUserCode } from '../../sql/session-safety.js';
import {
  LISTS_STATEMENTS,
  PROXY_SETTING_TEXT,
  SEQUENCE_CALL,
  ddlOf,
  effectsOf,
  plainText,
  riskOf,
} from './text-facts.js';

const a = new Analyzer();

/** What plainText answers for every check at once: each must agree with it. */
function assertPlainMeansNothing(sql: string): void {
  if (!plainText(sql)) return;
  assert.ok(cannotChangeSession(sql), `cannotChangeSession: ${sql}`);
  assert.equal(mayHideEffects(sql), false, `mayHideEffects: ${sql}`);
  assert.equal(SEQUENCE_CALL.test(sql), false, `sequence call: ${sql}`);
  assert.equal(LISTS_STATEMENTS.test(sql), false, `pg_prepared_statements: ${sql}`);
  assert.equal(PROXY_SETTING_TEXT.test(sql), false, `proxy setting: ${sql}`);
  assert.equal(/listen/i.test(sql), false, `listen: ${sql}`);
  // The lexer-level analyses themselves, past every pre-check.
  for (const e of sessionEffects(sql))
    assert.ok(
      ['other', 'begin', 'commit', 'rollback', 'notify'].includes(e.kind),
      `effect ${e.kind}: ${sql}`,
    );
  assert.equal(hiddenEffectRisk(sql), null, `risk: ${sql}`);
  assert.equal(runsUserCode(sql), false, `user code: ${sql}`);
  assert.equal(a.analyze(sql).ddl, false, `ddl: ${sql}`);
}

test('plainText: the usual application texts are plain, and their answers need no analysis', () => {
  for (const sql of [
    'SELECT abalance FROM pgbench_accounts WHERE aid = 42;',
    'UPDATE pgbench_accounts SET abalance = abalance + -1234 WHERE aid = 5;',
    'BEGIN;',
    'END;',
  ]) {
    assert.equal(plainText(sql), true, sql);
    assertPlainMeansNothing(sql);
    assert.equal(effectsOf(a, sql).length, 0);
    assert.equal(riskOf(a, sql), null);
    assert.equal(ddlOf(a, sql), false);
  }
});

test('plainText: any text a check looks at is not plain', () => {
  for (const sql of [
    'SET search_path = x',
    'SELECT 1; SET x = 1',
    'SELECT f(1)',
    'DO $$ BEGIN END $$',
    'CREATE TABLE t (a int)',
    "SELECT nextval('s')",
    'SELECT * FROM pg_prepared_statements',
    'SET pgscale.target = replica',
    'LISTEN c',
    'EXECUTE p',
    'CALL p()',
    'COMMIT AND CHAIN',
    '/* c */ SET x = 1',
  ]) {
    assert.equal(plainText(sql), false, sql);
  }
});

test('plainText is sound: a plain text has no effect, risk, DDL, sequence call, listing or proxy setting', () => {
  fc.assert(fc.property(fc.oneof(anyText, sqlishText), assertPlainMeansNothing), { numRuns: 3000 });
});
