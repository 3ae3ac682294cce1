import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Analyzer, MAX_CACHED_TEXT, NO_EFFECTS } from './analyze.js';
import type { Equality, StatementFacts } from './analyze.js';
import { Classifier } from './classify.js';
import { cannotChangeSession, sessionEffects } from './session-effects.js';
import { hiddenEffectRisk, mayHideEffects, runsUserCode } from './session-safety.js';
import { relationRefs } from './relation-refs.js';
import { isDdl } from '../proxy/backend/hidden-code.js';
import { loadParser, parseStatements, parserStatus } from './pg-parser.js';

const analyzer = await Analyzer.create();
const facts = (sql: string): StatementFacts => analyzer.analyze(sql);
const c = (text: string, cast: string | null = null) => ({ kind: 'const', text, cast }) as const;
const p = (index: number) => ({ kind: 'param', index }) as const;

test('equalities: qualified by alias, by table, unqualified with one relation, $n, casts, either side', () => {
  assert.deepEqual(facts("SELECT * FROM s.t x WHERE x.a = '5'::int AND b = $1").equalities, [
    { column: 'a', relation: 's.t', value: c('5', 'int4') },
    { column: 'b', relation: 's.t', value: p(1) },
  ]);
  assert.deepEqual(facts('SELECT * FROM t WHERE t.a = 3 AND 7 = b AND c = $2::bigint').equalities, [
    { column: 'a', relation: 't', value: c('3') },
    { column: 'b', relation: 't', value: c('7') },
    { column: 'c', relation: 't', value: p(2) },
  ]);
  assert.deepEqual(facts('SELECT * FROM s.t WHERE s.t.a = -1').equalities, [
    { column: 'a', relation: 's.t', value: c('-1') },
  ]);
  // Two relations: unqualified columns are not resolved; qualified ones are; a table name hidden
  // by its alias does not resolve.
  assert.deepEqual(
    facts('SELECT * FROM t a JOIN u ON u.id = a.uid WHERE a.k = 1 AND v = 2 AND t.k = 3').equalities,
    [
      { column: 'k', relation: 't', value: c('1') },
      { column: 'v', relation: null, value: c('2') },
      { column: 'k', relation: null, value: c('3') },
    ],
  );
  // UPDATE and DELETE: the target is a FROM relation.
  assert.deepEqual(facts('UPDATE accounts SET b = b + 1 WHERE aid = $3').equalities, [
    { column: 'aid', relation: 'accounts', value: p(3) },
  ]);
  assert.deepEqual(facts("DELETE FROM q WHERE id = 'x' AND (k = 1 AND j = true)").equalities, [
    { column: 'id', relation: 'q', value: c('x') },
    { column: 'k', relation: 'q', value: c('1') },
    { column: 'j', relation: 'q', value: c('true') },
  ]);
});

test('equalities: none under a top-level OR or NOT, none between columns or with other operators', () => {
  assert.deepEqual(facts('SELECT * FROM t WHERE a = 1 OR a = 2').equalities, []);
  assert.deepEqual(facts('SELECT * FROM t WHERE NOT (a = 1)').equalities, []);
  assert.deepEqual(
    facts('SELECT * FROM t WHERE a = b AND c > 1 AND d <> 2 AND e = lower($1)').equalities,
    [],
  );
  assert.deepEqual(facts('SELECT * FROM t WHERE a = ANY($1) AND b IS NULL AND c = NULL').equalities, []);
  assert.deepEqual(facts('SELECT 1 FROM t WHERE a = 1 UNION SELECT 2').equalities, []);
  assert.deepEqual(facts('SELECT * FROM t').equalities, []);
  // A sub-select in FROM: an unqualified column is not attributed.
  assert.deepEqual(facts('SELECT * FROM (SELECT 1 AS a) s WHERE a = 1').equalities, [
    { column: 'a', relation: null, value: c('1') },
  ]);
});

test('equalities: IN lists of constants and parameters are one `in` entry; others are skipped', () => {
  const e: Equality[] = [
    { column: 'a', relation: 't', value: { kind: 'in', values: [c('1'), p(2), c('x')] } },
  ];
  assert.deepEqual(facts("SELECT * FROM t WHERE a IN (1, $2, 'x')").equalities, e);
  assert.deepEqual(facts('SELECT * FROM t WHERE a IN (1, b)').equalities, []);
  assert.deepEqual(facts('SELECT * FROM t WHERE a NOT IN (1, 2)').equalities, []);
  assert.deepEqual(facts('SELECT * FROM t WHERE a IN (SELECT b FROM u)').equalities, []);
});

