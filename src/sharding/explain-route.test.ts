import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadParser } from '../sql/pg-parser.js';
import { explainFormat, mayBeExplain, routeFacts } from './explain-route.js';
import { resolveShards, shardKeyPlan } from './shard-plan.js';
import { catalog, fakeRemainder, USERS_FIRST, usersGroup } from './shard-plan.test-util.js';

await loadParser();

test('mayBeExplain: EXPLAIN after blanks and comments, nothing else', () => {
  assert.ok(mayBeExplain('EXPLAIN SELECT 1'));
  assert.ok(mayBeExplain('  /* app */ -- x\n explain analyze select 1'));
  assert.equal(mayBeExplain('SELECT 1'), false);
  assert.equal(mayBeExplain('explained'), false);
  assert.equal(mayBeExplain("SELECT 'EXPLAIN'"), false);
});

test('explainFormat: the FORMAT option, text by default; null for anything but one EXPLAIN', () => {
  assert.equal(explainFormat('EXPLAIN SELECT 1'), 'text');
  assert.equal(explainFormat('EXPLAIN ANALYZE VERBOSE SELECT 1'), 'text');
  assert.equal(explainFormat('EXPLAIN (ANALYZE, FORMAT JSON) SELECT 1'), 'json');
  assert.equal(explainFormat('explain (format yaml) select 1'), 'yaml');
  assert.equal(explainFormat('EXPLAIN (FORMAT XML, COSTS OFF) SELECT 1'), 'xml');
  assert.equal(explainFormat('EXPLAIN SELECT 1; SELECT 2'), null);
  assert.equal(explainFormat('SELECT 1'), null);
  assert.equal(explainFormat('EXPLAIN SELEKT'), null);
});

function facts(sql: string, params: { format: 'text'; text: string }[] = []) {
  const plan = shardKeyPlan(sql, catalog);
  return routeFacts(plan, resolveShards(plan, params, fakeRemainder), params, catalog);
}

test('routeFacts: one group, its shard (named as its partition) and what pinned it', () => {
  const f = facts('EXPLAIN SELECT * FROM users WHERE id = 5');
  assert.deepEqual(f, {
    kind: 'one',
    group: usersGroup(5n),
    shards: [{ id: USERS_FIRST + 1, name: `users_${USERS_FIRST + 1}` }],
    reason: 'users.id = 5',
  });
  const p = facts('EXPLAIN SELECT * FROM users WHERE id = $1', [{ format: 'text', text: '6' }]);
  assert.equal(p?.reason, 'users.id = $1 (6)');
  assert.equal(p?.group, usersGroup(6n));
  const s = facts("EXPLAIN SELECT * FROM events WHERE tenant = 'a''b'");
  assert.equal(s?.reason, "events.tenant = 'a''b'");
  const list = facts('EXPLAIN SELECT * FROM users WHERE id IN (1, 3)');
  assert.equal(list?.reason, 'users.id IN (1, 3)');
});

test('routeFacts: local, reference reads and reference writes', () => {
  assert.equal(facts('EXPLAIN SELECT * FROM accounts')?.kind, 'local');
  assert.equal(facts('EXPLAIN SELECT * FROM countries')?.kind, 'reference');
  const w = facts("EXPLAIN INSERT INTO countries VALUES ('x')");
  assert.equal(w?.kind, 'every');
  assert.match(w?.reason ?? '', /countries/);
  // Several groups: refused before EXPLAIN runs, so nothing to show.
  assert.equal(facts('EXPLAIN SELECT * FROM users'), null);
});
