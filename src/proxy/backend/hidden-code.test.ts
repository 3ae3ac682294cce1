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
import type { ServerConn } from './server-conn.js';

test('not loaded, or the load failed: every statement but a bare one is risky (fail safe)', async () => {
  const told: (string | null)[] = [];
  const r = new HiddenCodeRegistry(
    () => Promise.reject(new Error('cannot reach the server')),
    (e) => told.push(e),
  );
  assert.equal(r.current, false);
  assert.equal(r.empty, false);
  assert.equal(r.riskOfText('SELECT * FROM t'), NOT_LOADED);
  assert.equal(r.riskOfText('SELECT 1'), null);
  assert.equal(r.riskOfText('BEGIN'), null);
  assert.equal(r.riskOfText("SELECT 'a' === 'b'"), NOT_LOADED, 'a user operator, maybe');
  assert.equal(r.riskOfText('SELECT 1::d'), NOT_LOADED, 'a domain check, maybe');
  assert.equal(r.defaultPathShadows, true, 'a role or database default search_path, maybe');
  await r.refresh();
  assert.equal(r.lastError, 'cannot reach the server');
  assert.equal(r.current, false);
  assert.equal(r.riskOfText('INSERT INTO t VALUES (1)'), NOT_LOADED);
  assert.equal(r.riskOfText('CREATE SCHEMA s'), NOT_LOADED, 'a command that may fire an event trigger');
  await r.refresh();
  assert.deepEqual(told, ['cannot reach the server'], 'told once, not at every failed attempt');
  r.close();
});

/** A registry loaded with these catalog rows (the connection's reply is all it reads). */
async function loaded(rows: (string | null)[][]): Promise<HiddenCodeRegistry> {
  const conn = { closed: false, query: () => Promise.resolve({ rows, error: null }), close: () => undefined };
  const r = new HiddenCodeRegistry(() => Promise.resolve(conn as unknown as ServerConn));
  await r.refresh();
  assert.equal(r.current, true);
  return r;
}

test('loaded and empty: nothing is risky, nothing is lexed, the default search_path is harmless', async () => {
  const r = await loaded([]);
  assert.equal(r.empty, true);
  assert.equal(r.defaultPathShadows, false);
  for (const sql of ["SELECT 'a' === 'b'", 'SELECT t.f FROM t', 'SELECT 1::d', 'UPDATE t SET x = x + 1'])
    assert.equal(r.riskOfText(sql), null, sql);
});

test('relations and types by name, operators by symbol, attribute notation after a dot', async () => {
  const r = await loaded([
    ['n', 'v_path', 'relation v_path (view)'],
    ['n', 'd_role', 'type d_role (a domain whose check calls a function)'],
    ['o', '===', null],
    ['o', '+', null],
    ['a', 'attr_path', null],
    ['s', null, '"$user", public'],
  ]);
  assert.equal(r.empty, false);
  assert.equal(r.defaultPathShadows, false);
  assert.equal(r.riskOfText('SELECT * FROM public.v_path'), 'relation v_path (view)');
  assert.equal(r.riskOfText('SELECT 1::D_Role'), 'type d_role (a domain whose check calls a function)');
  assert.equal(r.riskOfText("SELECT 'a' === 'b'"), 'operator ===');
  assert.equal(r.riskOfText('SELECT 1 OPERATOR(public.===) 2'), 'operator ===');
  assert.equal(r.riskOfText('UPDATE t SET x = x + 1'), 'operator +');
  assert.equal(r.riskOfText('SELECT x=-1 FROM t'), null, '=- is = and -, as PostgreSQL splits it');
  assert.equal(r.riskOfText("SELECT '+' || 'a==='"), null, 'inside literals');
  assert.equal(r.riskOfText('SELECT t.attr_path FROM t'), 'function attr_path() by attribute notation');
  assert.equal(r.riskOfText('SELECT (t).attr_path FROM t'), 'function attr_path() by attribute notation');
  assert.equal(r.riskOfText('SELECT attr_path FROM t'), null, 'a column, not attribute notation');
  assert.equal(r.riskOfText('SELECT 1 FROM t'), null);
});

test('a default search_path before pg_catalog, user casts between built-in types, event triggers', async () => {
  const shadow = await loaded([
    ['s', null, '"$user", public'],
    ['s', null, 'evil, pg_catalog'],
  ]);
  assert.equal(shadow.defaultPathShadows, true);
  assert.equal(shadow.empty, true, 'the search_path is judged by the session, not per statement here');
  const casts = await loaded([['c', null, null]]);
  assert.equal(casts.riskOfText('SELECT x FROM t'), 'a user cast between built-in types');
  assert.equal(casts.riskOfText('SELECT 1'), null);
  const events = await loaded([['e', null, null]]);
  assert.equal(events.riskOfText('CREATE TABLE t (x int)'), 'a command that may fire an event trigger');
  assert.equal(events.riskOfText('SELECT x FROM t'), null);
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
    if (['hidden', 'htypes', 'safe_calls', 'exprs', 'unsafe_exprs', 'seq'].includes(m[1]!)) continue;
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
  const ops = prefilter([], ['===', '+', '|/', '?|'])!;
  for (const sql of ["SELECT 'a'===b", 'SELECT 1+1', 'SELECT |/ 4', "SELECT j ?| '{a}'"])
    assert.match(sql, ops, sql);
  assert.doesNotMatch('SELECT 1 - 1', ops);
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
