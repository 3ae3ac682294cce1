import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { loadParser } from '../sql/pg-parser.js';
import { literalShape } from './literal-shape.js';
import { instantiate, makeTemplate, probeText } from './plan-template.js';
import type { PlanTemplate } from './plan-template.js';
import { resolveShards, shardKeyPlan } from './shard-plan.js';
import type { KeyPlan, ShardRoute } from './shard-plan.js';
import { catalog, columns, fakeRemainder, route } from './shard-plan.test-util.js';

await loadParser();

const plan = (sql: string): KeyPlan => shardKeyPlan(sql, catalog, columns);

/** The template made from `sql`, or null when its shape has none. */
function templateOf(sql: string): PlanTemplate | null {
  const shape = literalShape(sql);
  if (shape === null) return null;
  const probe = probeText(shape, sql);
  return probe === null ? null : makeTemplate(shape, plan(sql), plan(probe));
}

function sorted(r: ShardRoute): ShardRoute {
  if (r.kind === 'one') return { ...r, shards: [...r.shards].sort((a, b) => a - b) };
  if (r.kind === 'multi') return { ...r, groups: [...r.groups].sort() };
  return r;
}

/** The route of `sql` through the template of `first` (same shape), or null without one. */
function viaTemplate(first: string, sql: string): ShardRoute | null {
  const t = templateOf(first);
  if (t === null) return null;
  const shape = literalShape(sql);
  assert.ok(shape);
  assert.equal(shape.key, literalShape(first)?.key);
  return sorted(resolveShards(instantiate(t, shape.values), [], fakeRemainder));
}

test("pgbench's statements share a plan per shape, routed by each text's own key", () => {
  const update = (aid: number, d: number) => `UPDATE users SET name = name || ${d} WHERE id = ${aid}`;
  const insert = (aid: number) => `INSERT INTO orders (user_id, total) VALUES (${aid}, 5)`;
  const select = (aid: number) => `SELECT name FROM users WHERE id = ${aid}`;
  for (const make of [update.bind(null, 0), insert, select, (k: number) => update(k, 3)]) {
    assert.ok(templateOf(make(1)), make(1));
    for (let k = 0; k < 12; k++) assert.deepEqual(viaTemplate(make(1), make(k)), route(make(k)), make(k));
  }
  const events = (v: string) => `SELECT * FROM events WHERE tenant = '${v}'`;
  assert.ok(templateOf(events('a')));
  for (const v of ['a', 'b', 'c', 'zz', ''])
    assert.deepEqual(viaTemplate(events('a'), events(v)), route(events(v)));
});

test('no template where a literal is read otherwise than as a key value', () => {
  // An array literal read at planning, a negative number (its constant is -5, not 5), a multi-row
  // INSERT (its cut keeps the text), a write to a reference table (the text runs on every group).
  for (const sql of [
    "SELECT * FROM users WHERE id = ANY('{1,2}')",
    "SELECT * FROM users WHERE id = ANY('{7}')",
    "SELECT * FROM users WHERE id = ANY('garbage')",
    'SELECT * FROM users WHERE id = -5',
    "INSERT INTO users (id, name) VALUES (1, 'a'), (2, 'b')",
    'INSERT INTO countries (code) VALUES (5)',
  ])
    assert.equal(templateOf(sql), null, sql);
  // A literal equal to its own sentinel could not be told from it.
  assert.equal(templateOf('SELECT * FROM users WHERE id = 1900000000'), null);
  assert.equal(templateOf("SELECT * FROM events WHERE tenant = '{pgscale-literal-0}'"), null);
});

const I = fc
  .oneof(fc.integer({ min: 0, max: 40 }), fc.constantFrom(2147483647, 1900000001, 1000000))
  .map(String);
const S = fc
  .oneof(
    fc.constantFrom('a', 'b ', 'c', "it's", '{1,2}', '{3}', '', '5', '12', 'pgscale-literal-1', 'NULL', '{}'),
    fc.string({ maxLength: 4 }),
  )
  .map((v) => `'${v.replaceAll("'", "''")}'`);

