import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadParser } from '../sql/pg-parser.js';
import { resolveShards, shardKeyPlan } from '../sharding/shard-plan.js';
import { catalog, columns, fakeRemainder, route } from '../sharding/shard-plan.test-util.js';
import { ShapePlans } from './shard-shapes.js';

await loadParser();

function counted(): { plan: (text: string) => ReturnType<typeof shardKeyPlan>; texts: string[] } {
  const texts: string[] = [];
  return {
    texts,
    plan: (text) => {
      texts.push(text);
      return shardKeyPlan(text, catalog, columns);
    },
  };
}

test('the first text of a shape is planned twice (as written and as a probe), the others not at all', () => {
  const shapes = new ShapePlans(100);
  const c = counted();
  const first = shapes.plan('SELECT name FROM users WHERE id = 5', 7, c.plan);
  assert.equal(first?.shared, true);
  assert.equal(c.texts.length, 2);
  for (let k = 0; k < 20; k++) {
    const sql = `SELECT name FROM users WHERE id = ${k}`;
    const p = shapes.plan(sql, 7, c.plan);
    assert.ok(p);
    assert.deepEqual(resolveShards(p.plan, [], fakeRemainder), route(sql));
  }
  assert.equal(c.texts.length, 2);
  // A new catalog version plans again.
  shapes.plan('SELECT name FROM users WHERE id = 9', 8, c.plan);
  assert.equal(c.texts.length, 4);
});

test('a shape without a template leaves its texts to be planned one by one; no shape, no answer', () => {
  const shapes = new ShapePlans(100);
  const c = counted();
  const first = shapes.plan("SELECT * FROM users WHERE id = ANY('{1,2}')", 7, c.plan);
  assert.equal(first?.shared, false);
  assert.equal(shapes.plan("SELECT * FROM users WHERE id = ANY('{3,4}')", 7, c.plan), null);
  assert.equal(shapes.plan('SELECT * FROM users WHERE id = $1', 7, c.plan), null);
  assert.equal(shapes.plan('BEGIN', 7, c.plan), null);
  assert.equal(c.texts.length, 2);
  shapes.clear();
  assert.notEqual(shapes.plan("SELECT * FROM users WHERE id = ANY('{3,4}')", 7, c.plan), null);
});

test('a scope keeps the shapes of one text apart (a search path the plan depends on)', () => {
  const shapes = new ShapePlans(100);
  const c = counted();
  shapes.plan('SELECT name FROM users WHERE id = 5', 7, c.plan, 'a\u0001');
  shapes.plan('SELECT name FROM users WHERE id = 6', 7, c.plan, 'a\u0001');
  assert.equal(c.texts.length, 2);
  shapes.plan('SELECT name FROM users WHERE id = 7', 7, c.plan, 'b\u0001');
  assert.equal(c.texts.length, 4);
});
