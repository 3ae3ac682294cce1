import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { anyText, sqlishText } from './arbitraries.test-util.js';
import {
  hiddenEffectRisk,
  mayHideEffects,
  runsUserCode,
  SAFE_BUILTIN_FUNCTIONS,
  searchPathShadowsBuiltins,
} from './session-safety.js';

const SAFE = [
  'SELECT 1',
  'SELECT * FROM t WHERE id = $1',
  'UPDATE pgbench_accounts SET abalance = abalance + -1234 WHERE aid = 5;',
  'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, CURRENT_TIMESTAMP);',
  'INSERT INTO s.t (a, b) VALUES ($1, $2) ON CONFLICT (a) DO UPDATE SET b = excluded.b',
  "SELECT count(*), lower(name), now() FROM users WHERE created > now() - interval '1 day'",
  'SELECT pg_catalog.lower(x)::varchar(20), cast(y AS numeric(10, 2)) FROM t',
  'SELECT x FROM t WHERE y IN (1, 2) AND EXISTS (SELECT 1 FROM u WHERE u.id = t.id)',
  'WITH c AS (SELECT 1) SELECT * FROM c',
  'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r',
  "SELECT nextval('s'), pg_advisory_xact_lock(1), row_number() OVER (ORDER BY x) FROM t",
  "SELECT 'f(1); do; execute' AS text_only -- call g()",
  'BEGIN',
  'COMMIT AND NO CHAIN',
  'CREATE TABLE t (a int)',
];

const RISKY: [string, string][] = [
  ['SELECT f()', 'function f()'],
  ['SELECT lower(f(x)) FROM t', 'function f()'],
  ['SELECT public.f_path()', 'function public.f_path()'],
  ['SELECT "Lower"(x)', 'function Lower()'],
  ['SELECT * FROM my_srf(1)', 'function my_srf()'],
  ["DO $$ BEGIN EXECUTE 'SET search_path = evil'; END $$", 'DO'],
  ['EXECUTE p1', 'EXECUTE'],
  ['EXPLAIN ANALYZE EXECUTE p1', 'EXECUTE'],
  ['CALL proc()', 'CALL'],
  ['COMMIT AND CHAIN', 'AND CHAIN'],
  ['rollback and chain', 'AND CHAIN'],
  ['SELECT 1; SELECT g()', 'function g()'],
  ['UPDATE t SET x = mine(x)', 'function mine()'],
  ['SELECT evil.lower(x)', 'function evil.lower()'],
  ["SELECT set_config('search_path', 'evil, pg_catalog', true)", 'function set_config()'],
];

test('statements that only call built-ins and SQL syntax are provably free of hidden effects', () => {
  for (const sql of SAFE) assert.equal(hiddenEffectRisk(sql), null, sql);
});

test('user functions, DO, EXECUTE, CALL and AND CHAIN are risks, with a reason', () => {
  for (const [sql, reason] of RISKY) assert.equal(hiddenEffectRisk(sql), reason, sql);
});

test('mayHideEffects is a cheap superset: false only when hiddenEffectRisk is null', () => {
  fc.assert(
    fc.property(fc.oneof(anyText, sqlishText), (sql) => {
      if (!mayHideEffects(sql)) assert.equal(hiddenEffectRisk(sql), null);
    }),
    { numRuns: 2000 },
  );
});

