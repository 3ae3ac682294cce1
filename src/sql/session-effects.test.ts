import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { anyText, sqlishText } from './arbitraries.test-util.js';
import type { SessionEffect } from './session-effects.js';
import { cannotChangeSession, sessionEffects } from './session-effects.js';

function one(sql: string): SessionEffect {
  const all = sessionEffects(sql);
  assert.equal(all.length, 1, sql);
  return all[0]!;
}

const set = (name: string, value: string): SessionEffect => ({ kind: 'set', name, value });
const reset = (name: string): SessionEffect => ({ kind: 'reset', name });
const sticky = (reason: string): SessionEffect => ({ kind: 'sticky', reason });
const OTHER: SessionEffect = { kind: 'other' };
const LOCAL: SessionEffect = { kind: 'local' };

const cases: [string, SessionEffect][] = [
  // SET, generic and special forms
  ["set TimeZone='UTC'", set('timezone', "'UTC'")],
  ['SET search_path TO public, "My Schema"', set('search_path', 'public, "My Schema"')],
  ['set statement_timeout = 0', set('statement_timeout', '0')],
  ['SET SESSION work_mem TO 64MB', set('work_mem', '64MB')],
  ['set x.y=-1', set('x.y', '-1')],
  ['SET pgscale.target = primary', set('pgscale.target', 'primary')],
  ['SET "MyApp"."Flag" = on', set('myapp.flag', 'on')],
  ['SET /* c */ search_path /* d */ = a /* e */, b -- f', set('search_path', 'a /* e */, b')],
  ['SET lock_timeout TO DEFAULT', reset('lock_timeout')],
  ["SET lock_timeout TO 'default'", set('lock_timeout', "'default'")],
  ["SET TIME ZONE 'Europe/Paris'", set('timezone', "'Europe/Paris'")],
  ['set time zone local', reset('timezone')],
  ['SET TIME ZONE DEFAULT', reset('timezone')],
  ["SET TIME ZONE INTERVAL '+02:00' HOUR TO MINUTE", set('timezone', "INTERVAL '+02:00' HOUR TO MINUTE")],
  ["SET NAMES 'UTF8'", set('client_encoding', "'UTF8'")],
  ['SET NAMES', reset('client_encoding')],
  ["SET SCHEMA 'app'", set('search_path', "'app'")],
  ['SET XML OPTION DOCUMENT', set('xmloption', 'DOCUMENT')],
  ['SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY', sticky('SET SESSION CHARACTERISTICS')],
  ['SET LOCAL search_path TO x', { kind: 'local', searchPath: 'x' }],
  ["set local SEARCH_PATH = app, 'Public'", { kind: 'local', searchPath: "app, 'Public'" }],
  ["SET LOCAL SCHEMA 'app'", { kind: 'local', searchPath: "'app'" }],
  ['SET LOCAL search_path TO DEFAULT', { kind: 'local', searchPath: 'DEFAULT' }],
  ['set local role r', LOCAL],
  ['SET TRANSACTION ISOLATION LEVEL SERIALIZABLE', LOCAL],
  ['SET SESSION TRANSACTION READ ONLY', LOCAL],
  ['SET CONSTRAINTS ALL DEFERRED', LOCAL],
  ['set transaction_isolation = serializable', LOCAL],
  ['SET ROLE admin', sticky('SET ROLE')],
  ['set session role admin', sticky('SET ROLE')],
  ["set role = 'admin'", sticky('SET ROLE')],
  ['SET SESSION AUTHORIZATION bob', sticky('SET SESSION AUTHORIZATION')],
  ['set session_authorization = bob', sticky('SET session_authorization')],
  ['SET x FROM CURRENT', { kind: 'sticky', reason: 'SET ... FROM CURRENT' }],
  ['SET x', OTHER],
  ['SET x =', OTHER],
  // RESET
  ['RESET ALL', { kind: 'reset_all' }],
  ['reset search_path', reset('search_path')],
  ['RESET "TimeZone"', reset('timezone')],
  ['reset time zone', reset('timezone')],
  ['reset role', sticky('RESET role')],
  ['RESET SESSION AUTHORIZATION', sticky('RESET SESSION AUTHORIZATION')],
  ['RESET TRANSACTION ISOLATION LEVEL', LOCAL],
  // LISTEN / NOTIFY
  ['LISTEN Jobs', { kind: 'listen', channel: 'jobs' }],
  ['listen "Jobs"', { kind: 'listen', channel: 'Jobs' }],
  ['UNLISTEN *', { kind: 'unlisten', channel: '*' }],
  ['unlisten jobs', { kind: 'unlisten', channel: 'jobs' }],
  ["NOTIFY jobs, 'payload'", { kind: 'notify', channel: 'jobs' }],
  // prepared statements
  [
    'PREPARE q1 (int, text) AS SELECT $1::int, $2',
    { kind: 'prepare', name: 'q1', text: 'PREPARE q1 (int, text) AS SELECT $1::int, $2' },
  ],
  ['prepare "Q" as select 1', { kind: 'prepare', name: 'Q', text: 'prepare "Q" as select 1' }],
  ["PREPARE TRANSACTION 'gid'", OTHER],
  ["EXECUTE q1(1, 'a')", { kind: 'execute', name: 'q1' }],
  ['EXPLAIN ANALYZE VERBOSE EXECUTE Q1', { kind: 'execute', name: 'q1' }],
  ['explain (analyze, format json) execute q1 (1)', { kind: 'execute', name: 'q1' }],
  ['CREATE TABLE t (a int) AS EXECUTE q1(1) WITH NO DATA', { kind: 'execute', name: 'q1' }],
  ['create unlogged table if not exists t as execute "Q"', { kind: 'execute', name: 'Q' }],
  ['EXPLAIN CREATE TABLE t AS EXECUTE q1', { kind: 'execute', name: 'q1' }],
  ['DEALLOCATE q1', { kind: 'deallocate', name: 'q1' }],
  ['deallocate prepare q1', { kind: 'deallocate', name: 'q1' }],
  ['deallocate prepare', { kind: 'deallocate', name: 'prepare' }],
  ['DEALLOCATE ALL', { kind: 'deallocate', name: null }],
  ['DEALLOCATE PREPARE ALL', { kind: 'deallocate', name: null }],
  ['DEALLOCATE "ALL"', { kind: 'deallocate', name: 'ALL' }],
  // DISCARD
  ['DISCARD ALL', { kind: 'discard', what: 'all' }],
  ['discard temporary', { kind: 'discard', what: 'temp' }],
  ['discard plans', { kind: 'discard', what: 'plans' }],
  ['discard sequences', { kind: 'discard', what: 'sequences' }],
  ['discard constructor', OTHER],
  // transactions
  ['BEGIN', { kind: 'begin' }],
  ['begin isolation level serializable', { kind: 'begin' }],
  ['START TRANSACTION READ ONLY', { kind: 'begin' }],
  ['COMMIT', { kind: 'commit' }],
  ['end work', { kind: 'commit' }],
  ['COMMIT AND CHAIN', { kind: 'commit' }],
  ["COMMIT PREPARED 'gid'", OTHER],
  ['ROLLBACK', { kind: 'rollback' }],
  ['abort', { kind: 'rollback' }],
  ['ROLLBACK AND NO CHAIN', { kind: 'rollback' }],
  ['ROLLBACK TO SAVEPOINT s', OTHER],
  ['rollback work to s', OTHER],
  ["ROLLBACK PREPARED 'gid'", OTHER],
  ['SAVEPOINT s', OTHER],
  // sticky
  ['create temporary table t (a int)', sticky('CREATE TEMP TABLE')],
  ['CREATE TEMP VIEW v AS SELECT 1', sticky('CREATE TEMP VIEW')],
  ['create global temp sequence s', sticky('CREATE TEMP SEQUENCE')],
  ['create or replace temp recursive view v(n) as select 1', sticky('CREATE TEMP RECURSIVE')],
  ['create local temporary table t ()', sticky('CREATE TEMP TABLE')],
  ['CREATE TABLE pg_temp.t (a int)', sticky('object in pg_temp')],
  ['create function pg_temp.f() returns int as $$select 1$$ language sql', sticky('object in pg_temp')],
  ['CREATE TABLE temp (a int)', OTHER],
  ['SELECT * INTO TEMP TABLE t FROM x', sticky('SELECT INTO TEMP')],
  ['select 1 as a into temporary t', sticky('SELECT INTO TEMP')],
  ['INSERT INTO temp SELECT 1', OTHER],
  ['insert into temp values (1)', OTHER],
  ['DECLARE c CURSOR WITH HOLD FOR SELECT 1', sticky('DECLARE ... WITH HOLD')],
  ['declare c cursor for select 1 with hold', OTHER],
  ['declare c no scroll cursor without hold for select 1', OTHER],
  ["LOAD 'auto_explain'", sticky('LOAD')],
  ['select pg_advisory_lock(1)', sticky('session advisory lock: pg_advisory_lock()')],
  [
    'SELECT pg_catalog.PG_TRY_ADVISORY_LOCK_SHARED(1, 2)',
    sticky('session advisory lock: pg_try_advisory_lock_shared()'),
  ],
  ['select pg_advisory_xact_lock(1)', OTHER],
  ['select pg_try_advisory_xact_lock(1)', OTHER],
  ["select 'pg_advisory_lock(1)' /* pg_advisory_lock(1) */", OTHER],
  ['select pg_advisory_lock', OTHER],
  ['with x as (select pg_advisory_lock(42)) select 1', sticky('session advisory lock: pg_advisory_lock()')],
  ["select set_config('search_path','',false)", sticky('set_config(…, is_local false)')],
  ["SELECT pg_catalog.set_config('search_path', '', false);", sticky('set_config(…, is_local false)')],
  ["select set_config('a', 'b', true)", OTHER],
  ["select set_config('a', f('x', 'y'), 'on')", OTHER],
  ["select set_config('a', 'b', $1)", sticky('set_config(…, is_local false)')],
  ["select set_config('a', 'b', true), set_config('c', 'd', 'off')", sticky('set_config(…, is_local false)')],
  ["select set_config('a', set_config('b', 'c', false), true)", sticky('set_config(…, is_local false)')],
  ["select set_config('a', 'b'", sticky('set_config(…) not closed')],
  ['EXECUTE q(pg_advisory_lock(1))', sticky('session advisory lock: pg_advisory_lock()')],
  [
    'PREPARE q AS SELECT pg_advisory_lock(1)',
    { kind: 'prepare', name: 'q', text: 'PREPARE q AS SELECT pg_advisory_lock(1)' },
  ],
  [
    'DO $$ BEGIN PERFORM pg_advisory_lock(1); END $$',
    sticky('DO block: session advisory lock: pg_advisory_lock()'),
  ],
  ["DO LANGUAGE plpgsql 'BEGIN CREATE TEMP TABLE t (a int); END'", sticky('DO block: CREATE TEMP TABLE')],
  ['DO $$BEGIN SET search_path = x; END$$', sticky('DO block: SET')],
  ['DO $$BEGIN SET LOCAL search_path = x; UPDATE t SET a = 1; END$$', OTHER],
  // other
  ['SELECT 1', OTHER],
  ['UPDATE t SET a = 1', OTHER],
  ['(select 1)', OTHER],
  ['"set" x = 1', OTHER],
  ['VACUUM', OTHER],
];