test('relations: names as written, aliases, written targets, CTE names left out', () => {
  assert.deepEqual(facts('SELECT * FROM s.t x JOIN u ON true, v').relations, [
    { name: 's.t', schema: 's', relname: 't', alias: 'x', written: false },
    { name: 'u', schema: null, relname: 'u', alias: null, written: false },
    { name: 'v', schema: null, relname: 'v', alias: null, written: false },
  ]);
  assert.deepEqual(
    facts('WITH w AS (DELETE FROM q RETURNING *) INSERT INTO d SELECT * FROM w').relations?.map((r) => [
      r.name,
      r.written,
    ]),
    [
      ['d', true],
      ['q', true],
    ],
  );
  assert.deepEqual(
    facts('UPDATE t SET a = u.a FROM u WHERE u.id = t.id').relations?.map((r) => [r.name, r.written]),
    [
      ['t', true],
      ['u', false],
    ],
  );
  assert.deepEqual(facts('COPY t FROM STDIN').relations?.[0]?.written, true);
  assert.deepEqual(facts('COPY t TO STDOUT').relations?.[0]?.written, false);
  assert.deepEqual(facts('SELECT 1').relations, []);
});

test('insert: columns, multi-row VALUES with params and DEFAULT, ON CONFLICT, RETURNING', () => {
  assert.deepEqual(
    facts(
      'INSERT INTO s.t (a, b, c) VALUES ($1, DEFAULT, 3), ($2, now(), $3::int) ON CONFLICT DO NOTHING RETURNING a',
    ).insert,
    {
      relation: 's.t',
      columns: ['a', 'b', 'c'],
      rows: [
        [p(1), { kind: 'default' }, c('3')],
        [p(2), { kind: 'other' }, p(3)],
      ],
      onConflict: true,
      returning: true,
    },
  );
  assert.deepEqual(facts('INSERT INTO t SELECT * FROM u').insert, {
    relation: 't',
    columns: null,
    rows: null,
    onConflict: false,
    returning: false,
  });
  assert.equal(facts('INSERT INTO t DEFAULT VALUES').insert?.rows, null);
  assert.equal(facts('SELECT 1').insert, null);
});

test('copy: FROM STDIN with columns, (query) TO STDOUT', () => {
  assert.deepEqual(facts('COPY s.t (a, b) FROM STDIN WITH (FORMAT csv)').copy, {
    relation: 's.t',
    direction: 'from',
    columns: ['a', 'b'],
  });
  assert.deepEqual(facts('COPY (SELECT * FROM t WHERE a = 1) TO STDOUT').copy, {
    relation: null,
    direction: 'to',
    columns: null,
  });
  assert.equal(facts('SELECT 1').copy, null);
});

test('shape: ORDER BY … DESC NULLS FIRST LIMIT $1, aggregates with GROUP BY, DISTINCT, windows', () => {
  assert.deepEqual(
    facts('SELECT a, b FROM t ORDER BY a DESC NULLS FIRST, 2, lower(b) LIMIT $1 OFFSET 10').shape,
    {
      orderBy: [
        { target: { kind: 'column', name: 'a' }, desc: true, nullsFirst: true },
        { target: { kind: 'position', position: 2 }, desc: false, nullsFirst: false },
        { target: { kind: 'expression' }, desc: false, nullsFirst: false },
      ],
      limit: p(1),
      offset: c('10'),
      aggregates: [],
      groupBy: false,
      distinct: false,
      having: false,
      windowFunctions: false,
      setOperation: false,
    },
  );
  const agg = facts(
    'SELECT k, count(*), sum(x) + max(y), avg(z) FROM t GROUP BY k HAVING count(*) > 1',
  ).shape;
  assert.deepEqual(agg?.aggregates, ['count', 'sum', 'max', 'avg']);
  assert.equal(agg?.groupBy, true);
  assert.equal(agg?.having, true);
  assert.equal(agg?.limit, null);
  assert.deepEqual(facts('SELECT t.a FROM t ORDER BY t.a DESC').shape?.orderBy, [
    { target: { kind: 'column', name: 't.a' }, desc: true, nullsFirst: true },
  ]);
  assert.equal(facts('SELECT DISTINCT a FROM t').shape?.distinct, true);
  assert.equal(facts('SELECT * FROM t LIMIT ALL').shape?.limit, null);
  const win = facts('SELECT a, rank() OVER (ORDER BY a), (SELECT count(*) FROM u) FROM t').shape;
  assert.equal(win?.windowFunctions, true);
  assert.deepEqual(win?.aggregates, []);
  assert.equal(facts('SELECT 1 UNION SELECT 2 ORDER BY 1').shape?.setOperation, true);
  assert.equal(facts('INSERT INTO t VALUES (1)').shape, null);
  assert.equal(facts('VALUES (1)').shape, null);
});

