/**
 * The admin console of the standalone proxy: pipelined commands answered in order, the query
 * counter for prepared statements, SHOW LISTS and SHOW MEM, and pools for databases that come
 * from the `*` fallback freed once unused (a logged-in client naming nonexistent databases must
 * not grow the proxy without bound).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startProxyFixture } from './proxy-harness.js';
import type { ProxyFixture } from './proxy-harness.js';
import { RawClient, fe } from './raw-client.js';
import { until } from './harness.js';

describe('admin console', () => {
  let fx: ProxyFixture;
  before(async () => {
    fx = await startProxyFixture();
  });
  after(async () => {
    await fx.close();
  });

  test('pipelined commands are answered in the order they were sent (RELOAD, then SHOW VERSION)', async () => {
    const c = await RawClient.connect(fx.port);
    try {
      await c.loginScram({ user: 'postgres', database: 'pgscale' }, fx.superPassword);
      c.send(
        fe(
          { name: 'Query', query: 'RELOAD' },
          { name: 'Query', query: 'SHOW VERSION' },
          { name: 'Query', query: 'SHOW LISTS' },
          { name: 'Query', query: 'RELOAD' },
          { name: 'Query', query: 'SHOW POOLS' },
        ),
      );
      const tags: string[] = [];
      for (let i = 0; i < 5; i++) {
        const reply = await c.until('Z', 10_000);
        const cc = reply.find((m) => m.msg?.name === 'CommandComplete');
        tags.push(cc?.msg?.name === 'CommandComplete' ? cc.msg.tag : `no CommandComplete: ${reply.length}`);
        const row = reply.find((m) => m.msg?.name === 'RowDescription');
        if (i === 1) {
          assert.ok(row?.msg?.name === 'RowDescription' && row.msg.fields[0]?.name === 'version');
        }
        if (i === 2) {
          assert.ok(row?.msg?.name === 'RowDescription' && row.msg.fields[0]?.name === 'list');
        }
      }
      assert.deepEqual(tags, ['RELOAD', 'SHOW', 'SHOW', 'RELOAD', 'SHOW']);
    } finally {
      c.destroy();
    }
  });

  test('total_query_count counts every execution of a prepared statement', async () => {
    const admin = await fx.admin();
    const count = async () => {
      const r = await admin.query<{ database: string; user: string; total_query_count: string }>(
        'SHOW STATS',
      );
      return r.rows
        .filter((x) => x.database === 'app' && x.user === 'app')
        .reduce((n, x) => n + Number(x.total_query_count), 0);
    };
    const c = await fx.client();
    await c.query('SELECT 1'); // the pool exists from here on
    const before = await count();
    for (let i = 0; i < 25; i++) {
      await c.query({ name: 'counted', text: 'SELECT $1::int AS n', values: [i] });
    }
    await c.query('SELECT 2');
    await c.end();
    const added = (await count()) - before;
    await admin.end();
    // 25 executions of the prepared statement and one simple query.
    assert.equal(added, 26);
  });

  test('SHOW LISTS and SHOW MEM use PgBouncer column names and real counts', async () => {
    const admin = await fx.admin();
    const clients = await Promise.all([fx.client(), fx.client()]);
    try {
      const lists = await admin.query<{ list: string; items: string }>('SHOW LISTS');
      assert.deepEqual(
        lists.fields.map((f) => f.name),
        ['list', 'items'],
      );
      const item = (name: string) => {
        const row = lists.rows.find((r) => r.list === name);
        assert.ok(row, `SHOW LISTS has ${name}: ${JSON.stringify(lists.rows)}`);
        return Number(row.items);
      };
      for (const name of [
        'databases',
        'users',
        'pools',
        'free_clients',
        'used_clients',
        'login_clients',
        'free_servers',
        'used_servers',
      ]) {
        assert.ok(Number.isInteger(item(name)) && item(name) >= 0, name);
      }
      // Two app clients and this admin console.
      assert.ok(item('used_clients') >= 3, JSON.stringify(lists.rows));
      assert.equal(item('databases'), 2); // app and postgres in the fixture's config
      assert.ok(item('pools') >= 1);

      const mem = await admin.query<{
        name: string;
        size: string;
        used: string;
        free: string;
        memtotal: string;
      }>('SHOW MEM');
      assert.deepEqual(
        mem.fields.map((f) => f.name),
        ['name', 'size', 'used', 'free', 'memtotal'],
      );
      const byName = new Map(mem.rows.map((r) => [r.name, r]));
      for (const name of ['heap', 'rss', 'external', 'client_conn', 'server_conn', 'pool']) {
        assert.ok(byName.has(name), `SHOW MEM has ${name}: ${JSON.stringify(mem.rows)}`);
      }
      const heap = byName.get('heap')!;
      assert.ok(Number(heap.memtotal) > 1_000_000, 'the heap is at least a megabyte');
      assert.ok(Number(heap.used) > 0 && Number(heap.used) <= Number(heap.memtotal));
      assert.ok(Number(byName.get('client_conn')!.used) >= 3);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
      await admin.end();
    }
  });

  test('allow_superuser off: a superuser cannot reach a database through the proxy, still the admin console', async () => {
    await fx.restartProxy({ allow_superuser: false });
    try {
      const su = new pg.Client({
        host: '127.0.0.1',
        port: fx.port,
        user: 'postgres',
        password: fx.superPassword,
        database: 'app',
      });
      su.on('error', () => undefined);
      await assert.rejects(su.connect(), (e: Error & { code?: string }) => {
        assert.equal(e.code, '28000');
        assert.match(e.message, /allow_superuser/);
        return true;
      });
      // The application role is unaffected; the superuser listed in admin_users administers.
      const app = await fx.client();
      await app.query('SELECT 1');
      await app.end();
      const admin = await fx.admin();
      await admin.query('SHOW POOLS');
      await admin.end();
    } finally {
      await fx.restartProxy({});
    }
  });

  test('logins naming nonexistent databases through the * fallback leave no pool behind', async () => {
    await fx.restartProxy({
      databases: {
        app: { host: '127.0.0.1', port: fx.serverPort },
        '*': { host: '127.0.0.1', port: fx.serverPort },
      },
    });
    const admin = await fx.admin();
    const pools = async () => (await admin.query('SHOW POOLS')).rows.length;
    const app = await fx.client();
    await app.query('SELECT 1');
    const start = await pools();
    for (let i = 0; i < 150; i++) {
      const c = new pg.Client({
        host: '127.0.0.1',
        port: fx.port,
        user: 'app',
        password: fx.appPassword,
        database: `nosuch_${i}`,
      });
      c.on('error', () => undefined);
      await assert.rejects(c.connect(), (e: Error & { code?: string }) => e.code === '3D000');
    }
    assert.ok((await pools()) <= start, `pools after 150 failed logins: ${await pools()} (was ${start})`);
    // An existing database reached through the fallback gets a pool on demand; it goes away once
    // its last client has left and its connections have been closed (server_idle_timeout 0 here).
    await fx.restartProxy({
      server_idle_timeout: 1,
      autodb_idle_timeout: 1,
      databases: {
        app: { host: '127.0.0.1', port: fx.serverPort },
        '*': { host: '127.0.0.1', port: fx.serverPort },
      },
    });
    await app.end();
    const admin2 = await fx.admin();
    const c = await fx.client({ database: 'postgres' });
    await c.query('SELECT 1');
    const has = async () =>
      (await admin2.query<{ database: string }>('SHOW POOLS')).rows.some((r) => r.database === 'postgres');
    assert.ok(await has());
    await c.end();
    await until('the on-demand pool of database postgres is freed', async () => !(await has()), 30_000);
    await admin2.end();
    await admin.end().catch(() => undefined);
    await fx.restartProxy({});
  });
});
