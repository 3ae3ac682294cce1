import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { sqlishText } from '../../sql/arbitraries.test-util.js';
import {
  cachedRefs,
  HiddenCodeRegistry,
  HIDDEN_CODE_QUERY,
  isDdl,
  NOT_LOADED,
  prefilter,
} from './hidden-code.js';

test('not loaded, or the load failed: naming a non-catalog relation is risky (fail safe)', async () => {
  const told: (string | null)[] = [];
  const r = new HiddenCodeRegistry(
    () => Promise.reject(new Error('cannot reach the server')),
    (e) => told.push(e),
  );
  assert.equal(r.current, false);
  assert.equal(r.empty, false);
  assert.equal(r.riskOfText('SELECT * FROM t'), NOT_LOADED);
  assert.equal(r.riskOfText('SELECT 1'), null);
  assert.equal(r.riskOfText('SELECT * FROM pg_catalog.pg_class'), null);
  await r.refresh();
  assert.equal(r.lastError, 'cannot reach the server');
  assert.equal(r.current, false);
  assert.equal(r.riskOfText('INSERT INTO t VALUES (1)'), NOT_LOADED);
  assert.equal(r.riskOfText('CREATE SCHEMA s'), NOT_LOADED, 'a command that may fire an event trigger');
  await r.refresh();
  assert.deepEqual(told, ['cannot reach the server'], 'told once, not at every failed attempt');
  r.close();
});

test('periodic reload: only when due, never two at once', async () => {
  let opens = 0;
  const r = new HiddenCodeRegistry(() => {
    opens++;
    return Promise.reject(new Error('down'));
  });
  const settle = () => new Promise((resolve) => setImmediate(resolve));
  r.maybeRefresh(0, 5000);
  r.maybeRefresh(1, 5000); // a load is under way
  await settle();
  assert.equal(opens, 1);
  // Not loaded: retried at every tick, whatever the interval.
  r.maybeRefresh(2, 5000);
  await settle();
  assert.equal(opens, 2);
});

test('DDL detection and the per-text cache', () => {
  assert.equal(isDdl('CREATE VIEW v AS SELECT 1'), true);
  assert.equal(isDdl('alter table t enable row level security'), true);
  assert.equal(isDdl("SELECT 'create'"), false);
  assert.equal(isDdl('SELECT 1'), false);
  assert.equal(cachedRefs('SELECT * FROM v'), cachedRefs('SELECT * FROM v'));
});

test('the catalog query qualifies every relation and function with pg_catalog', () => {
  for (const m of HIDDEN_CODE_QUERY.matchAll(/\b(?:FROM|JOIN)\s+([a-z_.]+)/g)) {
    if (m[1] === 'hidden' || m[1] === 'seq') continue; // the query's own CTEs
    assert.match(m[1]!, /^pg_catalog\./, m[0]);
  }
  assert.doesNotMatch(HIDDEN_CODE_QUERY, /[^)] = /);
});

test('the prefilter matches every text where a name is an identifier (a superset of the lexer)', () => {
  const names = ['v_path', 'MyView', 'a.b', 'x$y'];
  const re = prefilter(names)!;
  for (const sql of [
    'SELECT * FROM v_path',
    'select * from V_PATH',
    'SELECT * FROM public.v_path',
    'SELECT * FROM "MyView"',
    'SELECT * FROM myview',
    'SELECT * FROM "a.b"',
    'SELECT * FROM x$y',
    'SELECT * FROM x,v_path',
    'SELECT * FROM U&"\\0076_path"',
    'SELECT * FROM(v_path)',
    "SELECT 'a'||1 FROM v_path",
  ])
    assert.match(sql, re, sql);
  for (const sql of ['SELECT * FROM v_paths', 'SELECT * FROM my_v_path', 'SELECT * FROM ab', 'SELECT 1'])
    assert.doesNotMatch(sql, re, sql);
  assert.equal(prefilter([]), null);
  assert.equal(prefilter(['a"b']), null, 'a doubled quote is spelled differently in SQL');
  // Property: whenever the lexer finds one of the names, the prefilter matches.
  fc.assert(
    fc.property(sqlishText, fc.constantFrom(...names), fc.nat(), (text, name, at) => {
      const i = at % (text.length + 1);
      const sql = `${text.slice(0, i)} ${name} ${text.slice(i)}`;
      if (cachedRefs(sql).names.includes(name.toLowerCase()) || cachedRefs(sql).names.includes(name))
        assert.match(sql, re);
    }),
  );
});
