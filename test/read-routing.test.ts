/**
 * Read scaling through the proxy with 1 primary + 2 streaming replicas: reads spread over the
 * replicas (counted by PostgreSQL itself), writes reach the primary, a client never reads data
 * older than its own writes (read-your-writes, with one replica delayed) while `eventual` shows
 * that stale reads really happen without it, and a stopped replica leaves the read set and
 * comes back.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startProxyFixture } from './proxy-harness.js';
import type { ProxyFixture } from './proxy-harness.js';
import { until } from './harness.js';
import { start, stop } from '../src/cluster/instance.js';

/** Index scans of table kv on each node, as PostgreSQL itself counts them (reads of the test only). */
async function idxScans(fx: ProxyFixture): Promise<number[]> {
  const out: number[] = [];
  for (const n of fx.tc.cluster.nodes()) {
    const c = new pg.Client({
      host: '127.0.0.1',
      port: n.port,
      user: 'postgres',
      password: fx.superPassword,
      database: 'app',
    });
    await c.connect();
    const r = await c.query<{ n: string }>(
      "SELECT coalesce(idx_scan, 0)::text AS n FROM pg_stat_user_tables WHERE relname = 'kv'",
    );
    out.push(Number(r.rows[0]!.n));
    await c.end();
  }
  return out;
}