/** Statements with holes: `I` an integer literal, `S` a string literal. */
const TEMPLATES = [
  'SELECT * FROM users WHERE id = I',
  'SELECT * FROM users WHERE id = S',
  'SELECT * FROM users WHERE I = id AND name = S',
  'SELECT * FROM users u JOIN orders o ON u.id = o.user_id WHERE u.id = I AND o.total > I',
  'SELECT * FROM users u JOIN orders o ON u.id = o.user_id WHERE u.id = I AND o.user_id = I',
  'SELECT * FROM users WHERE id IN (I, I)',
  'SELECT * FROM users WHERE id IN (I, S, I)',
  'SELECT * FROM users WHERE id = ANY(ARRAY[I, I])',
  'SELECT * FROM users WHERE id = ANY(S)',
  'SELECT * FROM users WHERE id = ANY(S::bigint[])',
  'SELECT * FROM users WHERE id = I OR id = I',
  'SELECT * FROM users WHERE id = I AND id = I',
  'SELECT * FROM users WHERE id = -I',
  'SELECT * FROM users WHERE id = I::int4',
  'SELECT * FROM users WHERE id = S::bigint',
  'SELECT * FROM users WHERE id = S::text',
  'SELECT * FROM events WHERE tenant = S',
  'SELECT * FROM events WHERE tenant = S::bpchar',
  'SELECT * FROM events WHERE tenant = I',
  'SELECT * FROM events WHERE tenant IN (S, S)',
  'SELECT * FROM "Sales"."Big Table" WHERE "Id" = I',
  'SELECT * FROM countries WHERE code = I',
  'SELECT * FROM users u, countries c WHERE u.id = I AND c.code = I',
  'UPDATE users SET name = S WHERE id = I',
  'UPDATE users SET id = I WHERE id = I',
  'DELETE FROM orders WHERE user_id = I RETURNING S',
  'INSERT INTO users (id, name) VALUES (I, S)',
  'INSERT INTO users (id, name) VALUES (S, S)',
  'INSERT INTO users VALUES (I, S, now())',
  'INSERT INTO users (id, name) VALUES (I, S), (I, S)',
  'INSERT INTO users (id, name) VALUES (I, S) ON CONFLICT (id) DO UPDATE SET id = I',
  'INSERT INTO users (id, name) SELECT I, S',
  'INSERT INTO countries (code) VALUES (I)',
  'SELECT I, S',
  'SELECT * FROM users WHERE id = I; SELECT * FROM orders WHERE user_id = I',
  'BEGIN; UPDATE users SET name = S WHERE id = I; COMMIT',
  'SELECT * FROM users WHERE id = (SELECT I)',
  'SELECT * FROM users WHERE id = I LIMIT I',
];

function fill(template: string, ints: readonly string[], strs: readonly string[]): string {
  let i = 0;
  let s = 0;
  return template.replace(/\b[IS]\b/g, (h) =>
    h === 'I' ? ints[i++ % ints.length]! : strs[s++ % strs.length]!,
  );
}

test('property: a text planned through the template of another text of its shape routes as planned alone', () => {
  let shared = 0;
  fc.assert(
    fc.property(
      fc.constantFrom(...TEMPLATES),
      fc.array(I, { minLength: 3, maxLength: 3 }),
      fc.array(S, { minLength: 3, maxLength: 3 }),
      fc.array(I, { minLength: 3, maxLength: 3 }),
      fc.array(S, { minLength: 3, maxLength: 3 }),
      (tpl, i1, s1, i2, s2) => {
        const first = fill(tpl, i1, s1);
        const second = fill(tpl, i2, s2);
        const a = literalShape(first);
        const b = literalShape(second);
        assert.ok(a && b, first);
        // A string literal that is no plain one in either text (none here) would make other shapes.
        if (a.key !== b.key) return;
        const r = viaTemplate(first, second);
        if (r === null) return;
        shared++;
        assert.deepEqual(r, route(second), `${first}  →  ${second}`);
      },
    ),
    { numRuns: 3000 },
  );
  // Most of these shapes do get a template.
  assert.ok(shared > 1000, `only ${shared} of 3000 shared a plan`);
});
