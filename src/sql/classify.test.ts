import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Classifier } from './classify.js';
import type { StatementClass } from './classify.js';
import { fastPathClass } from './classify-fast-path.js';
import { lex } from './lexer.js';
import { loadParser, parseStatements, parserStatus } from './pg-parser.js';

/** [sql, class, reason (checked when given), hint (checked when given)] */
type Case = readonly [
  sql: string,
  cls: StatementClass,
  reason?: string,
  hint?: 'primary' | 'replica' | 'any',
];

const R = 'read';
const W = 'write';
const TB = 'transaction-begin';
const TRO = 'transaction-begin-read-only';
const TE = 'transaction-end';
const S = 'session';

const corpus: readonly Case[] = [
  // plain reads
  ['SELECT 1', R, 'SELECT'],
  ['select 1;', R, 'SELECT'],
  ['SELECT * FROM users WHERE id = $1', R, 'SELECT'],
  ['SELECT a, b FROM t ORDER BY a DESC LIMIT 10 OFFSET 5', R, 'SELECT'],
  ['SELECT t.* FROM t JOIN u ON u.id = t.uid WHERE u.active', R, 'SELECT'],
  ['SELECT * FROM t1 NATURAL JOIN t2', R, 'SELECT'],
  ['SELECT 1 UNION ALL SELECT 2', R, 'SELECT'],
  ['SELECT a FROM t INTERSECT SELECT a FROM u', R, 'SELECT'],
  ['SELECT a FROM t EXCEPT SELECT a FROM u', R, 'SELECT'],
  ['SELECT DISTINCT a FROM t', R, 'SELECT'],
  ['SELECT DISTINCT ON (a) a, b FROM t', R, 'SELECT'],
  ['SELECT a FROM t GROUP BY a HAVING a > 1', R, 'SELECT'],
  ['SELECT * FROM t WHERE a IN (1, 2, 3)', R, 'SELECT'],
  ['SELECT * FROM t WHERE a = ANY($1)', R, 'SELECT'],
  ['SELECT * FROM t WHERE a BETWEEN 1 AND 10', R, 'SELECT'],
  ["SELECT * FROM t WHERE name LIKE 'a%'", R, 'SELECT'],
  ['SELECT * FROM t WHERE a IS NULL OR b IS NOT DISTINCT FROM c', R, 'SELECT'],
  ['SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id)', R, 'SELECT'],
  ['SELECT (SELECT max(x) FROM u) AS m FROM t', R, 'SELECT'],
  ['SELECT * FROM t FETCH FIRST 1 ROW ONLY', R, 'SELECT'],
  ['SELECT * FROM t LIMIT ALL', R, 'SELECT'],
  ["SELECT 'FOR UPDATE' AS s", R, 'SELECT'],
  ["SELECT 'nextval(1)' AS s", R, 'SELECT'],
  ['SELECT "for", "into" FROM "Weird Table"', R, 'SELECT'],
  ['SELECT $1::int, $2::text[]', R, 'SELECT'],
  ["SELECT '{}'::jsonb, 'x'::regclass", R, 'SELECT'],
  ['SELECT CAST(1 AS text), 1::numeric(10, 2)', R, 'SELECT'],
  ['SELECT a || b, a + 1, -a, a @> b, a ->> 0 FROM t', R, 'SELECT'],
  ['SELECT CASE WHEN a > 0 THEN 1 ELSE 0 END FROM t', R, 'SELECT'],
  ['SELECT ARRAY[1, 2, 3]', R, 'SELECT'],
  ['SELECT ROW(1, 2)', R, 'SELECT'],
  ['SELECT * FROM t TABLESAMPLE SYSTEM (10)', R, 'SELECT'],
  ['SELECT * FROM ONLY t', R, 'SELECT'],
  ['SELECT * FROM t WINDOW w AS (PARTITION BY a)', R, 'SELECT'],
  ['SELECT current_timestamp, current_date, current_user, session_user, localtimestamp', R, 'SELECT'],
  ['SELECT current_catalog, current_role, current_schema', R, 'SELECT'],
  ['TABLE t', R, 'SELECT'],
  ['VALUES (1), (2)', R, 'VALUES'],
  ['(SELECT 1)', R, 'SELECT'],
  ['SHOW search_path', R, 'SHOW'],
  ['SHOW ALL', R, 'SHOW'],
  ['SELECT 1; SELECT 2', R, 'SELECT'],
  ['SELECT 1;;', R, 'SELECT'],
  // functions known read-only
  ['SELECT count(*) FROM t', R, 'SELECT'],
  ['SELECT sum(a), avg(a), min(a), max(a) FROM t', R, 'SELECT'],
  ['SELECT lower(name) FROM t', R, 'SELECT'],
  ['SELECT upper(name), length(name), substr(name, 1, 2) FROM t', R, 'SELECT'],
  ['SELECT now()', R, 'SELECT'],
  ['SELECT pg_catalog.now()', R, 'SELECT'],
  ['SELECT pg_catalog.lower(x) FROM t', R, 'SELECT'],
  ['SELECT coalesce(a, b), nullif(a, 0), greatest(a, b), least(a, b) FROM t', R, 'SELECT'],
  ['SELECT abs(a), round(a, 2), floor(a), ceil(a) FROM t', R, 'SELECT'],
  ["SELECT to_char(now(), 'YYYY'), date_trunc('day', now())", R, 'SELECT'],
  ['SELECT array_agg(a ORDER BY a) FROM t', R, 'SELECT'],
  ["SELECT string_agg(a, ',') FROM t", R, 'SELECT'],
  ["SELECT json_build_object('a', 1), jsonb_build_array(1, 2)", R, 'SELECT'],
  ["SELECT jsonb_extract_path_text(doc, 'a'), jsonb_array_length(doc) FROM t", R, 'SELECT'],
  ['SELECT * FROM jsonb_array_elements($1::jsonb)', R, 'SELECT'],
  ['SELECT * FROM generate_series(1, 10) AS g(i)', R, 'SELECT'],
  ['SELECT unnest(ARRAY[1, 2])', R, 'SELECT'],
  ['SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()', R, 'SELECT'],
  ['SELECT version()', R, 'SELECT'],
  ["SELECT current_setting('search_path')", R, 'SELECT'],
  ['SELECT row_number() OVER (ORDER BY a), rank() OVER w FROM t WINDOW w AS (ORDER BY a)', R, 'SELECT'],
  ['SELECT count(*) FILTER (WHERE a > 1) FROM t', R, 'SELECT'],
  ['SELECT extract(year FROM now())', R, 'SELECT'],
  ["SELECT substring('abc' FROM 2), trim(both ' ' FROM ' a '), position('b' IN 'abc')", R, 'SELECT'],
  ["SELECT now() AT TIME ZONE 'UTC'", R, 'SELECT'],
  ["SELECT 'a' SIMILAR TO 'b'", R, 'SELECT'],
  ["SELECT overlay('abc' PLACING 'x' FROM 2)", R, 'SELECT'],
  ['SELECT gen_random_uuid(), random()', R, 'SELECT'],
  ['SELECT "count"(*) FROM t', R, 'SELECT'],
  ['SELECT pg_size_pretty(pg_total_relation_size($1))', R, 'SELECT'],
  // CTEs
  ['WITH x AS (SELECT 1) SELECT * FROM x', R, 'SELECT'],
  [
    'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r',
    R,
    'SELECT',
  ],
  ['WITH x AS MATERIALIZED (SELECT lower(a) FROM t) SELECT count(*) FROM x', R, 'SELECT'],
  ['WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x', W, 'INSERT in WITH'],
  ['WITH d AS (DELETE FROM t WHERE a < 0 RETURNING a) SELECT count(*) FROM d', W, 'DELETE in WITH'],
  ['WITH u AS (UPDATE t SET a = 1 RETURNING a) SELECT 1', W, 'UPDATE in WITH'],
  ['WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x', W, 'INSERT'],
  ['WITH x AS (SELECT 1) SELECT * FROM x FOR UPDATE', W, 'FOR UPDATE'],
  ['WITH x AS (SELECT nextval($1)) SELECT * FROM x', W, 'function nextval'],
  // functions that write or are unknown
  ["SELECT nextval('s')", W, 'function nextval'],
  ["SELECT setval('s', 10)", W, 'function setval'],
  ["SELECT currval('s')", W, 'function currval'],
  ['SELECT pg_advisory_lock(1)', W, 'function pg_advisory_lock'],
  ['SELECT pg_try_advisory_lock(1, 2)', W, 'function pg_try_advisory_lock'],
  ['SELECT pg_advisory_xact_lock(1)', W, 'function pg_advisory_xact_lock'],
  ['SELECT pg_advisory_unlock_all()', W, 'function pg_advisory_unlock_all'],
  ["SELECT set_config('search_path', '', false)", W, 'function set_config'],
  ["SELECT pg_catalog.set_config('search_path', '', false)", W, 'function pg_catalog.set_config'],
  ["SELECT pg_notify('c', 'payload')", W, 'function pg_notify'],
  ['SELECT txid_current()', W, 'function txid_current'],
  ['SELECT lo_create(0)', W, 'function lo_create'],
  ["SELECT * FROM dblink('conn', 'select 1') AS t(a int)", W, 'function dblink'],
  ['SELECT pg_terminate_backend(123)', W, 'function pg_terminate_backend'],
  ['SELECT my_func()', W, 'function my_func'],
  ['SELECT public.f()', W, 'function public.f'],
  ['SELECT myschema.lower(x) FROM t', W, 'function myschema.lower'],
  ['SELECT "NOW"()', W, 'function NOW'],
  ['SELECT a FROM t WHERE a = my_func(1)', W, 'function my_func'],
  ['SELECT * FROM my_srf()', W, 'function my_srf'],
  ['SELECT count(*) FROM t WHERE b = (SELECT nextval($1))', W, 'function nextval'],
  ['SELECT lower(my_func(a)) FROM t', W, 'function my_func'],
  ['SELECT 1; SELECT nextval($1)', W, 'function nextval'],
  // locking clauses
  ['SELECT * FROM t FOR UPDATE', W, 'FOR UPDATE'],
  ['SELECT * FROM t WHERE id = 1 FOR UPDATE SKIP LOCKED', W, 'FOR UPDATE'],
  ['SELECT * FROM t FOR SHARE', W, 'FOR SHARE'],
  ['SELECT * FROM t FOR NO KEY UPDATE NOWAIT', W, 'FOR NO KEY UPDATE'],
  ['SELECT * FROM t FOR KEY SHARE OF t', W, 'FOR KEY SHARE'],
  ['SELECT * FROM t WHERE a IN (SELECT a FROM u FOR UPDATE)', W, 'FOR UPDATE'],
  ['SELECT * FROM (SELECT * FROM t FOR SHARE) s', W, 'FOR SHARE'],
  ['SELECT 1 INTO t2', W, 'SELECT INTO'],
  ['SELECT * INTO TEMP t2 FROM t', W, 'SELECT INTO'],
  // DML
  ['INSERT INTO t VALUES (1)', W, 'INSERT'],
  ['insert into t (a) select a from u returning *', W, 'INSERT'],
  ['INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = excluded.b', W, 'INSERT'],
  ['UPDATE t SET a = a + 1 WHERE id = $1', W, 'UPDATE'],
  ['DELETE FROM t WHERE id = $1', W, 'DELETE'],
  ['MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE', W, 'MERGE'],
  ['INSERT INTO t VALUES (1); SELECT 1', W, 'INSERT'],
  ['SELECT 1; UPDATE t SET a = 1', W, 'UPDATE'],
  ['TRUNCATE t', W, 'TRUNCATE'],
  // COPY
  ['COPY t FROM STDIN', W, 'COPY FROM'],
  ['COPY t (a, b) FROM STDIN WITH (FORMAT csv)', W, 'COPY FROM'],
  ['COPY t TO STDOUT', R, 'COPY TO'],
  ['COPY (SELECT a FROM t WHERE b) TO STDOUT WITH (FORMAT binary)', R, 'COPY TO'],
  ['COPY (SELECT nextval($1)) TO STDOUT', W, 'function nextval'],
  ['COPY (INSERT INTO t VALUES (1) RETURNING a) TO STDOUT', W, 'INSERT'],
  ["COPY t TO '/tmp/t.csv'", W, 'COPY TO file'],
  ["COPY t TO PROGRAM 'gzip > /tmp/t.gz'", W, 'COPY TO PROGRAM'],
  // DDL and maintenance
  ['CREATE TABLE t (a int)', W, 'CREATE TABLE'],
  ['CREATE TEMP TABLE tt (a int)', W, 'CREATE TEMP TABLE'],
  ['CREATE TEMPORARY TABLE tt AS SELECT 1', W, 'CREATE TEMP TABLE AS'],
  ['CREATE TEMP VIEW v AS SELECT 1', W, 'CREATE TEMP VIEW'],
  ['CREATE TEMP SEQUENCE s', W, 'CREATE TEMP SEQUENCE'],
  ['CREATE TABLE t2 AS SELECT * FROM t', W, 'CREATE TABLE AS'],
  ['CREATE MATERIALIZED VIEW mv AS SELECT 1', W, 'CREATE MATERIALIZED VIEW'],
  ['CREATE INDEX CONCURRENTLY i ON t (a)', W, 'CREATE INDEX'],
  ['CREATE VIEW v AS SELECT 1', W, 'CREATE VIEW'],
  ['CREATE SEQUENCE s', W, 'CREATE SEQUENCE'],
  ['CREATE SCHEMA s', W, 'CREATE SCHEMA'],
  ['CREATE EXTENSION IF NOT EXISTS pgcrypto', W, 'CREATE EXTENSION'],
  ["CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'", W, 'CREATE FUNCTION'],
  ['CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END', W, 'CREATE FUNCTION'],
  ['ALTER TABLE t ADD COLUMN b int', W, 'ALTER TABLE'],
  ['ALTER TABLE t RENAME TO u', W, 'ALTER … RENAME'],
  ['DROP TABLE IF EXISTS t CASCADE', W, 'DROP'],
  ["COMMENT ON TABLE t IS 'x'", W, 'COMMENT'],
  ['GRANT SELECT ON t TO bob', W, 'GRANT'],
  ['REVOKE ALL ON t FROM bob', W, 'REVOKE'],
  ['GRANT admin TO bob', W, 'GRANT ROLE'],
  ['ALTER ROLE bob LOGIN', W, 'ALTER ROLE'],
  ['VACUUM t', W, 'VACUUM'],
  ['VACUUM (ANALYZE, VERBOSE) t', W, 'VACUUM'],
  ['ANALYZE t', W, 'ANALYZE'],
  ['CLUSTER t USING i', W, 'CLUSTER'],
  ['REINDEX TABLE t', W, 'REINDEX'],
  ['LOCK TABLE t IN ACCESS EXCLUSIVE MODE', W, 'LOCK'],
  ['REFRESH MATERIALIZED VIEW CONCURRENTLY mv', W, 'REFRESH MATERIALIZED VIEW'],
  ['CHECKPOINT', W, 'CHECKPOINT'],
  ["ALTER SYSTEM SET work_mem = '64MB'", W, 'ALTER SYSTEM'],
  ["LOAD 'auto_explain'", W, 'LOAD'],
  // procedural, notifications
  ['CALL p(1)', W, 'CALL'],
  ['DO $$ BEGIN PERFORM 1; END $$', W, 'DO'],
  ['LISTEN chan', W, 'LISTEN'],
  ['UNLISTEN *', W, 'UNLISTEN'],
  ["NOTIFY chan, 'x'", W, 'NOTIFY'],
  // EXPLAIN
  ['EXPLAIN SELECT * FROM t', R, 'EXPLAIN'],
  ['EXPLAIN INSERT INTO t VALUES (1)', R, 'EXPLAIN'],
  ['EXPLAIN (ANALYZE false) DELETE FROM t', R, 'EXPLAIN'],
  ['EXPLAIN ANALYZE SELECT * FROM t', R, 'EXPLAIN ANALYZE'],
  ['EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM t', R, 'EXPLAIN ANALYZE'],
  ['EXPLAIN ANALYZE INSERT INTO t VALUES (1)', W, 'EXPLAIN ANALYZE INSERT'],
  ['EXPLAIN (ANALYZE on) UPDATE t SET a = 1', W, 'EXPLAIN ANALYZE UPDATE'],
  ["EXPLAIN ANALYZE SELECT nextval('s')", W, 'EXPLAIN ANALYZE function nextval'],
  ['EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE', W, 'EXPLAIN ANALYZE FOR UPDATE'],
  // transaction control
  ['BEGIN', TB, 'BEGIN'],
  ['begin;', TB, 'BEGIN'],
  ['BEGIN WORK', TB, 'BEGIN'],
  ['BEGIN TRANSACTION', TB, 'BEGIN'],
  ['BEGIN READ WRITE', TB, 'BEGIN'],
  ['BEGIN ISOLATION LEVEL SERIALIZABLE', TB, 'BEGIN'],
  ['START TRANSACTION', TB, 'START TRANSACTION'],
  ['START TRANSACTION ISOLATION LEVEL REPEATABLE READ', TB, 'START TRANSACTION'],
  ['BEGIN READ ONLY', TRO, 'BEGIN READ ONLY'],
  ['begin transaction read only', TRO, 'BEGIN READ ONLY'],
  ['START TRANSACTION READ ONLY', TRO, 'START TRANSACTION READ ONLY'],
  ['START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY', TRO, 'START TRANSACTION READ ONLY'],
  ['BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE', TRO, 'BEGIN READ ONLY'],
  ['BEGIN READ ONLY, READ WRITE', TB, 'BEGIN'],
  ['COMMIT', TE, 'COMMIT'],
  ['COMMIT WORK', TE, 'COMMIT'],
  ['COMMIT AND CHAIN', TE, 'COMMIT'],
  ['END', TE, 'COMMIT'],
  ['ROLLBACK', TE, 'ROLLBACK'],
  ['ROLLBACK TRANSACTION', TE, 'ROLLBACK'],
  ['ABORT', TE, 'ROLLBACK'],
  ["PREPARE TRANSACTION 'gid'", TE, 'PREPARE TRANSACTION'],
  ["COMMIT PREPARED 'gid'", W, 'COMMIT PREPARED'],
  ["ROLLBACK PREPARED 'gid'", W, 'ROLLBACK PREPARED'],
  ['BEGIN; SELECT 1; COMMIT', TB, 'BEGIN'],
  ['BEGIN; INSERT INTO t VALUES (1); COMMIT', W, 'INSERT'],
  ['BEGIN READ ONLY; SELECT 1; COMMIT', TRO, 'BEGIN READ ONLY'],
  ['BEGIN READ ONLY; SELECT nextval($1); COMMIT', W, 'function nextval'],
  ['COMMIT; SELECT 1', W, 'COMMIT with other statements'],
  ['SELECT 1; BEGIN', W, 'SELECT with other statements'],
  // session statements
  ['SAVEPOINT a', S, 'SAVEPOINT'],
  ['RELEASE SAVEPOINT a', S, 'RELEASE'],
  ['ROLLBACK TO SAVEPOINT a', S, 'ROLLBACK TO'],
  ["SET search_path = 'app'", S, 'SET'],
  ['SET LOCAL statement_timeout = 0', S, 'SET'],
  ["SET pgscale.target = 'primary'", S, 'SET'],
  ['SET pgscale.target = replica', S, 'SET'],
  // PRIMARY and ANY are reserved words: PostgreSQL rejects them unquoted as a SET value.
  ['SET pgscale.target = primary', W, 'unparsable'],
  ['SET pgscale.target = any', W, 'unparsable'],
  ['SET TRANSACTION READ ONLY', S, 'SET'],
  ['RESET ALL', S, 'RESET'],
  ['RESET work_mem', S, 'RESET'],
  ['DISCARD ALL', S, 'DISCARD'],
  ['PREPARE p AS SELECT 1', S, 'PREPARE'],
  ['PREPARE q (int) AS INSERT INTO t VALUES ($1)', S, 'PREPARE'],
  ['EXECUTE p', W, 'EXECUTE'],
  ['DEALLOCATE ALL', S, 'DEALLOCATE'],
  ['FETCH 10 FROM c', S, 'FETCH'],
  ['MOVE 5 IN c', S, 'MOVE'],
  ['CLOSE c', S, 'CLOSE'],
  ['SET CONSTRAINTS ALL DEFERRED', S, 'SET CONSTRAINTS'],
  ['SET a = 1; SET b = 2', S, 'SET'],
  ['SET a = 1; SELECT 1', R, 'SELECT'],
  ['DECLARE c CURSOR FOR SELECT * FROM t', R, 'DECLARE'],
  ['DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t FOR UPDATE', W, 'FOR UPDATE'],
  // hints, comments, quoting, unicode
  ['/* pgscale:primary */ SELECT 1', R, 'SELECT', 'primary'],
  ['SELECT 1 -- pgscale:replica', R, 'SELECT', 'replica'],
  ['/* pgscale:any */ INSERT INTO t VALUES (1)', W, 'INSERT', 'any'],
  ['/* pgscale:replica */ SELECT nextval($1)', W, 'function nextval', 'replica'],
  ["SELECT '/* pgscale:primary */'", R, 'SELECT'],
  ['/* leading comment */ SELECT 1', R, 'SELECT'],
  ['-- just a comment\nSELECT 1', R, 'SELECT'],
  ['SELECT /* nested /* comment */ still */ 1', R, 'SELECT'],
  ['/* pgscale:primary */', R, 'empty', 'primary'],
  ['SELECT "ñame", \'日本語\' FROM "表"', R, 'SELECT'],
  ["SELECT lower('ÄÖÜ'), upper(U&'\\00e9')", R, 'SELECT'],
  ['SELECT "Lower"(x) FROM t', W, 'function Lower'],
  ["SELECT $$ nextval('s') $$", R, 'SELECT'],
  ["SELECT E'it\\'s' FROM t", R, 'SELECT'],
  // unparsable, empty
  ['', R, 'empty'],
  ['   \n\t ', R, 'empty'],
  [';', R, 'empty'],
  ['SELEC 1', W, 'unparsable'],
  ['SELECT * FROM t WHERE a = lower(', W, 'unparsable'],
  // Malformed, but no parenthesis: the fast path calls it a read (the replica rejects it alike).
  ['SELECT * FROM', R, 'SELECT'],
  ["SELECT 'unterminated", W, 'unparsable'],
  ['SELECT (1', W, 'unparsable'],
  // Malformed; the fast path's first word decides ('unparsable' without the fast path).
  ['INSERT INTO', W, 'INSERT'],
  ['BEGIN FOO', W, 'unparsable'],
  ['garbage here', W, 'unparsable'],
  ['SELECT 1 FOR', W, 'unparsable'],
];

