/**
 * Pool sizes and the per-database limit of the standalone proxy, against a real server: a reload
 * re-resolves every existing pool's size (default_pool_size and a database's own pool_size), so
 * pools grow and shrink at once; max_db_connections caps the server connections of a database
 * across all its users' pools, with clients queued (not refused) and idle connections of another
 * user's pool closed to make room, as PgBouncer does.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { proxyConfig, startProxyFixture } from './proxy-harness.js';
import type { ProxyFixture } from './proxy-harness.js';
import { until } from './harness.js';
import { databasesResolver } from '../src/proxy/resolver.js';

interface PoolRow {
  database: string;
  user: string;
  cl_waiting: string;
  sv_active: string;
  sv_idle: string;
  sv_tested: string;
}

describe('pool sizes and limits', () => {
  let fx: ProxyFixture;
  let admin: pg.Client;
  let direct: pg.Client;
  const open: pg.Client[] = [];

  before(async () => {
    fx = await startProxyFixture({ default_pool_size: 2 });
    admin = await fx.admin();
    direct = await fx.direct({ database: 'postgres' });
    // The first login loads database app's hidden-code registry. Until it is loaded, statements
    // that are not bare keep their connection after they end (the registry's fail-safe), which
    // the connection counts below would see: on a loaded machine the load can outlast the first
    // test's opening statements.
    const first = await fx.client();
    await until('the hidden-code registry of app loaded', () =>
      Promise.resolve(fx.proxy.hiddenCode.get('app')?.current === true),
    );
    await first.end();
  });
  after(async () => {
    for (const c of open) await c.end().catch(() => undefined);
    await admin.end();
    await direct.end();
    await fx.close();
  });

  const client = async (user: 'app' | 'postgres' = 'app') => {
    const c = await fx.client(user === 'app' ? {} : { user: 'postgres', password: fx.superPassword });
    open.push(c);
    return c;
  };
  const pool = async (user = 'app'): Promise<PoolRow> => {
    const r = await admin.query<PoolRow>('SHOW POOLS');
    const row = r.rows.find((x) => x.database === 'app' && x.user === user);
    assert.ok(row, `no pool for app/${user}: ${JSON.stringify(r.rows)}`);
    return row;
  };
  /** The proxy's pooled server connections to database app, as the server sees them. */
  const serverConns = async () => {
    const r = await direct.query<{ n: string }>(
      "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = 'app' AND application_name = 'pgscale'",
    );
    return Number(r.rows[0]!.n);
  };
  /** The server connections the proxy's pools hold or are opening for database app. */
  const dbConns = () => {
    let n = 0;
    for (const p of new Set(fx.proxy.pools.values())) if (p.database === 'app') n += p.total;
    return n;
  };
  const reload = (overrides: Record<string, unknown>) => {
    const cfg = proxyConfig(fx.serverPort, fx.port, overrides);
    assert.deepEqual(fx.proxy.reload(cfg, databasesResolver(cfg)), []);
  };
  const appDb = (extra: Record<string, unknown>) => ({
    databases: {
      app: { host: '127.0.0.1', port: fx.serverPort, ...extra },
      postgres: { host: '127.0.0.1', port: fx.serverPort },
    },
  });

  test('a reload resizes existing pools: default_pool_size and a database pool_size, up and down', async () => {
    const [c1, c2, c3] = [await client(), await client(), await client()];
    await c1.query('BEGIN');
    await c1.query('SELECT 1');
    await c2.query('BEGIN');
    await c2.query('SELECT 1');
    // The pool (size 2) is full: the third client queues.
    const third = c3.query('SELECT 3 AS n');
    await until('the third client queues', async () => Number((await pool()).cl_waiting) === 1);

    // A larger default serves it at once, on a third server connection.
    reload({ default_pool_size: 3 });
    assert.equal((await third).rows[0].n, 3);
    assert.equal(Number((await pool()).sv_active), 2);
    await c3.query('BEGIN');
    await c3.query('SELECT 1');
    assert.equal(Number((await pool()).sv_active), 3);

    // The database's own pool_size wins over the default, shrinking the pool: connections beyond
    // it close as they come back.
    reload({ default_pool_size: 3, ...appDb({ pool_size: 1 }) });
    const dbs = await admin.query<{ name: string; pool_size: string }>('SHOW DATABASES');
    assert.equal(String(dbs.rows.find((x) => x.name === 'app')?.pool_size), '1');
    for (const c of [c1, c2, c3]) await c.query('COMMIT');
    await until('the pool shrinks to 1', async () => {
      const p = await pool();
      return Number(p.sv_active) + Number(p.sv_idle) + Number(p.sv_tested) <= 1 && (await serverConns()) <= 1;
    });
    await c1.query('BEGIN');
    await c1.query('SELECT 1');
    const second = c2.query('SELECT 2 AS n');
    await until('the second client queues', async () => Number((await pool()).cl_waiting) === 1);

    // And grows again when the database's pool_size does.
    reload({ default_pool_size: 3, ...appDb({ pool_size: 2 }) });
    assert.equal((await second).rows[0].n, 2);
    await c1.query('COMMIT');
    reload({ default_pool_size: 2 });
  });

  test('SHOW SERVERS says tested while an idle connection is checked before it is lent', async () => {
    reload({ default_pool_size: 2 });
    const c = await client();
    await c.query('SELECT 1');
    // Every idle connection of app/app is stopped: the next client's connection is checked first
    // (server_check_delay 0) and the check (SELECT 1) hangs there, in the pool's tested list.
    const servers = async () =>
      (
        await admin.query<{ database: string; user: string; state: string; backend_pid: string }>(
          'SHOW SERVERS',
        )
      ).rows.filter((r) => r.database === 'app' && r.user === 'app');
    const pids = (await servers()).filter((r) => r.state === 'idle').map((r) => Number(r.backend_pid));
    assert.ok(pids.length > 0);
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    try {
      const q = c.query('SELECT 7 AS n');
      q.catch(() => undefined); // awaited below; not unhandled if the wait fails first
      await until('a connection is being checked', async () => {
        const rows = await servers();
        return rows.some((r) => r.state === 'tested') && rows;
      });
      for (const pid of pids) process.kill(pid, 'SIGCONT');
      assert.equal((await q).rows[0].n, 7);
    } finally {
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGCONT');
        } catch {
          // gone already
        }
      }
    }
  });

  test('max_db_connections caps a database across its users: clients wait, idle ones make room', async () => {
    reload({ default_pool_size: 4, max_db_connections: 2 });
    const [a1, a2, s1] = [await client(), await client(), await client('postgres')];
    await a1.query('BEGIN');
    await a1.query('SELECT 1');
    await a2.query('BEGIN');
    await a2.query('SELECT 1');
    // Two server connections for database app (user app): the superuser's pool of the same
    // database may not open a third; its client waits, without an error.
    const s = s1.query('SELECT 5 AS n');
    await until('the other user queues', async () => Number((await pool('postgres')).cl_waiting) === 1);
    assert.equal(dbConns(), 2);
    // One of app's connections goes idle: it is closed to make room for the waiting user.
    await a1.query('COMMIT');
    assert.equal((await s).rows[0].n, 5);
    assert.ok(dbConns() <= 2, `${dbConns()} server connections to app`);
    // The server agrees, once the connection closed for room is gone.
    await until('the server sees 2 connections at most', async () => (await serverConns()) <= 2);
    await a2.query('COMMIT');
    // Several clients of both users at once never take more than 2 server connections.
    const users = [a1, a2, s1, await client('postgres')];
    let most = 0;
    await Promise.all(
      users.map(async (c, i) => {
        for (let k = 0; k < 5; k++) {
          await c.query('BEGIN');
          most = Math.max(most, dbConns());
          await c.query(`SELECT ${i} + ${k}`);
          most = Math.max(most, dbConns());
          await c.query('COMMIT');
        }
      }),
    );
    assert.ok(most <= 2, `${most} server connections to app`);
    // Raising the limit on reload lets queued clients through at once.
    await a1.query('BEGIN');
    await a1.query('SELECT 1');
    await a2.query('BEGIN');
    await a2.query('SELECT 1');
    const again = s1.query('SELECT 6 AS n');
    await until('the other user queues again', async () => Number((await pool('postgres')).cl_waiting) === 1);
    reload({ default_pool_size: 4, max_db_connections: 3 });
    const cfg = await admin.query<{ key: string; value: string; changeable: string }>('SHOW CONFIG');
    assert.deepEqual(
      cfg.rows.filter((r) => r.key === 'max_db_connections').map((r) => [r.value, r.changeable]),
      [['3', 'yes']],
    );
    assert.equal((await again).rows[0].n, 6);
    await a1.query('COMMIT');
    await a2.query('COMMIT');
  });
});
