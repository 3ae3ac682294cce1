/**
 * node_concurrency against a real server: with a fixed limit N, no more than N of the pool's
 * server connections run a transaction at once, however many clients send work (the rest queue
 * in the proxy and all finish); with 0 the pool's size is the only bound, and a reload switches
 * between the two. The server's own view (pg_stat_activity, state 'active') is sampled while
 * clients run pg_sleep in transactions.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { proxyConfig, startProxyFixture } from './proxy-harness.js';
import type { ProxyFixture } from './proxy-harness.js';
import { databasesResolver } from '../src/proxy/resolver.js';

const CLIENTS = 6;

describe('node_concurrency', () => {
  let fx: ProxyFixture;
  let direct: pg.Client;
  let admin: pg.Client;
  const clients: pg.Client[] = [];

  before(async () => {
    fx = await startProxyFixture({ default_pool_size: CLIENTS, node_concurrency: 2 });
    direct = await fx.direct({ database: 'postgres' });
    admin = await fx.admin();
    for (let i = 0; i < CLIENTS; i++) clients.push(await fx.client());
  });
  after(async () => {
    for (const c of clients) await c.end().catch(() => undefined);
    await direct.end();
    await admin.end();
    await fx.close();
  });

  /**
   * Every client runs `rounds` transactions of pg_sleep at once; meanwhile the server is asked,
   * again and again, how many of the proxy's connections are running something. The most seen.
   */
  const load = async (rounds: number): Promise<number> => {
    let done = false;
    const work = Promise.all(
      clients.map(async (c) => {
        for (let i = 0; i < rounds; i++) {
          await c.query('BEGIN');
          await c.query('SELECT pg_sleep(0.2)');
          await c.query('SELECT pg_sleep(0.1)');
          await c.query('COMMIT');
        }
      }),
    ).finally(() => {
      done = true;
    });
    let most = 0;
    while (!done) {
      const r = await direct.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = 'app' AND application_name = 'pgscale' AND state <> 'idle'",
      );
      most = Math.max(most, Number(r.rows[0]!.n));
    }
    await work;
    return most;
  };

  test('at most N server connections run a transaction at once; the other clients queue and finish', async () => {
    const most = await load(3);
    // 'idle in transaction' counts: a transaction holds its connection between statements.
    assert.ok(most <= 2, `${most} server connections were busy at once, node_concurrency is 2`);
    assert.equal(most, 2, 'the limit was never reached: the load did not test it');
    const pools = await admin.query<{ database: string; node_concurrency: string }>('SHOW POOLS');
    const row = pools.rows.find((r) => r.database === 'app');
    assert.equal(Number(row?.node_concurrency), 2);
  });

  test('0: the pool size is the only bound (a reload applies it to the running pool)', async () => {
    const cfg = proxyConfig(fx.serverPort, fx.port, { default_pool_size: CLIENTS, node_concurrency: 0 });
    assert.deepEqual(fx.proxy.reload(cfg, databasesResolver(cfg)), []);
    const most = await load(2);
    assert.ok(most > 2, `only ${most} server connections were busy at once without a limit`);
  });

  test('session pooling is not limited: clients holding a connection each all run at once (no deadlock)', async () => {
    const cfg = proxyConfig(fx.serverPort, fx.port, {
      default_pool_size: CLIENTS,
      node_concurrency: 2,
      databases: {
        app: { host: '127.0.0.1', port: fx.serverPort },
        postgres: { host: '127.0.0.1', port: fx.serverPort },
        sess: { host: '127.0.0.1', port: fx.serverPort, dbname: 'app', pool_mode: 'session' },
      },
    });
    assert.deepEqual(fx.proxy.reload(cfg, databasesResolver(cfg)), []);
    const held: pg.Client[] = [];
    try {
      for (let i = 0; i < 4; i++) held.push(await fx.client({ database: 'sess' }));
      // Each session holds its server connection from its first query: 4 > node_concurrency.
      for (const c of held) await c.query('SELECT 1');
      let most = 0;
      const work = Promise.all(held.map((c) => c.query('SELECT pg_sleep(0.5)'))).then(() => undefined);
      let done = false;
      const stop = () => {
        done = true;
      };
      work.then(stop, stop);
      while (!done) {
        const r = await direct.query<{ n: string }>(
          "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = 'app' AND application_name = 'pgscale' AND state = 'active'",
        );
        most = Math.max(most, Number(r.rows[0]!.n));
      }
      await work;
      assert.ok(most > 2, `only ${most} session connections ran at once; session pooling is not limited`);
    } finally {
      for (const c of held) await c.end().catch(() => undefined);
    }
  });

  test('auto: a fresh pool may run up to its size', async () => {
    const cfg = proxyConfig(fx.serverPort, fx.port, { default_pool_size: CLIENTS, node_concurrency: 'auto' });
    assert.deepEqual(fx.proxy.reload(cfg, databasesResolver(cfg)), []);
    const pools = await admin.query<{ database: string; node_concurrency: string }>('SHOW POOLS');
    const row = pools.rows.find((r) => r.database === 'app');
    assert.ok(Number(row?.node_concurrency) <= CLIENTS && Number(row?.node_concurrency) >= 2, JSON.stringify(row));
    // Every client's work still gets done.
    await load(1);
  });
});
