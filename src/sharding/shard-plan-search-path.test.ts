// Unqualified names and the session's search_path: the planner looks a name up in the schemas of
// the path that hold catalog tables, in order (search-path.ts); statements the sharding host runs
// on every group must name such a table with its schema. With the router (shard-router.ts): the
// plan cache keeps one plan per text and path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadParser } from '../sql/pg-parser.js';
import { ShardRouter } from '../proxy/shard-router.js';
import { hashRemainder } from './hash.js';
import { catalogSchemas, parseSearchPathSql, plannerPath } from './search-path.js';
import { resolveShards, shardKeyPlan, type ShardRoute } from './shard-plan.js';
import { catalog as base, fakeRemainder, kind, one, USERS_FIRST } from './shard-plan.test-util.js';
import { relKey, type Catalog, type ColumnValue, type DistributedTable } from './types.js';

await loadParser();

/** app.users: another table named users, in its own colocation (shard r on group (r + 1) % 2). */
const APP_FIRST = base.nextShardId;
const appUsers: DistributedTable = {
  rel: { schema: 'app', name: 'users' },
  kind: 'distributed',
  column: 'id',
  type: 'int8',
  colocationId: 9,
  firstShardId: APP_FIRST,
};
const catalog: Catalog = {
  ...base,
  tables: new Map([...base.tables, [relKey(appUsers.rel), appUsers]]),
  colocations: new Map([
    ...base.colocations,
    [9, { id: 9, shardCount: 4, type: 'int8', placement: ['1', '0', '1', '0'] }],
  ]),
  nextShardId: APP_FIRST + 4,
};

function route(sql: string, searchPath?: readonly string[], params: ColumnValue[] = []): ShardRoute {
  return resolveShards(
    shardKeyPlan(sql, catalog, searchPath === undefined ? {} : { searchPath }),
    params,
    fakeRemainder,
  );
}

test('search_path values as SQL text: identifiers folded, quoted names and strings kept, DEFAULT', () => {
  assert.deepEqual(parseSearchPathSql('app, public'), ['app', 'public']);
  assert.deepEqual(parseSearchPathSql('"$user", public'), ['$user', 'public']);
  assert.deepEqual(parseSearchPathSql(`'App', "B c" , Sales`), ['App', 'B c', 'sales']);
  assert.deepEqual(parseSearchPathSql(`'it''s'`), ["it's"]);
  assert.deepEqual(parseSearchPathSql('DEFAULT'), ['$user', 'public']);
  assert.deepEqual(parseSearchPathSql("''"), ['']);
  assert.equal(parseSearchPathSql('app,'), null);
  assert.equal(parseSearchPathSql('app public'), null);
});

test('the planner path: schemas of the path holding catalog tables, $user as the user, the default', () => {
  assert.deepEqual([...catalogSchemas(catalog)].sort(), ['Sales', 'app', 'public']);
  assert.deepEqual(plannerPath(undefined, 'bob', catalog), ['public']);
  assert.deepEqual(plannerPath(undefined, 'app', catalog), ['app', 'public']);
  assert.deepEqual(plannerPath('public, app', 'app', catalog), ['public', 'app']);
  assert.deepEqual(plannerPath('"$user"', 'app', catalog), ['app']);
  assert.deepEqual(plannerPath('pg_catalog, nowhere', 'app', catalog), []);
  assert.deepEqual(plannerPath('"Sales", sales', 'x', catalog), ['Sales']);
  // Unreadable: the default.
  assert.deepEqual(plannerPath('app,', 'bob', catalog), ['public']);
});

test('an unqualified name is the first catalog table of that name along the path', () => {
  // Key 1: public.users shard 1 (group 1); app.users shard 1 (group 0).
  const sql = 'SELECT * FROM users WHERE id = 1';
  assert.deepEqual(route(sql), one('1', USERS_FIRST + 1));
  assert.deepEqual(route(sql, ['public']), one('1', USERS_FIRST + 1));
  assert.deepEqual(route(sql, ['app', 'public']), one('0', APP_FIRST + 1));
  assert.deepEqual(route(sql, ['public', 'app']), one('1', USERS_FIRST + 1));
  // No schema of the path holds one: a local table (group 0 answers, or says it does not exist).
  assert.deepEqual(route(sql, []), { kind: 'local' });
  // orders is only in public: not found through a path without public.
  assert.deepEqual(route('SELECT * FROM orders WHERE user_id = 1', ['app']), { kind: 'local' });
  // Qualified names do not depend on the path.
  assert.deepEqual(route('SELECT * FROM public.users WHERE id = 1', ['app']), one('1', USERS_FIRST + 1));
  assert.deepEqual(route('SELECT * FROM app.users WHERE id = 1', []), one('0', APP_FIRST + 1));
  // A join of app.users (by the path) with public.orders, not colocated: key 1 is on both groups.
  assert.equal(
    kind(route('SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = 1', ['app', 'public'])),
    'multi',
  );
  // Writes too.
  assert.deepEqual(
    route("UPDATE users SET name = 'x' WHERE id = 2", ['app', 'public']),
    one('1', APP_FIRST + 2),
  );
  assert.deepEqual(route('INSERT INTO users (id) VALUES (3)', ['app', 'public']), one('0', APP_FIRST + 3));
});

