import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadParser } from '../sql/pg-parser.js';
import { rewriteForGlobal } from './global-rewrite.js';
import { shardKeyPlan } from './shard-plan.js';
import { BIG_FIRST, catalog, columns, ORDERS_FIRST, USERS_FIRST } from './shard-plan.test-util.js';

/** The text the global path would run for `sql`, or null when the planner gives it none. */
function rewrite(sql: string): string | null {
  const plan = shardKeyPlan(sql, catalog, columns);
  if (plan.kind === 'statements' || plan.global === undefined) return null;
  return rewriteForGlobal(sql, plan.global, catalog);
}

const U = `pgscale_all.t${USERS_FIRST}`;
const O = `pgscale_all.t${ORDERS_FIRST}`;

describe('rewriting a read for the global tables', () => {
  before(() => loadParser());

  test('a table keeps its name as an alias; an alias given stays', () => {
    assert.equal(rewrite('SELECT count(*) FROM users'), `SELECT count(*) FROM ${U} AS users`);
    assert.equal(
      rewrite('SELECT u.name FROM users u JOIN orders AS o ON o.user_id = u.id'),
      `SELECT u.name FROM ${U} u JOIN ${O} AS o ON o.user_id = u.id`,
    );
  });

  test('qualified and quoted names, comments and spaces inside', () => {
    assert.equal(rewrite('SELECT * FROM public . users'), `SELECT * FROM ${U} AS users`);
    assert.equal(
      rewrite('SELECT count(*) FROM "Sales"./* x */"Big Table"'),
      `SELECT count(*) FROM pgscale_all.t${BIG_FIRST} AS "Big Table"`,
    );
  });

  test('non-ASCII text before the table: byte offsets are mapped to characters', () => {
    assert.equal(rewrite(`SELECT 'é😀', count(*) FROM users`), `SELECT 'é😀', count(*) FROM ${U} AS users`);
  });

  test('TABLE users takes no alias', () => {
    assert.equal(rewrite('TABLE users'), `TABLE ${U}`);
  });

  test('a CTE named like a table: its body reads the table, the query reads the CTE', () => {
    assert.equal(
      rewrite('WITH users AS (SELECT * FROM users WHERE name = $1) SELECT count(*) FROM users'),
      `WITH users AS (SELECT * FROM ${U} AS users WHERE name = $1) SELECT count(*) FROM users`,
    );
  });

  test('subqueries and set operations are rewritten everywhere', () => {
    assert.equal(
      rewrite(
        'SELECT id FROM users WHERE id IN (SELECT user_id FROM orders) UNION SELECT user_id FROM orders',
      ),
      `SELECT id FROM ${U} AS users WHERE id IN (SELECT user_id FROM ${O} AS orders) UNION SELECT user_id FROM ${O} AS orders`,
    );
  });

  test('a cast to char(n) is not run over the global tables (postgres_fdw would compare it as text)', () => {
    assert.equal(rewrite(`SELECT count(*) FROM events WHERE tenant = 'ab'::char(3)`), null);
    assert.equal(rewrite(`SELECT count(*) FROM events WHERE tenant = CAST('ab' AS character(3))`), null);
  });

  test('pinned reads, writes and reference reads have no global plan', () => {
    assert.equal(rewrite('SELECT * FROM users WHERE id = 4'), `SELECT * FROM ${U} AS users WHERE id = 4`);
    assert.equal(rewrite('UPDATE users SET name = 1'), null);
    assert.equal(rewrite('SELECT * FROM countries'), null);
  });
});
