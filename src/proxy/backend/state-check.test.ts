import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stateCheckFinding, stateCheckQuery } from './state-check.js';

const CLEAN = ['app', 'app', null, 'f', 'f', 'f', 'f', 'f'];
const none = new Map<string, string>();

test('a session holding only what the proxy put there is clean', () => {
  assert.equal(stateCheckFinding([CLEAN], 'app', none, false), null);
  const tracked = new Map([['search_path', "'a, b'"]]);
  const row = ['app', 'app', 'search_path=a, b', 'f', 'f', 'f', 'f', 'f'];
  assert.equal(stateCheckFinding([row, ['search_path=a, b']], 'app', tracked, false), null);
});

test('each kind of state left behind is named', () => {
  const with_ = (i: number, v: string | null) => CLEAN.map((x, j) => (j === i ? v : x));
  assert.equal(stateCheckFinding([with_(1, 'other')], 'app', none, false), 'role changed to other');
  assert.equal(stateCheckFinding([with_(2, 'search_path=evil')], 'app', none, false), 'setting search_path');
  assert.equal(stateCheckFinding([with_(3, 't')], 'app', none, false), 'temporary table');
  assert.equal(stateCheckFinding([with_(4, 't')], 'app', none, false), 'LISTEN');
  assert.equal(stateCheckFinding([with_(5, 't')], 'app', none, false), 'session advisory lock');
  assert.equal(stateCheckFinding([with_(6, 't')], 'app', none, false), 'prepared statement');
  assert.equal(stateCheckFinding([with_(7, 't')], 'app', none, false), 'WITH HOLD cursor');
  assert.equal(stateCheckFinding([CLEAN], 'app', none, true), 'the session-state check failed');
  assert.equal(stateCheckFinding([], 'app', none, false), 'the session-state check failed');
});

test('a tracked setting changed or reset behind the proxy is found', () => {
  const tracked = new Map([['search_path', 'a']]);
  const changed = ['app', 'app', 'search_path=evil', 'f', 'f', 'f', 'f', 'f'];
  assert.equal(
    stateCheckFinding([changed, ['search_path=a']], 'app', tracked, false),
    'a tracked setting changed',
  );
  assert.equal(
    stateCheckFinding([CLEAN, ['search_path=a']], 'app', tracked, false),
    'a tracked setting was reset',
  );
});

test('the query is schema-qualified and applies tracked values only locally', () => {
  assert.doesNotMatch(stateCheckQuery(none), /SET LOCAL/);
  const q = stateCheckQuery(
    new Map([
      ['search_path', 'a, "B"'],
      ['MyApp.x', "'1'"],
    ]),
  );
  assert.match(q, /SET LOCAL search_path = a, "B"; SET LOCAL "MyApp.x" = '1';/);
  for (const rel of q.match(/FROM [a-z_.]+/g) ?? []) assert.match(rel, /FROM pg_catalog\./);
});