/**
 * The fast path must give the parser's class and reason. On text the parser rejects it may
 * differ in two ways only: a malformed SELECT without parentheses is a 'read' (the replica
 * reports the same syntax error the primary would), and a malformed INSERT/UPDATE/DELETE is a
 * write named after its first word rather than 'unparsable'.
 */
function agree(fast: { cls: string; reason: string }, parsed: { cls: string; reason: string }): boolean {
  if (parsed.reason === 'unparsable') return fast.cls === 'read' || fast.cls === parsed.cls;
  return fast.cls === parsed.cls && fast.reason === parsed.reason;
}

let classifier: Classifier;
let parserOnly: Classifier;

test('setup: load the parser', async () => {
  classifier = await Classifier.create();
  parserOnly = await Classifier.create({ fastPath: false });
});

test(`corpus of ${corpus.length} statements`, () => {
  assert.ok(corpus.length >= 150);
  const wrong: string[] = [];
  for (const [sql, cls, reason, hint] of corpus) {
    const got = classifier.classify(sql);
    const bad =
      got.cls !== cls ||
      (reason !== undefined && got.reason !== reason) ||
      (hint !== undefined && got.hint !== hint) ||
      (hint === undefined && got.hint !== null);
    if (bad)
      wrong.push(
        `${JSON.stringify(sql)}: got ${JSON.stringify(got)}, want ${cls} ${reason ?? ''} ${hint ?? ''}`,
      );
  }
  assert.deepEqual(wrong, []);
});

