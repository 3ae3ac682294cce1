/**
 * The session's search_path through the proxy (`pgscale up`, two groups): two distributed tables
 * named `users`, `app.users` (32 shards) and `public.users` (3 shards, so a key's group differs
 * between them for many keys), and the app role, whose default path `"$user", public` finds
 * `app.users` first. An unqualified `users` must be routed as PostgreSQL resolves it: by the
 * default path, `SET search_path`, `RESET`, `SET LOCAL` inside a transaction, and the start-up
 * `options=-c search_path=…` (node-postgres) or `search_path` parameter (postgres.js). Statements
 * the sharding host runs on every group, and a statement after a SET in the same query, must
 * name such a table with its schema (0A000).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import postgres from 'postgres';
import { binarySets } from './harness.js';
import { placement, upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';

const bins = binarySets()[0]!;
const KEYS = Array.from({ length: 24 }, (_, i) => i + 1);

describe("the session's search_path through pgscale up (two groups)", () => {
  let sc: ShardedCluster;
  let app: pg.Client;
  let direct: pg.Client[] = [];
  const code = (c: string) => (e: { code?: string }) => e.code === c;
  const nameOf = async (c: pg.Client, id: number): Promise<string | null> => {
    const r = await c.query<{ name: string }>('SELECT name FROM users WHERE id = $1', [id]);
    return r.rows[0]?.name ?? null;
  };

  before(async () => {
    sc = await upSharded(bins, { groups: 2, replicas: 0 });
    for (let g = 0; g < 2; g++) direct.push(await sc.connectGroup(g));
    // Schemas are not created on every group through the proxy: made on each group here.
    for (const d of direct) await d.query('CREATE SCHEMA app AUTHORIZATION app');
    app = await sc.connectApp();
    await app.query('CREATE TABLE app.users (id bigint PRIMARY KEY, name text)');
    await app.query("SELECT create_distributed_table('app.users', 'id')");
    await app.query('CREATE TABLE public.users (id bigint PRIMARY KEY, name text)');
    await app.query("SELECT create_distributed_table('public.users', 'id', shard_count => 3)");
  });
  after(async () => {
    await app?.end().catch(() => undefined);
    for (const c of direct) await c.end().catch(() => undefined);
    direct = [];
    await sc?.down();
  });

  test('the default path ("$user", public): users is app.users for the app role', async () => {
    for (const k of KEYS) await app.query('INSERT INTO users (id, name) VALUES ($1, $2)', [k, `app ${k}`]);
    for (const k of KEYS) assert.equal(await nameOf(app, k), `app ${k}`);
    assert.equal((await placement(direct, 'app.users', 'id')).size, KEYS.length);
    assert.equal((await placement(direct, 'public.users', 'id')).size, 0);
  });

  test('SET search_path and RESET: users follows the path', async () => {
    await app.query('SET search_path = public');
    for (const k of KEYS) await app.query(`INSERT INTO users (id, name) VALUES (${k}, 'public ${k}')`);
    for (const k of KEYS) assert.equal(await nameOf(app, k), `public ${k}`);
    assert.equal((await placement(direct, 'public.users', 'id')).size, KEYS.length);
    await app.query('SET search_path TO app, public');
    for (const k of KEYS) assert.equal(await nameOf(app, k), `app ${k}`);
    await app.query("SET search_path = 'public', 'app'");
    for (const k of KEYS) assert.equal(await nameOf(app, k), `public ${k}`);
    await app.query('RESET search_path');
    for (const k of KEYS) assert.equal(await nameOf(app, k), `app ${k}`);
  });

  test('SET LOCAL search_path inside a transaction lasts until its end', async () => {
    await app.query('SET search_path = public');
    // The transaction is placed on group 0, where SET LOCAL runs first: a key app.users keeps
    // there and public.users on group 1 (routed by public.users, the SELECT would be refused).
    const inApp = await placement(direct, 'app.users', 'id');
    const inPublic = await placement(direct, 'public.users', 'id');
    const k = KEYS.find((x) => inApp.get(String(x))?.group === 0 && inPublic.get(String(x))?.group === 1);
    assert.ok(k !== undefined, 'a key on group 0 in app.users and on group 1 in public.users');
    await app.query('BEGIN');
    await app.query('SET LOCAL search_path = app');
    assert.equal(await nameOf(app, k), `app ${k}`);
    await app.query('COMMIT');
    assert.equal(await nameOf(app, k), `public ${k}`);
    await app.query('RESET search_path');
  });

  test('the start-up search_path: node-postgres options and the postgres.js parameter', async () => {
    const viaOptions = await sc.connectApp({ options: '-c search_path=app,public' });
    try {
      for (const k of KEYS) assert.equal(await nameOf(viaOptions, k), `app ${k}`);
      // RESET gives the start-up value back.
      await viaOptions.query('SET search_path = public');
      for (const k of KEYS) assert.equal(await nameOf(viaOptions, k), `public ${k}`);
      await viaOptions.query('RESET search_path');
      for (const k of KEYS) assert.equal(await nameOf(viaOptions, k), `app ${k}`);
    } finally {
      await viaOptions.end();
    }
    // public over the role's default (which finds app.users).
    const sql = postgres({ ...sc.app, max: 1, connection: { search_path: 'public' }, onnotice: () => {} });
    try {
      for (const k of KEYS) {
        const r = await sql<{ name: string }[]>`SELECT name FROM users WHERE id = ${k}`;
        assert.equal(r[0]?.name, `public ${k}`);
      }
    } finally {
      await sql.end();
    }
  });

  test("the Citus functions resolve an unqualified name with the caller's search_path", async () => {
    const shardOf = async (name: string) =>
      (await app.query<{ id: string }>('SELECT get_shard_id_for_distribution_column($1, 5) AS id', [name]))
        .rows[0]!.id;
    const inApp = await shardOf('app.users');
    const inPublic = await shardOf('public.users');
    assert.notEqual(inApp, inPublic);
    assert.equal(await shardOf('users'), inApp); // the default path: "$user" is app
    await app.query('SET search_path = public');
    assert.equal(await shardOf('users'), inPublic);
    await app.query('CREATE TABLE app.orders (id bigint PRIMARY KEY, note text)');
    await app.query('SET search_path = app');
    await app.query("SELECT create_distributed_table('orders', 'id')");
    const parts = await direct[1]!.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'app.orders'::regclass",
    );
    assert.ok(parts.rows[0]!.n > 0, 'app.orders has shards on group 1');
    for (const k of KEYS) await app.query('INSERT INTO orders (id, note) VALUES ($1, $2)', [k, `o${k}`]);
    assert.equal((await placement(direct, 'app.orders', 'id')).size, KEYS.length);
    await app.query('RESET search_path');
  });

  test('every-group statements and a statement after a SET in the same query need the schema', async () => {
    await app.query('SET search_path = app');
    await assert.rejects(
      app.query('ALTER TABLE users ADD COLUMN note text'),
      (e: { code?: string; message?: string }) =>
        e.code === '0A000' && /with its schema/.test(e.message ?? ''),
    );
    await app.query('RESET search_path');
    await assert.rejects(
      app.query('SET search_path = public; SELECT name FROM users WHERE id = 1'),
      code('0A000'),
    );
    assert.equal(await nameOf(app, 1), 'app 1');
  });
});