test('mayHideEffects: a parenthesis after a keyword or a relation name is no call; one after any other name is', () => {
  const noCall = [
    'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, CURRENT_TIMESTAMP);',
    'INSERT INTO "Users" ("a", "b") VALUES ($1, $2), ($3, $4)',
    'INSERT INTO public.t (a) VALUES (1)',
    'INSERT INTO "s"."t" (a) VALUES (1)',
    'SELECT x FROM t WHERE y IN (1, 2) AND NOT EXISTS (SELECT 1 FROM u WHERE (u.id = t.id))',
    'SELECT * FROM t WHERE a = ANY ($1) AND b = $2',
    'WITH c AS (SELECT 1) SELECT * FROM c',
    'SELECT (a + b) * (c - 1) FROM t',
  ];
  for (const sql of noCall) assert.equal(mayHideEffects(sql), false, sql);
  const mayCall = [
    ...RISKY.map(([sql]) => sql),
    // Calls of built-ins count too: a search_path may shadow them (the session's SHADOWED check).
    'SELECT now()',
    'SELECT lower (x) FROM t',
    'SELECT pg_catalog.lower(x)',
    'SELECT "lower"(x)',
    'INSERT INTO t (a) VALUES (f(1))',
    'INSERT INTO t (a) SELECT g(1)',
    'SELECT x FROM t WHERE a IN (1, 2) -- f(',
    'SELECT f/**/(1)',
    'SELECT f\n(1)',
    'CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql',
    'SELECT 1 (2)',
    // A dollar quote's closing `$` is no part of the word after it (found by the property below).
    '$a$.($a$execute ',
    '$$x$$execute p',
  ];
  for (const sql of mayCall) assert.equal(mayHideEffects(sql), true, sql);
});

test('mayHideEffects is sound for both questions: user code and hidden effects', () => {
  const name = fc.constantFrom('f', 't', 'into', 'values', 'in', 'as', 'public', 'lower', '"q"', 'x1', 'do');
  const piece = fc.oneof(
    name,
    fc.constantFrom('(', ')', '.', ',', ' ', '  ', '\n', "'", '"', '$1', '1', ';', '--', '/*', '*/', '+'),
  );
  const texts = fc.array(piece, { maxLength: 16 }).map((a) => a.join(' '));
  fc.assert(
    fc.property(fc.oneof(texts, sqlishText), (sql) => {
      if (!mayHideEffects(sql)) {
        assert.equal(hiddenEffectRisk(sql), null, sql);
        assert.equal(runsUserCode(sql), false, sql);
      }
    }),
    { numRuns: 5000 },
  );
});

test('never throws on arbitrary input', () => {
  fc.assert(
    fc.property(anyText, (sql) => {
      hiddenEffectRisk(sql);
    }),
    { numRuns: 2000 },
  );
});

test('a search_path naming pg_catalog after another schema lets built-in names be shadowed', () => {
  for (const v of ['evil, pg_catalog', "'evil, pg_catalog'", '"$user", public, "pg_catalog"'])
    assert.equal(searchPathShadowsBuiltins(v), true, v);
  for (const v of ['public', '"$user", public', 'pg_catalog, evil', "'pg_catalog', public", "''"])
    assert.equal(searchPathShadowsBuiltins(v), false, v);
});

test('the allow list for stored expressions leaves out session advisory locks', () => {
  for (const n of ['now', 'nextval', 'lower', 'pg_advisory_xact_lock', 'pg_try_advisory_xact_lock_shared'])
    assert.equal(SAFE_BUILTIN_FUNCTIONS.has(n), true, n);
  for (const n of ['set_config', 'pg_advisory_lock', 'pg_try_advisory_lock_shared', 'query_to_xml'])
    assert.equal(SAFE_BUILTIN_FUNCTIONS.has(n), false, n);
});

void test('runsUserCode: user code, not the SQL EXECUTE of a prepared statement', () => {
  for (const sql of [
    'DO $$ BEGIN EXECUTE $q$EXECUTE q5$q$; END $$',
    'CALL p()',
    'SELECT f(1)',
    'SELECT explain_parallel_append($$execute ab_q4 (2, 2)$$)',
    'EXECUTE q(f(1))',
    'PREPARE q AS SELECT my_func()',
  ])
    assert.equal(runsUserCode(sql), true, sql);
  for (const sql of [
    'EXECUTE q',
    'EXECUTE q(1, 2)',
    "execute foo ('bad')",
    'EXPLAIN (COSTS OFF) EXECUTE q(1)',
    'CREATE TABLE t AS EXECUTE q(4)',
    'SELECT count(*) FROM t',
    'COMMIT AND CHAIN',
    "SELECT nextval('s')",
  ])
    assert.equal(runsUserCode(sql), false, sql);
});