describe('read/write split over two replicas', () => {
  let fx: ProxyFixture;
  before(async () => {
    fx = await startProxyFixture(
      { default_pool_size: 10, max_lag_bytes: 1024 * 1024, ryw_wait_ms: 200 },
      {},
      2,
    );
    const d = await fx.direct();
    await d.query('CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL); GRANT ALL ON kv TO app');
    await d.query('INSERT INTO kv SELECT g, 0 FROM generate_series(1, 100) g');
    await d.end();
    await until(
      'both replicas in the read set',
      async () => {
        const a = await fx.admin();
        const c = await fx.client();
        await c.query('SELECT 1'); // creates the router
        await c.end();
        const r = await a.query<{ role: string; in_read_set: string }>('SHOW NODES');
        await a.end();
        return r.rows.filter((x) => x.role === 'replica' && x.in_read_set === 't').length === 2;
      },
      15_000,
    );
  });
  after(async () => {
    await fx.close();
  });

  test('reads go to the replicas, spread within ±15 %; writes to the primary', async () => {
    await new Promise((r) => setTimeout(r, 1200)); // let earlier statistics settle
    const before = await idxScans(fx);
    const clients = await Promise.all(Array.from({ length: 20 }, () => fx.client()));
    await Promise.all(
      clients.map(async (c) => {
        for (let i = 0; i < 100; i++) await c.query('SELECT v FROM kv WHERE k = $1', [i + 1]);
      }),
    );
    const w = await clients[0]!.query<{ rec: boolean }>(
      'UPDATE kv SET v = v + 1 WHERE k = 1 RETURNING pg_is_in_recovery() AS rec',
    );
    assert.equal(w.rows[0]!.rec, false);
    await Promise.all(clients.map((c) => c.end()));
    // Pooled backends report their counts when they next flush statistics (up to ~10 s idle).
    let d: number[] = [];
    await until(
      'every read counted by PostgreSQL (pg_stat_user_tables)',
      async () => {
        const now = await idxScans(fx);
        d = now.map((a, i) => a - before[i]!);
        return d.reduce((x, y) => x + y, 0) >= 2001;
      },
      20_000,
    );
    const [primary, r1, r2] = d as [number, number, number];
    assert.ok(r1 + r2 >= 1900, `replicas served ${r1 + r2} of 2000 reads (primary ${primary})`);
    const mean = (r1 + r2) / 2;
    assert.ok(Math.abs(r1 - mean) <= 0.15 * mean, `spread ${r1} vs ${r2}`);
  });

  test('read-your-writes: 10,000 write-then-read cycles never read an old value, with one replica delayed', async () => {
    const d = await fx.direct();
    const replicaPort = fx.tc.cluster.nodes()[2]!.port;
    const r2 = new pg.Client({
      host: '127.0.0.1',
      port: replicaPort,
      user: 'postgres',
      password: fx.superPassword,
      database: 'postgres',
    });
    await r2.connect();
    await r2.query("ALTER SYSTEM SET recovery_min_apply_delay = '150ms'");
    await r2.query('SELECT pg_reload_conf()');
    const staleInfo: string[] = [];
    const run = async (consistency: string, cycles: number) => {
      const clients = await Promise.all(Array.from({ length: 20 }, () => fx.client()));
      let stale = 0;
      await Promise.all(
        clients.map(async (c, i) => {
          await c.query(`SET pgscale.consistency = '${consistency}'`);
          const k = i + 1;
          for (let n = 1; n <= cycles; n++) {
            const v = (await c.query<{ v: number }>('UPDATE kv SET v = v + 1 WHERE k = $1 RETURNING v', [k]))
              .rows[0]!.v;
            const row = (
              await c.query<{ v: number; port: string }>(
                "SELECT v, current_setting('port') AS port FROM kv WHERE k = $1",
                [k],
              )
            ).rows[0]!;
            if (row.v !== v) {
              stale++;
              if (consistency === 'read-your-writes')
                staleInfo.push(`k=${k} wrote ${v} read ${row.v} on port ${row.port}`);
            }
          }
        }),
      );
      await Promise.all(clients.map((c) => c.end()));
      return stale;
    };
    try {
      assert.equal(
        await run('read-your-writes', 500),
        0,
        `no stale read under read-your-writes: ${staleInfo.join('; ')}`,
      );
      assert.ok((await run('eventual', 50)) > 0, 'eventual consistency does show stale reads');
    } finally {
      await r2.query('ALTER SYSTEM RESET recovery_min_apply_delay');
      await r2.query('SELECT pg_reload_conf()');
      await r2.end();
      await d.end();
    }
  });

  test('a stopped replica leaves the read set and comes back; reads keep working', async () => {
    const node = fx.tc.cluster.nodes()[2]!;
    const paths = fx.tc.cluster.paths(node.name);
    const admin = await fx.admin();
    const inSet = async () =>
      (await admin.query<{ addr: string; in_read_set: string }>('SHOW NODES')).rows.find((r) =>
        r.addr.endsWith(`:${node.port}`),
      )?.in_read_set === 't';
    const c = await fx.client();
    let errors = 0;
    let lastError = '';
    let reads = 0;
    let stopReads = false;
    const reader = (async () => {
      while (!stopReads) {
        try {
          await c.query('SELECT count(*) FROM kv');
          reads++;
        } catch (e) {
          errors++;
          lastError = `${(e as { code?: string }).code ?? ''} ${(e as Error).message}`;
          break;
        }
      }
    })();
    await stop(fx.tc.bins, paths.pgdata, 'fast');
    const nodesDump = async () => JSON.stringify((await admin.query('SHOW NODES')).rows);
    await until('the stopped replica to leave the read set', async () => !(await inSet()), 5000).catch(
      async (e: Error) => {
        throw new Error(`${e.message}; SHOW NODES: ${await nodesDump()}`);
      },
    );
    // Reads go on while the replica is down: the next one completes (or the reader fails, which
    // the error count below reports). Waiting on that, not on a fixed 300 ms, keeps the test exact
    // on a loaded machine, where one read alone could take longer.
    const readsWhileDown = reads;
    await until(
      'a read while the replica is down',
      () => Promise.resolve(reads > readsWhileDown || errors > 0),
      15_000,
    );
    assert.equal(errors, 0, `the reading client saw no error while the replica was down: ${lastError}`);
    await start(fx.tc.bins, paths, node.name);
    await until('the replica to come back', () => inSet(), 15_000).catch(async (e: Error) => {
      throw new Error(`${e.message}; SHOW NODES: ${await nodesDump()}`);
    });
    stopReads = true;
    await reader;
    assert.equal(errors, 0, `the reading client saw no error: ${lastError}`);
    await c.end();
    await admin.end();
  });

  test('a read running on a replica that shuts down is answered from another server, simple and extended', async () => {
    // PostgreSQL sends a query's RowDescription before running it, and its shutdown FATAL in the
    // same write: the proxy takes the unwritten RowDescription back and replays the read.
    const replicas = fx.tc.cluster.nodes().slice(1);
    const super_ = async (port: number) => {
      const c = new pg.Client({
        host: '127.0.0.1',
        port,
        user: 'postgres',
        password: fx.superPassword,
        database: 'app',
      });
      await c.connect();
      return c;
    };
    for (const protocol of ['simple', 'extended'] as const) {
      const c = await fx.client();
      const sql =
        protocol === 'simple'
          ? "SELECT count(*) AS n, current_setting('port') AS port, 'simple' AS tag FROM kv a, kv b, kv c, kv d WHERE d.k <= 40"
          : "SELECT count(*) AS n, current_setting('port') AS port, 'extended' AS tag FROM kv a, kv b, kv c, kv d WHERE d.k <= $1";
      const reply = c.query<{ port: string; tag: string }>(sql, protocol === 'simple' ? [] : [40]);
      reply.catch(() => {}); // awaited below
      // The replica running it, as PostgreSQL itself says.
      let victim: (typeof replicas)[number] | undefined;
      await until(
        'the read to run on a replica',
        async () => {
          for (const n of replicas) {
            const d = await super_(n.port).catch(() => null);
            if (!d) continue;
            const r = await d.query(
              "SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT count(*) AS n,%'",
            );
            await d.end();
            if (r.rowCount) victim = n;
          }
          return victim !== undefined;
        },
        10_000,
      );
      const paths = fx.tc.cluster.paths(victim!.name);
      await stop(fx.tc.bins, paths.pgdata, 'fast');
      try {
        const row = (await reply).rows[0]!;
        assert.equal(row.tag, protocol);
        assert.notEqual(Number(row.port), victim!.port, 'answered by another server');
        // The session goes on.
        assert.equal((await c.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one, 1);
      } finally {
        await c.end().catch(() => {});
        await start(fx.tc.bins, paths, victim!.name);
      }
      const admin = await fx.admin();
      await until(
        'the replica back in the read set',
        async () =>
          (await admin.query<{ addr: string; in_read_set: string }>('SHOW NODES')).rows.find((r) =>
            r.addr.endsWith(`:${victim!.port}`),
          )?.in_read_set === 't',
        20_000,
      );
      await admin.end();
    }
  });

  test('SET pgscale.target and comment hints override the routing; bad values are refused', async () => {
    const primaryPort = fx.tc.cluster.nodes()[0]!.port;
    const c = await fx.client();
    const port = async (sql: string) => Number((await c.query<{ p: number }>(sql)).rows[0]!.p);
    await until(
      'a read on a replica',
      async () => (await port('SELECT inet_server_port() AS p')) !== primaryPort,
    );
    await c.query('SET pgscale.target = primary');
    for (let i = 0; i < 5; i++) assert.equal(await port('SELECT inet_server_port() AS p'), primaryPort);
    await c.query('RESET pgscale.target');
    await until(
      'reads back on replicas',
      async () => (await port('SELECT inet_server_port() AS p')) !== primaryPort,
    );
    assert.equal(await port('/* pgscale:primary */ SELECT inet_server_port() AS p'), primaryPort);
    await assert.rejects(
      c.query('SET pgscale.target = sideways'),
      (e: Error & { code?: string }) => e.code === '22023',
    );
    assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1);
    await c.end();
  });

  test('a read sent to the primary is not followed by a commit-position question; a write is', async () => {
    // Every read a client sends to the primary (hint or pgscale.target) used to count as a write:
    // the proxy asked `pg_current_wal_lsn()` after it on the same connection, a second
    // transaction on the primary for each read (PgBouncer, in the demo, did 1.7× our reads/s).
    // The question is the last statement its backend shows, so a backend still showing the read
    // afterwards was not asked one.
    const d = await fx.direct();
    const last = async (marker: string) =>
      (
        await d.query<{ query: string }>(
          "SELECT query FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend' AND query LIKE $1",
          [`%${marker}%`],
        )
      ).rows.length;
    const c = await fx.client();
    try {
      const cases: [string, (m: string) => Promise<unknown>][] = [
        [
          'hint, extended',
          (m) => c.query(`/* pgscale:primary */ SELECT v FROM kv WHERE k = $1 /* ${m} */`, [1]),
        ],
        ['hint, simple', (m) => c.query(`/* pgscale:primary */ SELECT v FROM kv WHERE k = 2 /* ${m} */`)],
        [
          'pgscale.target, named statement',
          async (m) => {
            await c.query('SET pgscale.target = primary');
            await c.query({ name: `st_${m}`, text: `SELECT v FROM kv WHERE k = $1 /* ${m} */`, values: [3] });
            await c.query({ name: `st_${m}`, text: `SELECT v FROM kv WHERE k = $1 /* ${m} */`, values: [4] });
            await c.query('RESET pgscale.target');
          },
        ],
      ];
      for (const [name, run] of cases) {
        const marker = `rp_${name.replace(/\W+/g, '_')}_${Date.now()}`;
        await run(marker);
        await until(`${name}: its backend shows the read`, async () => (await last(marker)) > 0, 10_000);
        await new Promise((r) => setTimeout(r, 500)); // a question would have replaced it by now
        assert.equal(await last(marker), 1, `${name}: the read is still its backend's last statement`);
      }
      // The control: after a write the question does come (read-your-writes needs it).
      const marker = `rw_${Date.now()}`;
      await c.query(`UPDATE kv SET v = v WHERE k = 5 /* ${marker} */`);
      await until(
        'the write followed by the commit-position question',
        async () => (await last(marker)) === 0,
        10_000,
      );
    } finally {
      await c.end();
      await d.end();
    }
  });

  test('a replica lagging beyond max_lag_bytes leaves the read set and comes back', async () => {
    const node = fx.tc.cluster.nodes()[1]!;
    const r = new pg.Client({
      host: '127.0.0.1',
      port: node.port,
      user: 'postgres',
      password: fx.superPassword,
      database: 'postgres',
    });
    await r.connect();
    const admin = await fx.admin();
    const inSet = async () =>
      (await admin.query<{ addr: string; in_read_set: string }>('SHOW NODES')).rows.find((x) =>
        x.addr.endsWith(`:${node.port}`),
      )?.in_read_set === 't';
    const d = await fx.direct();
    try {
      await r.query('SELECT pg_wal_replay_pause()');
      await d.query(
        "CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g",
      );
      await until('the lagging replica to leave the read set', async () => !(await inSet()), 10_000);
      await r.query('SELECT pg_wal_replay_resume()');
      await until('the replica to come back', () => inSet(), 15_000);
    } finally {
      await r.query('SELECT pg_wal_replay_resume()').catch(() => undefined);
      await d.query('DROP TABLE IF EXISTS filler');
      await d.end();
      await r.end();
      await admin.end();
    }
  });
});