test('what the sharding host runs on every group must name a table found through the path with its schema', () => {
  const ddl = 'ALTER TABLE users ADD COLUMN note text';
  assert.equal(kind(route(ddl)), 'all');
  assert.equal(kind(route(ddl, ['public', 'app'])), 'all');
  const r = route(ddl, ['app', 'public']);
  assert.equal(kind(r), 'error 0A000');
  assert.match(r.kind === 'error' ? r.message : '', /name the table with its schema/);
  assert.equal(kind(route('ALTER TABLE app.users ADD COLUMN note text', ['app', 'public'])), 'all');
  assert.equal(kind(route('TRUNCATE users', ['app'])), 'error 0A000');
  // A multi-row INSERT is not split: its rows must be on one group.
  assert.deepEqual(
    route('INSERT INTO users (id) VALUES (1), (3)', ['app']),
    one('0', APP_FIRST + 1, APP_FIRST + 3),
  );
  assert.equal(kind(route('INSERT INTO users (id) VALUES (1), (2)', ['app'])), 'multi');
  assert.equal(kind(route('INSERT INTO app.users (id) VALUES (1), (2)', ['app'])), 'split-insert');
});

test('the router plans a text once per search_path; the default path costs nothing extra', () => {
  const router = new ShardRouter(
    () => catalog,
    () => Promise.resolve([]),
  );
  const sql = 'SELECT * FROM users WHERE id = 1';
  const bob = { value: undefined, user: 'bob' };
  const appUser = { value: undefined, user: 'app' };
  const group = (path?: { value: string | undefined; user: string }) => {
    const t = router.target(sql, [], path);
    return t.kind === 'group' ? t.group : t.kind;
  };
  // The router hashes with PostgreSQL's hash: key 1's shard is on different groups in the two tables.
  const r = hashRemainder('int8', { format: 'text', text: '1' }, 4);
  const pub = ['0', '1', '0', '1'][r]!;
  const app = ['1', '0', '1', '0'][r]!;
  assert.equal(group(), pub);
  assert.equal(group(bob), pub);
  assert.equal(group(appUser), app); // "$user" is app: app.users
  assert.equal(group({ value: 'public, app', user: 'app' }), pub);
  assert.equal(group({ value: 'app, public', user: 'bob' }), app);
  assert.equal(group({ value: "'app'", user: 'bob' }), app);
  assert.equal(group(), pub);
  assert.equal(group({ value: 'nowhere', user: 'bob' }), 'home');
});

test('a statement after a change of search_path in the same query text is refused when it names a catalog table unqualified', () => {
  for (const sql of [
    'SET search_path = app; SELECT * FROM users WHERE id = 1',
    "BEGIN; SET LOCAL search_path = 'app'; SELECT * FROM users WHERE id = 1; COMMIT",
    'SET SCHEMA $$app$$; UPDATE users SET name = 1 WHERE id = 1',
    'RESET search_path; SELECT * FROM users WHERE id = 1',
    'RESET ALL; SELECT * FROM users WHERE id = 1',
    'DISCARD ALL; SELECT * FROM users WHERE id = 1',
  ]) {
    const r = route(sql, ['public']);
    assert.equal(kind(r), 'error 0A000', sql);
    assert.match(r.kind === 'error' ? r.message : '', /change of search_path/, sql);
  }
  // Before the change, qualified names, or another setting: planned as usual.
  assert.deepEqual(
    route('SELECT * FROM users WHERE id = 1; SET search_path = app'),
    one('1', USERS_FIRST + 1),
  );
  assert.deepEqual(
    route('SET search_path = app; SELECT * FROM public.users WHERE id = 1'),
    one('1', USERS_FIRST + 1),
  );
  assert.deepEqual(route('SET work_mem = 1000; SELECT * FROM users WHERE id = 1'), one('1', USERS_FIRST + 1));
});