test('ddlKind: tables, indexes, truncate, other DDL; null for the rest', () => {
  const cases: [string, unknown][] = [
    ['CREATE TABLE s.t (a int)', { kind: 'create-table', relations: ['s.t'] }],
    ['ALTER TABLE t ADD COLUMN b int', { kind: 'alter-table', relations: ['t'] }],
    ['ALTER TABLE t RENAME TO u', { kind: 'alter-table', relations: ['t'] }],
    ['DROP TABLE a, s.b', { kind: 'drop-table', relations: ['a', 's.b'] }],
    ['CREATE INDEX i ON s.t (a)', { kind: 'create-index', relations: ['s.t'] }],
    ['DROP INDEX i', { kind: 'drop-index', relations: ['i'] }],
    ['TRUNCATE a, b', { kind: 'truncate', relations: ['a', 'b'] }],
    ['CREATE VIEW v AS SELECT 1', { kind: 'other-ddl', relations: [] }],
    ['CREATE FUNCTION f() RETURNS int AS $$select 1$$ LANGUAGE sql', { kind: 'other-ddl', relations: [] }],
    ['DROP VIEW v', { kind: 'other-ddl', relations: [] }],
    ['ALTER INDEX i RENAME TO j', { kind: 'other-ddl', relations: [] }],
    ['SELECT 1', null],
    ['INSERT INTO t VALUES (1)', null],
    ['SET x = 1', null],
  ];
  for (const [sql, want] of cases) assert.deepEqual(facts(sql).ddlKind, want, sql);
});

test('transaction: the kind of each transaction-control statement', () => {
  const cases: [string, string | null][] = [
    ['BEGIN', 'begin'],
    ['START TRANSACTION READ ONLY', 'begin'],
    ['COMMIT', 'commit'],
    ['END', 'commit'],
    ['ROLLBACK', 'rollback'],
    ['ABORT', 'rollback'],
    ['SAVEPOINT s', 'savepoint'],
    ['RELEASE SAVEPOINT s', 'release'],
    ['ROLLBACK TO SAVEPOINT s', 'rollback-to'],
    ["PREPARE TRANSACTION 'g'", 'prepare-transaction'],
    ["COMMIT PREPARED 'g'", 'commit-prepared'],
    ["ROLLBACK PREPARED 'g'", 'rollback-prepared'],
    ['SELECT 1', null],
  ];
  for (const [sql, want] of cases) assert.equal(facts(sql).transaction, want, sql);
});

test('statements counts every statement; the tree members describe the first one', () => {
  const f = facts('INSERT INTO t VALUES (1); SELECT * FROM u WHERE a = 1');
  assert.equal(f.statements, 2);
  assert.equal(f.insert?.relation, 't');
  assert.deepEqual(f.equalities, []);
  assert.equal(facts('').statements, 0);
});

test('tree members are null for unparsable, too large or too deeply nested text', () => {
  assert.equal(facts('SELEC 1').statements, null);
  assert.equal(facts('SELEC 1').relations, null);
  assert.equal(facts('SELECT ' + '('.repeat(200) + '1' + ')'.repeat(200)).statements, null);
  assert.equal(facts('SELECT 1' + ' + 1'.repeat(3000)).statements, null);
});

test('the small members: ddl, sequenceCall, listsStatements, commits, risk, runsUserCode, refs', () => {
  for (const sql of [
    'CREATE VIEW v AS SELECT 1',
    "SELECT 'create'",
    'alter table t enable row level security',
    "SELECT nextval('s')",
    'SELECT * FROM pg_prepared_statements',
    'COMMIT',
    "commit prepared 'x'",
    '  end',
    'SELECT my_func(1)',
    'DO $$ BEGIN END $$',
    'EXECUTE p',
    'SELECT lower(a) FROM t',
  ]) {
    const f = facts(sql);
    assert.equal(f.ddl, isDdl(sql), sql);
    assert.equal(f.sequenceCall, /nextval|setval/i.test(sql), sql);
    assert.equal(f.listsStatements, /pg_prepared_statements/i.test(sql), sql);
    assert.equal(f.commits, /^\s*(commit|end)\b(?!\s+prepared)/i.test(sql), sql);
    assert.equal(f.mayHideEffects, mayHideEffects(sql), sql);
    assert.equal(f.risk, mayHideEffects(sql) ? hiddenEffectRisk(sql) : null, sql);
    assert.equal(f.runsUserCode, runsUserCode(sql), sql);
    assert.deepEqual(f.refs, relationRefs(sql), sql);
  }
});

