/**
 * The proxy in front of real PostgreSQL, exercised with real drivers: transaction pooling that
 * drivers cannot notice (prepared statements across connections, session settings, disconnects
 * mid-transaction, LISTEN/NOTIFY fan-out, COPY, cancel), authentication and the admin console.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import pg from 'pg';
import postgres from 'postgres';
import { startProxyFixture } from './proxy-harness.js';
import type { ProxyFixture } from './proxy-harness.js';

describe('proxy, transaction pooling (pool of 4 server connections)', () => {
  let fx: ProxyFixture;
  before(async () => {
    fx = await startProxyFixture();
    const d = await fx.direct();
    await d.query('CREATE TABLE kv (k int PRIMARY KEY, v text); GRANT ALL ON kv TO app');
    await d.end();
  });
  after(async () => {
    await fx.close();
  });

  test('simple queries, transactions and errors then recovery', async () => {
    const c = await fx.client();
    assert.equal((await c.query('SELECT 1 + 1 AS two')).rows[0].two, 2);
    await c.query('BEGIN');
    await c.query("INSERT INTO kv VALUES (1, 'a')");
    await assert.rejects(c.query('SELECT * FROM no_such_table'), /does not exist/);
    await assert.rejects(c.query('SELECT 1'), /current transaction is aborted/);
    await c.query('ROLLBACK');
    assert.equal((await c.query('SELECT count(*)::int AS n FROM kv')).rows[0].n, 0);
    await c.query('BEGIN');
    await c.query("INSERT INTO kv VALUES (1, 'a')");
    await c.query('SAVEPOINT s');
    await assert.rejects(c.query("INSERT INTO kv VALUES (1, 'dup')"), /duplicate key/);
    await c.query('ROLLBACK TO SAVEPOINT s');
    await c.query('COMMIT');
    assert.equal((await c.query('SELECT v FROM kv WHERE k = 1')).rows[0].v, 'a');
    await c.end();
  });

  test('named prepared statements work across transactions and server connections, 20 clients on 4 servers', async () => {
    const clients = await Promise.all(Array.from({ length: 20 }, () => fx.client()));
    await Promise.all(
      clients.map(async (c, i) => {
        for (let t = 0; t < 25; t++) {
          await c.query('BEGIN');
          const r = await c.query({ name: 'add', text: 'SELECT $1::int + $2::int AS s', values: [i, t] });
          assert.equal(r.rows[0].s, i + t);
          const r2 = await c.query({ name: 'echo', text: 'SELECT $1::text AS e', values: [`c${i}`] });
          assert.equal(r2.rows[0].e, `c${i}`);
          await c.query('COMMIT');
        }
      }),
    );
    await Promise.all(clients.map((c) => c.end()));
    const d = await fx.direct();
    const n = await d.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'pgscale'",
    );
    await d.end();
    assert.ok(n.rows[0]!.n <= 4, `at most 4 server connections, saw ${n.rows[0]!.n}`);
  });

  test('SQL PREPARE / EXECUTE work across transactions', async () => {
    const c = await fx.client();
    await c.query('PREPARE sq(int) AS SELECT $1 * 10 AS x');
    for (let i = 0; i < 10; i++) {
      // Other clients occupy connections so this one moves between servers.
      const others = await Promise.all([fx.client(), fx.client()]);
      await Promise.all(others.map((o) => o.query('SELECT pg_sleep(0.01)')));
      assert.equal((await c.query(`EXECUTE sq(${i})`)).rows[0].x, i * 10);
      await Promise.all(others.map((o) => o.end()));
    }
    await c.query('DEALLOCATE sq');
    await assert.rejects(c.query('EXECUTE sq(1)'), /does not exist/);
    await c.end();
  });

  test('session SET is kept for its client and never leaks to another', async () => {
    const a = await fx.client();
    const b = await fx.client();
    await a.query("SET statement_timeout = '1234ms'");
    await a.query("SET application_name = 'client-a'");
    for (let i = 0; i < 8; i++) {
      const [ra, rb] = await Promise.all([
        a.query('SHOW statement_timeout'),
        b.query('SHOW statement_timeout'),
      ]);
      assert.equal(ra.rows[0].statement_timeout, '1234ms');
      assert.equal(rb.rows[0].statement_timeout, '0');
    }
    await a.query('RESET statement_timeout');
    assert.equal((await a.query('SHOW statement_timeout')).rows[0].statement_timeout, '0');
    // SET inside a rolled-back transaction does not stick.
    await b.query('BEGIN');
    await b.query("SET lock_timeout = '5s'");
    await b.query('ROLLBACK');
    assert.equal((await b.query('SHOW lock_timeout')).rows[0].lock_timeout, '0');
    await a.end();
    await b.end();
  });

  test('statement_timeout set by one client cancels its query only', async () => {
    const a = await fx.client();
    const b = await fx.client();
    await a.query("SET statement_timeout = '100ms'");
    const [ra, rb] = await Promise.allSettled([
      a.query('SELECT pg_sleep(1)'),
      b.query('SELECT pg_sleep(0.3)'),
    ]);
    assert.equal(ra.status, 'rejected');
    assert.match(String(ra.reason), /statement timeout/);
    assert.equal(rb.status, 'fulfilled');
    await a.end();
    await b.end();
  });

  test('a client that disconnects mid-transaction leaves no transaction or lock behind', async () => {
    const a = await fx.client();
    await a.query('BEGIN');
    await a.query("INSERT INTO kv VALUES (77, 'uncommitted')");
    await a.query('LOCK TABLE kv IN ACCESS EXCLUSIVE MODE');
    await a.end();
    // PostgreSQL itself ends a departed client's transaction asynchronously (as the proxy does:
    // its ROLLBACK may still be on the way), so the next client waits for the lock — but not for
    // long: a lock left behind would hold it past the statement timeout. NOWAIT raced that.
    const b = await fx.client({ statement_timeout: 5000 });
    await b.query('BEGIN');
    await b.query('LOCK TABLE kv IN ACCESS EXCLUSIVE MODE');
    await b.query('COMMIT');
    assert.equal((await b.query('SELECT count(*)::int AS n FROM kv WHERE k = 77')).rows[0].n, 0);
    await b.end();
  });

  test('session advisory locks, SET ROLE and temp tables pin the connection and are reset before reuse', async () => {
    const a = await fx.client();
    await a.query('SELECT pg_advisory_lock(4242)');
    await a.query('CREATE TEMP TABLE scratch (x int)');
    await a.query('INSERT INTO scratch VALUES (1)');
    // Pinned: the temp table is still there in later transactions.
    assert.equal((await a.query('SELECT count(*)::int AS n FROM scratch')).rows[0].n, 1);
    await a.end();
    await new Promise((r) => setTimeout(r, 200));
    const b = await fx.client();
    const got = await b.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(4242) AS ok');
    assert.equal(got.rows[0]!.ok, true, 'the lock was released by the reset');
    await b.query('SELECT pg_advisory_unlock(4242)');
    await assert.rejects(b.query('SELECT * FROM scratch'), /does not exist/);
    await b.end();
  });

  test('LISTEN/NOTIFY work in transaction mode through the fan-out connection', async () => {
    const listener = await fx.client();
    const other = await fx.client();
    const got: string[] = [];
    listener.on('notification', (n) => got.push(`${n.channel}:${n.payload ?? ''}`));
    await listener.query('LISTEN events');
    await listener.query('LISTEN "Mixed Case"');
    await other.query("NOTIFY events, 'one'");
    await other.query(`SELECT pg_notify('Mixed Case', 'two')`);
    await other.query("NOTIFY unrelated, 'x'");
    for (let i = 0; i < 100 && got.length < 2; i++) {
      await listener.query('SELECT 1');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(got.sort(), ['Mixed Case:two', 'events:one']);
    await listener.query('UNLISTEN *');
    await other.query("NOTIFY events, 'after'");
    await new Promise((r) => setTimeout(r, 200));
    await listener.query('SELECT 1');
    assert.equal(got.length, 2);
    await listener.end();
    await other.end();
  });

  test('cancel reaches the query of the client that asked, and no other', async () => {
    const a = await fx.client();
    const b = await fx.client();
    const slowA = a.query('SELECT pg_sleep(10)');
    const slowB = b.query('SELECT pg_sleep(0.5) AS done');
    await new Promise((r) => setTimeout(r, 200));
    const ca = a as unknown as { processID: number; secretKey: number };
    await new Promise<void>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: fx.port }, () => {
        const buf = Buffer.alloc(16);
        buf.writeInt32BE(16, 0);
        buf.writeInt32BE(80877102, 4);
        buf.writeInt32BE(ca.processID, 8);
        buf.writeInt32BE(ca.secretKey, 12);
        s.end(buf);
      });
      s.on('close', () => resolve());
      s.on('error', reject);
    });
    await assert.rejects(slowA, /canceling statement due to user request/);
    assert.equal((await slowB).rows.length, 1);
    assert.equal((await a.query('SELECT 2 AS x')).rows[0].x, 2);
    await a.end();
    await b.end();
  });

  test('COPY in and out with postgres.js, and pipelining', async () => {
    const sql = postgres({
      host: '127.0.0.1',
      port: fx.port,
      user: 'app',
      password: fx.appPassword,
      database: 'app',
      max: 2,
      onnotice: () => undefined,
    });
    try {
      await sql`CREATE TABLE IF NOT EXISTS copied (id int, t text)`;
      const w = await sql`COPY copied FROM STDIN`.writable();
      await new Promise<void>((resolve, reject) => {
        w.on('error', reject);
        w.on('finish', resolve);
        let i = 0;
        const write = () => {
          let ok = true;
          while (i < 100_000 && ok) {
            ok = w.write(`${i}\trow ${i}\n`);
            i++;
          }
          if (i < 100_000) w.once('drain', write);
          else w.end();
        };
        write();
      });
      const counted = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM copied`;
      assert.equal(counted[0]!.n, 100_000);
      const results = await Promise.all(
        Array.from({ length: 500 }, (_, i) => sql<{ i: number }[]>`SELECT ${i}::int AS i`),
      );
      assert.deepEqual(
        results.map((x) => x[0]!.i),
        Array.from({ length: 500 }, (_, i) => i),
      );
      // Last on this client: postgres.js (3.4) stalls on a query issued after a large COPY TO
      // readable on the same connection, with or without a proxy in between.
      const r = await sql`COPY copied TO STDOUT`.readable();
      let lines = 0;
      for await (const chunk of r) lines += String(chunk).split('\n').length - 1;
      assert.equal(lines, 100_000);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  test('a large result streams through intact', async () => {
    const c = await fx.client();
    const r = await c.query<{ s: string; n: string }>(
      'SELECT sum(g)::text AS s, count(*)::text AS n FROM (SELECT g FROM generate_series(1, 300000) g) x',
    );
    const rows = await c.query('SELECT g, repeat($1, 20) AS pad FROM generate_series(1, 200000) g', ['x']);
    assert.equal(rows.rows.length, 200_000);
    assert.equal(r.rows[0]!.n, '300000');
    await c.end();
  });

  test('300 concurrent clients move money and the total stays exact', async () => {
    const d = await fx.direct();
    await d.query(
      'CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL); GRANT ALL ON accounts TO app',
    );
    await d.query('INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 100) g');
    await d.end();
    const clients = await Promise.all(Array.from({ length: 300 }, () => fx.client()));
    let committed = 0;
    await Promise.all(
      clients.map(async (c, i) => {
        for (let t = 0; t < 5; t++) {
          const a = ((i * 7 + t) % 100) + 1;
          const b = ((i * 13 + t * 3) % 100) + 1;
          if (a === b) continue;
          const [lo, hi] = a < b ? [a, b] : [b, a];
          try {
            await c.query('BEGIN');
            await c.query('UPDATE accounts SET balance = balance - 1 WHERE id = $1', [lo]);
            await c.query('UPDATE accounts SET balance = balance + 1 WHERE id = $1', [hi]);
            await c.query('COMMIT');
            committed++;
          } catch {
            await c.query('ROLLBACK').catch(() => undefined);
          }
        }
      }),
    );
    await Promise.all(clients.map((c) => c.end()));
    const c = await fx.client();
    const total = await c.query<{ t: string }>('SELECT sum(balance)::text AS t FROM accounts');
    assert.equal(total.rows[0]!.t, '100000');
    assert.ok(committed > 1000);
    await c.end();
  });
});

describe('proxy authentication and admin console', () => {
  let fx: ProxyFixture;
  before(async () => {
    fx = await startProxyFixture();
  });
  after(async () => {
    await fx.close();
  });

  const tryLogin = async (opts: Partial<pg.ClientConfig>) => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port: fx.port,
      user: 'app',
      password: fx.appPassword,
      database: 'app',
      ...opts,
    });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.end();
      return null;
    } catch (e) {
      return e as Error & { code?: string };
    }
  };

  test('wrong password and unknown user fail the same way (28P01)', async () => {
    const wrong = await tryLogin({ password: 'nope' });
    const unknown = await tryLogin({ user: 'mallory', password: 'nope' });
    assert.equal(wrong?.code, '28P01');
    assert.equal(unknown?.code, '28P01');
    assert.equal(wrong?.message.replace('"app"', 'U'), unknown?.message.replace('"mallory"', 'U'));
  });

  test('an unknown database is 3D000 after authentication', async () => {
    const e = await tryLogin({ database: 'nosuchdb' });
    assert.equal(e?.code, '3D000');
    const bad = await tryLogin({ database: 'nosuchdb', password: 'wrong' });
    assert.equal(bad?.code, '28P01');
  });

  test('startup options: settings apply, role changes are refused', async () => {
    const c = await fx.client({ options: '-c statement_timeout=4321 -c work_mem=3MB' });
    assert.equal((await c.query('SHOW statement_timeout')).rows[0].statement_timeout, '4321ms');
    assert.equal((await c.query('SHOW work_mem')).rows[0].work_mem, '3MB');
    await c.end();
    const e = await tryLogin({ options: '-c role=postgres' });
    assert.equal(e?.code, '0A000');
    assert.match(e?.message ?? '', /parameter "role" cannot be given at start-up/);
  });

  test('admin console: SHOW for admins and stats users, commands for admins only', async () => {
    const admin = await fx.admin();
    for (const what of ['POOLS', 'CLIENTS', 'SERVERS', 'STATS', 'CONFIG', 'DATABASES']) {
      const r = await admin.query(`SHOW ${what}`);
      assert.ok(r.fields.length > 0, what);
    }
    const cfg = await admin.query<{ key: string; value: string }>('SHOW CONFIG');
    const text = JSON.stringify(cfg.rows);
    assert.ok(!text.includes(fx.appPassword) && !text.includes(fx.superPassword), 'no secret in SHOW CONFIG');
    await admin.query('PAUSE');
    await admin.query('RESUME');
    await admin.end();
    const stats = new pg.Client({
      host: '127.0.0.1',
      port: fx.port,
      user: 'app',
      password: fx.appPassword,
      database: 'pgscale',
    });
    await stats.connect();
    assert.ok((await stats.query('SHOW POOLS')).rows.length >= 0);
    await assert.rejects(stats.query('SHUTDOWN'), /only SHOW/);
    await stats.end();
  });
});

describe('proxy, session pool mode', () => {
  let fx: ProxyFixture;
  before(async () => {
    fx = await startProxyFixture({ pool_mode: 'session', default_pool_size: 2 });
  });
  after(async () => {
    await fx.close();
  });

  test('a client keeps its server connection; the next client gets a reset one', async () => {
    const a = await fx.client();
    await a.query('CREATE TEMP TABLE mine (x int)');
    await a.query("SET search_path = 'pg_temp, public'");
    const pid = (await a.query('SELECT pg_backend_pid() AS p')).rows[0].p as number;
    assert.equal((await a.query('SELECT pg_backend_pid() AS p')).rows[0].p, pid);
    await a.end();
    await new Promise((r) => setTimeout(r, 200));
    const b = await fx.client();
    await assert.rejects(b.query('SELECT * FROM mine'), /does not exist/);
    assert.notEqual((await b.query('SHOW search_path')).rows[0].search_path, 'pg_temp, public');
    await b.end();
  });
});