void test('sessionEffects: one statement each', () => {
  for (const [sql, expected] of cases) assert.deepEqual(one(sql), expected, sql);
});

void test('sessionEffects: multi-statement strings, comments anywhere', () => {
  assert.deepEqual(sessionEffects('set statement_timeout = 0; select 1'), [
    set('statement_timeout', '0'),
    OTHER,
  ]);
  assert.deepEqual(
    sessionEffects(
      "/* pgscale:primary */ BEGIN; SET LOCAL a = 1; set b = 'x;y' -- c\n; LISTEN ch; COMMIT; ;select $$; set c = 1$$",
    ),
    [
      { kind: 'begin' },
      LOCAL,
      set('b', "'x;y'"),
      { kind: 'listen', channel: 'ch' },
      { kind: 'commit' },
      OTHER,
    ],
  );
  assert.deepEqual(sessionEffects(''), []);
  assert.deepEqual(sessionEffects('  ; -- nothing\n;'), []);
});

void test('sessionEffects: standard_conforming_strings off moves string ends', () => {
  const sql = "set a = 'x\\'; set b = 1'";
  assert.deepEqual(sessionEffects(sql), [set('a', "'x\\'"), set('b', "1'")]);
  assert.deepEqual(sessionEffects(sql, { standardConformingStrings: false }), [
    set('a', "'x\\'; set b = 1'"),
  ]);
});