test('cache: the same object for the same text; texts over 16 KiB are analysed each time', () => {
  const a = new Analyzer();
  assert.equal(a.analyze('SELECT 1'), a.analyze('SELECT 1'));
  assert.notEqual(a.analyze('SELECT 1'), a.analyze('SELECT 2'));
  const big = 'SELECT 1 ' + ' '.repeat(MAX_CACHED_TEXT);
  assert.notEqual(a.analyze(big), a.analyze(big));
  const justFits = 'SELECT 1' + ' '.repeat(MAX_CACHED_TEXT - 8);
  assert.equal(a.analyze(justFits), a.analyze(justFits));
  assert.equal(a.stats.cacheHits, 3);
  const small = new Analyzer({ cacheSize: 2 });
  const first = small.analyze('SELECT 1');
  small.analyze('SELECT 2');
  small.analyze('SELECT 3');
  assert.notEqual(small.analyze('SELECT 1'), first);
});

test('laziness: members are computed on first access, memoized, and one lexing serves them all', () => {
  const a = new Analyzer();
  // cannotChangeSession: effects without lexing, and classification never asked.
  assert.equal(a.analyze('SELECT * FROM t').effects, NO_EFFECTS);
  assert.deepEqual(a.stats, {
    hits: 0,
    misses: 0,
    fastPath: 0,
    parsed: 0,
    cacheHits: 0,
    cacheMisses: 1,
    lexed: 0,
  });
  // Effects then classification of a text that needs lexing: one lexing.
  const f = a.analyze('SET x = 1; SELECT 1');
  assert.deepEqual(f.effects, sessionEffects('SET x = 1; SELECT 1'));
  assert.equal(a.stats.lexed, 1);
  assert.equal(f.classification.cls, 'read');
  assert.equal(f.refs.names.includes('x'), true);
  assert.equal(a.stats.lexed, 1);
  assert.deepEqual([a.stats.misses, a.stats.parsed], [1, 1]);
  // Memoized: a hit, no new parse; the tree members reuse the classification's parse.
  assert.equal(f.classification, a.analyze('SET x = 1; SELECT 1').classification);
  assert.deepEqual([a.stats.hits, a.stats.misses, a.stats.parsed], [2, 1, 1]);
  assert.equal(f.statements, 2);
  assert.equal(f.effects, f.effects);
  assert.equal(f.relations, f.relations);
  // Another text lexed makes the previous one drop its tokens: asked again, it lexes again.
  assert.equal(a.analyze('SELECT lower(a)').classification.cls, 'read');
  assert.equal(a.stats.lexed, 2);
  assert.equal(f.risk, null);
  assert.equal(a.stats.lexed, 2, 'risk of a text without a call needs no tokens');
  assert.equal(f.runsUserCode, false);
  const g = a.analyze('SELECT my_func(1)');
  assert.equal(g.runsUserCode, true);
  assert.equal(g.risk, 'function my_func()');
  assert.equal(a.stats.lexed, 3);
  assert.equal(g.classification.reason, 'function my_func');
  assert.equal(a.stats.lexed, 3);
});

