/**
 * Read-after-commit across connections (issue #12): a client commits on one connection and reads
 * at once on another — as a web request that commits and redirects does — with both replicas in
 * the read set and slowed (recovery_min_apply_delay), so that a read served by a replica too soon
 * is stale. Under `causal` the read sees the commit whichever connection, driver (pg,
 * postgres.js) or pool mode (transaction, session) made it, as long as it went through the same
 * proxy; under `linearizable` also when it went through another proxy. `eventual` shows stale
 * reads do happen in the same setting (so the test can fail), and `causal` through two proxies
 * shows what it does not promise.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import postgres from 'postgres';
import { startProxyFixture, proxyConfig } from './proxy-harness.js';
import type { ProxyFixture } from './proxy-harness.js';
import { until } from './harness.js';
import { ProxyServer } from '../src/proxy/proxy-server.js';
import { databasesResolver } from '../src/proxy/resolver.js';
import { findFreePortBlock } from '../src/cluster/ports.js';

const DELAY = "'200ms'";
const CYCLES = 12;

/** One connection that can write or read: the two drivers behind one face. */
interface Conn {
  query(sql: string): Promise<{ v: number; rec: boolean }>;
  end(): Promise<void>;
}

describe('read-after-commit across connections, with two slowed replicas', () => {
  let fx: ProxyFixture;
  /** A second proxy (another host, say) in front of the same servers. */
  let other: ProxyServer;
  let otherPort = 0;
  let replicas: pg.Client[] = [];

  before(async () => {
    fx = await startProxyFixture({ default_pool_size: 8, max_lag_bytes: 0, ryw_wait_ms: 3000 }, {}, 2);
    const d = await fx.direct();
    await d.query('CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL); GRANT ALL ON kv TO app');
    await d.query('INSERT INTO kv SELECT g, 0 FROM generate_series(1, 100) g');
    await d.end();
    // The other proxy: the same database in transaction pooling, and in session pooling as app_session.
    const nodes = fx.tc.cluster.nodes();
    const replicaTargets = nodes.slice(1).map((n) => ({ host: '127.0.0.1', port: n.port }));
    otherPort = await findFreePortBlock(1);
    const cfg = proxyConfig(fx.serverPort, otherPort, {
      default_pool_size: 8,
      max_lag_bytes: 0,
      ryw_wait_ms: 3000,
      databases: {
        app: { host: '127.0.0.1', port: fx.serverPort, replicas: replicaTargets },
        app_session: {
          host: '127.0.0.1',
          port: fx.serverPort,
          dbname: 'app',
          pool_mode: 'session',
          replicas: replicaTargets,
        },
      },
    });
    other = new ProxyServer({
      config: cfg,
      resolve: databasesResolver(cfg),
      inlineUsers: new Map([
        ['app', fx.appPassword],
        ['postgres', fx.superPassword],
      ]),
      loginBackoff: false,
    });
    await other.start();
    replicas = await Promise.all(
      nodes.slice(1).map(async (n) => {
        const c = new pg.Client({
          host: '127.0.0.1',
          port: n.port,
          user: 'postgres',
          password: fx.superPassword,
          database: 'postgres',
        });
        await c.connect();
        return c;
      }),
    );
    // Both replicas hold the table and its rows before they are slowed: an `eventual` read may go
    // to either at once, and under load one had not replayed the CREATE TABLE yet (42P01, not a
    // stale value).
    for (const n of nodes.slice(1)) {
      const c = new pg.Client({
        host: '127.0.0.1',
        port: n.port,
        user: 'postgres',
        password: fx.superPassword,
        database: 'app',
      });
      await c.connect();
      try {
        await until(
          `${n.name} to have the test table and its rows`,
          async () =>
            (
              await c.query<{ n: number }>(
                "SELECT CASE WHEN to_regclass('public.kv') IS NULL THEN 0 ELSE (SELECT count(*)::int FROM kv) END AS n",
              )
            ).rows[0]!.n === 100,
          60_000,
        );
      } finally {
        await c.end();
      }
    }
    for (const r of replicas) {
      await r.query(`ALTER SYSTEM SET recovery_min_apply_delay = ${DELAY}`);
      await r.query('SELECT pg_reload_conf()');
    }
    for (const port of [fx.port, otherPort]) {
      await until(
        `both replicas in the read set of the proxy on port ${port}`,
        async () => {
          const c = await pgConn(port, 'app');
          await c.query('SELECT v FROM kv WHERE k = 1'); // creates the router
          await c.end();
          const a = new pg.Client({
            host: '127.0.0.1',
            port,
            user: 'postgres',
            password: fx.superPassword,
            database: 'pgscale',
          });
          await a.connect();
          const r = await a.query<{ role: string; in_read_set: string }>('SHOW NODES');
          await a.end();
          return r.rows.filter((x) => x.role === 'replica' && x.in_read_set === 't').length === 2;
        },
        30_000,
      );
    }
  });

  after(async () => {
    for (const r of replicas) {
      await r.query('ALTER SYSTEM RESET recovery_min_apply_delay').catch(() => undefined);
      await r.query('SELECT pg_reload_conf()').catch(() => undefined);
      await r.end().catch(() => undefined);
    }
    await other?.stop();
    await fx.close();
  });

  async function pgConn(port: number, database: string): Promise<Conn> {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'app', password: fx.appPassword, database });
    c.on('error', () => undefined);
    await c.connect();
    return {
      async query(sql) {
        const r = await c.query<{ v: number; rec: boolean }>(sql);
        return r.rows[0] ?? { v: -1, rec: false };
      },
      end: () => c.end(),
    };
  }

  async function postgresJsConn(port: number, database: string): Promise<Conn> {
    const sql = postgres({
      host: '127.0.0.1',
      port,
      user: 'app',
      password: fx.appPassword,
      database,
      max: 1,
      onnotice: () => undefined,
    });
    await sql`SELECT 1`;
    return {
      async query(text) {
        const rows = await sql.unsafe<{ v: number; rec: boolean }[]>(text, [], { prepare: true });
        return rows[0] ?? { v: -1, rec: false };
      },
      end: () => sql.end({ timeout: 5 }),
    };
  }

  /**
   * CYCLES times: commit an increment on `writer`, then read the row at once on `reader`
   * (another connection) under `level`. Returns the stale reads and the reads replicas served.
   */
  async function run(writer: Conn, reader: Conn, level: string, k: number) {
    await reader.query(`SET pgscale.consistency = '${level}'`);
    let stale = 0;
    let onReplica = 0;
    for (let i = 0; i < CYCLES; i++) {
      const w = await writer.query(
        `UPDATE kv SET v = v + 1 WHERE k = ${k} RETURNING v, pg_is_in_recovery() AS rec`,
      );
      assert.equal(w.rec, false, 'the write ran on the primary');
      const r = await reader.query(`SELECT v, pg_is_in_recovery() AS rec FROM kv WHERE k = ${k}`);
      if (r.v < w.v) stale++;
      if (r.rec) onReplica++;
    }
    return { stale, onReplica };
  }

  const drivers = { pg: pgConn, 'postgres.js': postgresJsConn } as const;
  let k = 0;

  for (const [driver, connect] of Object.entries(drivers)) {
    for (const writerDb of ['app', 'app_session'] as const) {
      const mode = writerDb === 'app' ? 'transaction' : 'session';
      test(`${driver}: a commit in ${mode} pooling is seen at once by another connection under causal, not under eventual`, async () => {
        const writer = await connect(otherPort, writerDb);
        const reader = await connect(otherPort, 'app');
        try {
          const eventual = await run(writer, reader, 'eventual', ++k);
          assert.ok(
            eventual.stale > 0,
            `eventual shows stale reads (the replicas are behind): ${eventual.stale}`,
          );
          const causal = await run(writer, reader, 'causal', ++k);
          assert.equal(
            causal.stale,
            0,
            `no stale read under causal (${causal.onReplica} served by replicas)`,
          );
        } finally {
          await writer.end();
          await reader.end();
        }
      });
    }
  }

  test('causal reads wait for a replica to replay the commit rather than all going to the primary', async () => {
    const writer = await pgConn(otherPort, 'app');
    const reader = await pgConn(otherPort, 'app');
    try {
      const causal = await run(writer, reader, 'causal', ++k);
      assert.equal(causal.stale, 0);
      // ryw_wait_ms (3 s) exceeds the replicas' delay (200 ms): they serve the reads once caught up.
      assert.ok(causal.onReplica > 0, `replicas served ${causal.onReplica} of ${CYCLES} reads`);
    } finally {
      await writer.end();
      await reader.end();
    }
  });

  for (const [driver, connect] of Object.entries(drivers)) {
    test(`${driver}: a commit through another proxy is seen under linearizable; causal does not promise it`, async () => {
      const writer = await connect(fx.port, 'app'); // the first proxy
      const reader = await connect(otherPort, 'app'); // the second one
      try {
        const causal = await run(writer, reader, 'causal', ++k);
        assert.ok(causal.stale > 0, `causal does not see another proxy's commits: ${causal.stale} stale`);
        const lin = await run(writer, reader, 'linearizable', ++k);
        assert.equal(lin.stale, 0, `no stale read under linearizable (${lin.onReplica} served by replicas)`);
      } finally {
        await writer.end();
        await reader.end();
      }
    });
  }
});