void test('property: never throws, one effect per statement', () => {
  fc.assert(
    fc.property(fc.oneof(anyText, sqlishText), (sql) => {
      const effects = sessionEffects(sql);
      assert.ok(Array.isArray(effects));
    }),
    { numRuns: 1000 },
  );
  const stmt = fc.constantFrom(
    'set a = 1',
    'reset all',
    'select 1',
    'listen x',
    'begin',
    'commit',
    "prepare p as select ';'",
  );
  fc.assert(
    fc.property(fc.array(stmt, { maxLength: 10 }), (a) => {
      assert.equal(sessionEffects(a.join(';')).length, a.length);
    }),
  );
});

void test('sessionEffects: 10 MB and pathological nesting complete', () => {
  const big = "set a = 'x'; select pg_advisory_xact_lock(1); insert into t values (1, 'y');".repeat(140_000);
  assert.ok(big.length > 10_000_000);
  assert.equal(sessionEffects(big).length, 420_000);
  const nested = 'select ' + "set_config('a', ".repeat(100_000) + "'b', true)".repeat(100_000);
  assert.deepEqual(sessionEffects(nested), [OTHER]);
  assert.equal(sessionEffects('select ' + '('.repeat(100_000)).length, 1);
  const doBody = 'DO $$ BEGIN ' + 'CREATE TABLE x (); '.repeat(100_000) + 'END $$';
  assert.deepEqual(sessionEffects(doBody), [OTHER]);
});