/** Texts from classify.test.ts and session-effects.test.ts. */
const VARIED = [
  'SELECT 1',
  'SELECT * FROM t1 NATURAL JOIN t2',
  'SELECT DISTINCT ON (a) a, b FROM t',
  "SELECT * FROM t WHERE name LIKE 'a%'",
  'SELECT * FROM t LIMIT ALL',
  "SELECT '{}'::jsonb, 'x'::regclass",
  'SELECT ROW(1, 2)',
  'SHOW ALL',
  'SELECT lower(name) FROM t',
  "SELECT json_build_object('a', 1), jsonb_build_array(1, 2)",
  'SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()',
  'SELECT gen_random_uuid(), random()',
  'WITH x AS MATERIALIZED (SELECT lower(a) FROM t) SELECT count(*) FROM x',
  'WITH x AS (SELECT 1) SELECT * FROM x FOR UPDATE',
  'SELECT pg_advisory_lock(1)',
  "SELECT pg_catalog.set_config('search_path', '', false)",
  'SELECT a FROM t WHERE a = my_func(1)',
  'SELECT * FROM t WHERE a IN (SELECT a FROM u FOR UPDATE)',
  'insert into t (a) select a from u returning *',
  'INSERT INTO t VALUES (1); SELECT 1',
  'COPY t TO STDOUT',
  "COPY t TO PROGRAM 'gzip > /tmp/t.gz'",
  'CREATE TEMP SEQUENCE s',
  'ALTER TABLE t ADD COLUMN b int',
  'REVOKE ALL ON t FROM bob',
  'CHECKPOINT',
  'LISTEN chan',
  'EXPLAIN (ANALYZE false) DELETE FROM t',
  "EXPLAIN ANALYZE SELECT nextval('s')",
  'BEGIN TRANSACTION',
  'BEGIN READ ONLY',
  'BEGIN READ ONLY, READ WRITE',
  "ROLLBACK PREPARED 'gid'",
  'COMMIT; SELECT 1',
  "SET search_path = 'app'",
  'SET pgscale.target = any',
  'PREPARE p AS SELECT 1',
  'MOVE 5 IN c',
  'DECLARE c CURSOR FOR SELECT * FROM t',
  '/* pgscale:replica */ SELECT nextval($1)',
  '/* pgscale:primary */',
  "SELECT E'it\\'s' FROM t",
  'SELECT * FROM t WHERE a = lower(',
  'BEGIN FOO',
  "SET TIME ZONE 'Europe/Paris'",
  'set local role r',
  'SET x FROM CURRENT',
  'RESET "TimeZone"',
  'PREPARE q1 (int, text) AS SELECT $1::int, $2',
  'explain (analyze, format json) execute q1 (1)',
  'deallocate prepare q1',
  'DISCARD ALL',
  'COMMIT AND CHAIN',
  'ROLLBACK TO SAVEPOINT s',
  'CREATE TEMP VIEW v AS SELECT 1',
  'create function pg_temp.f() returns int as $$select 1$$ language sql',
  'select pg_advisory_lock',
  "select set_config('a', f('x', 'y'), 'on')",
  'EXECUTE q(pg_advisory_lock(1))',
  'DO $$BEGIN SET LOCAL search_path = x; UPDATE t SET a = 1; END$$',
  'UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2',
  '',
  'SELECT 1' + ' + 1'.repeat(3000),
];

test('property: classification and effects equal the Classifier and sessionEffects, in any order of access', () => {
  for (const opts of [
    {},
    { fastPath: false },
    { readOnlyFunctions: ['my_func'], writeFunctions: ['lower'] },
  ]) {
    const classifier = new Classifier(opts);
    const a = new Analyzer(opts);
    const b = new Analyzer(opts);
    for (const sql of VARIED) {
      const want = classifier.classify(sql);
      const wantEffects = cannotChangeSession(sql) ? [] : sessionEffects(sql);
      assert.deepEqual(a.analyze(sql).classification, want, sql);
      assert.deepEqual(a.analyze(sql).effects, wantEffects, sql);
      assert.deepEqual(b.analyze(sql).effects, wantEffects, sql);
      assert.deepEqual(b.analyze(sql).classification, want, sql);
    }
    // The same texts again: answered from the cache, same counts as the classifier's.
    for (const sql of VARIED) assert.deepEqual(a.analyze(sql).classification, classifier.classify(sql), sql);
    const { hits, misses, fastPath, parsed } = a.stats;
    assert.deepEqual({ hits, misses, fastPath, parsed }, classifier.stats, JSON.stringify(opts));
  }
});

// Last: it deliberately breaks the shared WASM instance.
test('parser unavailable: a write, and null tree members, neither memoized', async () => {
  const before = parserStatus();
  const a = new Analyzer();
  const f = a.analyze('SELECT lower(a) FROM t WHERE k = 1');
  assert.equal(parseStatements('SELECT 1' + ' + 1'.repeat(200_000)).kind, 'crashed');
  assert.equal(parserStatus().crashes, before.crashes + 1);
  assert.equal(parserStatus().ready, false);
  assert.deepEqual(f.classification, { cls: 'write', reason: 'parser unavailable', hint: null });
  assert.equal(f.equalities, null);
  assert.equal(f.statements, null);
  await loadParser();
  assert.equal(a.analyze('SELECT lower(a) FROM t WHERE k = 1'), f);
  assert.deepEqual(f.classification, { cls: 'read', reason: 'SELECT', hint: null });
  assert.deepEqual(f.equalities, [{ column: 'k', relation: 't', value: c('1') }]);
  assert.equal(f.statements, 1);
});