test('the fast path answers as the parser does wherever it answers', () => {
  let answered = 0;
  const disagreements: string[] = [];
  for (const [sql] of corpus) {
    const fast = fastPathClass(lex(sql));
    if (fast === null) continue;
    answered++;
    const parsed = parserOnly.classify(sql);
    if (!agree(fast, parsed)) {
      disagreements.push(
        `${JSON.stringify(sql)}: fast ${fast.cls}/${fast.reason}, parser ${parsed.cls}/${parsed.reason}`,
      );
    }
  }
  assert.deepEqual(disagreements, []);
  assert.ok(answered >= 40, `fast path answered only ${answered}`);
});

test('the whole corpus classifies the same with and without the fast path', () => {
  for (const [sql] of corpus) {
    const a = classifier.classify(sql);
    const b = parserOnly.classify(sql);
    assert.ok(agree(a, b), `${sql}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    assert.equal(a.hint, b.hint);
  }
});

test('readOnlyFunctions allows a function; writeFunctions overrides every allow list', async () => {
  const c = await Classifier.create({
    readOnlyFunctions: ['my_func', 'App.Report', 'util.pure'],
    writeFunctions: ['lower', 'util.touch'],
  });
  const cases: [string, StatementClass, string][] = [
    ['SELECT my_func()', 'read', 'SELECT'],
    ['SELECT public.my_func()', 'read', 'SELECT'],
    ['SELECT app.report(1)', 'read', 'SELECT'],
    ['SELECT report(1)', 'write', 'function report'],
    ['SELECT util.pure()', 'read', 'SELECT'],
    ['SELECT pure()', 'write', 'function pure'],
    ['SELECT lower(name) FROM t', 'write', 'function lower'],
    ['SELECT pg_catalog.lower(name) FROM t', 'write', 'function pg_catalog.lower'],
    ['SELECT touch()', 'write', 'function touch'],
    ['SELECT util.touch()', 'write', 'function util.touch'],
    ['SELECT upper(name) FROM t', 'read', 'SELECT'],
    ["SELECT nextval('s')", 'write', 'function nextval'],
  ];
  for (const [sql, cls, reason] of cases) {
    const got = c.classify(sql);
    assert.equal(got.cls, cls, sql);
    assert.equal(got.reason, reason, sql);
  }
  // The default classifier still refuses my_func.
  assert.equal(classifier.classify('SELECT my_func()').cls, 'write');
});

test('cache counters: hits, misses, fast path and parser', async () => {
  const c = await Classifier.create({ cacheSize: 2 });
  c.classify('SELECT 1'); // fast path
  c.classify('SELECT 1'); // hit
  c.classify('SELECT lower(a) FROM t'); // parsed
  c.classify('SELECT lower(a) FROM t'); // hit
  assert.deepEqual(c.stats, { hits: 2, misses: 2, fastPath: 1, parsed: 1 });
  c.classify('SELEC 1'); // parsed, rejected; evicts 'SELECT 1'
  c.classify('SELECT 1'); // miss again, fast path
  assert.deepEqual(c.stats, { hits: 2, misses: 4, fastPath: 2, parsed: 2 });
  // The same answer object comes back from the cache, frozen.
  const a = c.classify('SELECT 1');
  assert.equal(c.classify('SELECT 1'), a);
  assert.ok(Object.isFrozen(a));
  assert.deepEqual(c.stats, { hits: 4, misses: 4, fastPath: 2, parsed: 2 });

  const none = await Classifier.create({ cacheSize: 0 });
  none.classify('SELECT 1');
  none.classify('SELECT 1');
  assert.deepEqual(none.stats, { hits: 0, misses: 2, fastPath: 2, parsed: 0 });
});

test('100k-deep parentheses, deep sub-selects and long operator chains are writes, without throwing', () => {
  // Without the fast path: a paren-free chain (`SELECT 1 + 1 + …`) is a read to the fast path,
  // and rightly so; here the guard in front of the parser is under test.
  const c = new Classifier({ fastPath: false });
  const cases = [
    'SELECT ' + '('.repeat(100_000) + '1' + ')'.repeat(100_000),
    'SELECT ' + '(SELECT '.repeat(5_000) + '1' + ')'.repeat(5_000),
    'SELECT 1' + ' + 1'.repeat(50_000),
    "SELECT 'a'" + " || 'a'".repeat(50_000),
    'SELECT 1' + ' UNION ALL SELECT 1'.repeat(50_000),
    'SELECT ' + 'ARRAY['.repeat(50_000) + '1' + ']'.repeat(50_000),
  ];
  for (const sql of cases) {
    const got = c.classify(sql);
    assert.equal(got.cls, 'write', sql.slice(0, 40));
    assert.equal(got.reason, 'too deeply nested to parse', sql.slice(0, 40));
  }
  assert.equal(c.stats.parsed, 0);
  assert.equal(parserStatus().crashes, 0);
  // With the fast path, the parenthesised ones are still writes, and nothing throws.
  for (const sql of cases) assert.ok(['read', 'write'].includes(classifier.classify(sql).cls));
  assert.equal(classifier.classify(cases[0]!).cls, 'write');
});

test('moderate nesting and long flat lists still parse', () => {
  const c = new Classifier({ fastPath: false });
  assert.equal(c.classify('SELECT ' + '('.repeat(100) + '1' + ')'.repeat(100)).cls, 'read');
  const inList = Array.from({ length: 20_000 }, (_, i) => (i % 2 ? -i : i)).join(', ');
  assert.equal(c.classify(`SELECT * FROM t WHERE a IN (${inList})`).cls, 'read');
  const ands = Array.from({ length: 3_000 }, (_, i) => `a${i} = ${i}`).join(' AND ');
  assert.equal(c.classify(`SELECT 1 FROM t WHERE ${ands}`).cls, 'read');
  assert.equal(c.stats.parsed, 3);
});

test('a 2 MB statement is a write without parsing; its hint is still read', () => {
  const c = new Classifier();
  const big = '/* pgscale:replica */ SELECT * FROM t WHERE a IN (' + '1, '.repeat(700_000) + '1)';
  assert.ok(big.length > 2_000_000);
  assert.deepEqual(c.classify(big), { cls: 'write', reason: 'too large to parse', hint: 'replica' });
  // Two-byte characters: under 1 MB of UTF-16 units but over 1 MB of UTF-8.
  const wide = "SELECT lower('" + 'é'.repeat(600_000) + "')";
  assert.equal(c.classify(wide).reason, 'too large to parse');
  // A big INSERT never reaches the parser: its first word decides.
  const bulk = 'INSERT INTO t VALUES ' + Array.from({ length: 200_000 }, (_, i) => `(${i})`).join(',');
  assert.deepEqual(c.classify(bulk), { cls: 'write', reason: 'INSERT', hint: null });
  assert.equal(c.stats.parsed, 0);
});

test('random SQL-ish text never throws and gets a class', () => {
  const fragments = fc.constantFrom(
    'SELECT',
    'INSERT',
    'BEGIN',
    'COMMIT',
    'READ',
    'ONLY',
    'FOR',
    'UPDATE',
    'INTO',
    'WITH',
    'AS',
    'nextval',
    'lower',
    '(',
    ')',
    ';',
    ',',
    "'",
    '"',
    '$$',
    '/*',
    '*/',
    '--',
    '\n',
    ' ',
    '1',
    't',
    'FROM',
    '::',
    '+',
    'pgscale:replica',
    'é',
  );
  const text = fc.array(fragments, { maxLength: 30 }).map((a) => a.join(' '));
  const classes = new Set([
    'read',
    'write',
    'transaction-begin-read-only',
    'transaction-begin',
    'transaction-end',
    'session',
  ]);
  fc.assert(
    fc.property(text, (sql) => {
      const fast = classifier.classify(sql);
      const slow = parserOnly.classify(sql);
      assert.ok(classes.has(fast.cls) && classes.has(slow.cls));
      assert.equal(fast.hint, slow.hint);
      assert.ok(agree(fast, slow), `${sql}: ${JSON.stringify(fast)} vs ${JSON.stringify(slow)}`);
    }),
    { numRuns: 500 },
  );
});

// Last: it deliberately breaks the shared WASM instance.
test('a parser instance that overflows the stack is replaced, not reused', async () => {
  const before = parserStatus();
  // Past the classifier's guard on purpose: straight to the parser.
  const outcome = parseStatements('SELECT 1' + ' + 1'.repeat(200_000));
  assert.equal(outcome.kind, 'crashed');
  assert.equal(parserStatus().crashes, before.crashes + 1);
  const c = new Classifier();
  const meanwhile = c.classify('SELECT lower(a) FROM t');
  if (!parserStatus().ready)
    assert.deepEqual(meanwhile, { cls: 'write', reason: 'parser unavailable', hint: null });
  await loadParser();
  const status = parserStatus();
  assert.equal(status.ready, true);
  assert.equal(status.instances, before.instances + 1);
  // Not cached while unavailable: classified properly now.
  assert.deepEqual(c.classify('SELECT lower(a) FROM t'), { cls: 'read', reason: 'SELECT', hint: null });
  assert.deepEqual(c.classify('SELECT * FROM t FOR UPDATE'), {
    cls: 'write',
    reason: 'FOR UPDATE',
    hint: null,
  });
  assert.equal(c.classify('SELEC 1').reason, 'unparsable');
});