void test('cannotChangeSession: plain application statements skip the lexer, anything doubtful does not', () => {
  for (const sql of [
    'SELECT abalance FROM pgbench_accounts WHERE aid = 1;',
    'UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 2;',
    'INSERT INTO t (a) VALUES (1)',
    'BEGIN;',
    'END;',
    'select settings from t',
  ]) {
    assert.equal(cannotChangeSession(sql), true, sql);
  }
  for (const sql of [
    'SET a = 1',
    '  reset all',
    'set\ta = 1',
    'DO $$ BEGIN PERFORM 1; END $$',
    'DO $$BEGIN SET a = 1 END$$',
    '/* c */ SET a = 1',
    '-- c\nSET a = 1',
    'select 1; set a = 1',
    "select set_config('a', 'b', false)",
    'select pg_advisory_lock(1)',
    'create temp table t ()',
    'select * into temporary t from u',
    'declare c cursor with hold for select 1',
    "load 'x'",
    'listen x',
    'prepare p as select 1',
    'execute p',
    'deallocate p',
    'discard all',
    'select U&"pg_adv\\0069sory_lock"(1)',
    "select E'\\x41'",
  ]) {
    assert.equal(cannotChangeSession(sql), false, sql);
  }
});

void test('property: whatever cannotChangeSession lets through has no tracked effect', () => {
  const inert = new Set(['other', 'begin', 'commit', 'rollback', 'notify']);
  const words = fc.constantFrom(
    'set ',
    'SET ',
    'reset ',
    'Set',
    'local ',
    'session ',
    'do ',
    '$$',
    'begin ',
    'update t set a = 1 ',
    'select ',
    'into ',
    'temp ',
    'temporary ',
    'table ',
    'create ',
    'with hold ',
    'declare ',
    'cursor ',
    'for ',
    'load ',
    'listen ',
    'unlisten ',
    'prepare ',
    'execute ',
    'explain ',
    'deallocate ',
    'discard ',
    'all ',
    'pg_advisory_lock',
    'set_config',
    "('a', 'b', false)",
    ' as ',
    'pg_temp.',
    'x ',
  );
  const text = fc.array(fc.oneof(words, sqlishText), { maxLength: 12 }).map((parts) => parts.join(''));
  fc.assert(
    fc.property(fc.oneof(text, anyText, sqlishText), (sql) => {
      if (!cannotChangeSession(sql)) return;
      for (const e of sessionEffects(sql)) assert.ok(inert.has(e.kind), `${sql}: ${e.kind}`);
    }),
    { numRuns: 20_000 },
  );
});
