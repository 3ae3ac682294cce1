/**
 * `pgscale proxy --workers 2`: two processes serve one port. Real drivers work through it in
 * both pool modes (the second after a SIGHUP that every worker takes); a cancel works whether its
 * connection lands on the client's worker or the other one, and a forged key cancels nothing;
 * SHOW sums over the workers and PAUSE/RESUME reach both; /metrics labels every worker; a worker
 * killed with SIGKILL loses only its own clients and is started again; SIGTERM, and SIGKILL of
 * the primary, leave no process behind.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import postgres from 'postgres';
import { binarySets, makeCluster, until } from './harness.js';
import type { TestCluster } from './harness.js';
import { sendCancel } from './raw-client.js';
import { startProxy } from './standalone-proxy.js';
import type { Running } from './standalone-proxy.js';
import { readSecrets } from '../src/cluster/secrets.js';
import { findFreePortBlock } from '../src/cluster/ports.js';
import { nodePgScenario } from './drivers/node-pg.js';
import { postgresJsScenario } from './drivers/postgres-js.js';
import { psqlScenario } from './drivers/psql.js';
import { findClientTools } from './drivers/util.js';
import type { DriverTarget } from './drivers/target.js';

const bins = binarySets()[0]!;

/** node-postgres keeps BackendKeyData here (not in @types/pg). */
type Keyed = pg.Client & { processID: number; secretKey: number };

/** The worker a client is on: the instance in its process id (cancel-key.ts, bits 30..21). */
const workerOf = (c: pg.Client) => ((c as Keyed).processID >>> 21) & 1023;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('pgscale proxy --workers 2', () => {
  let tc: TestCluster;
  let serverPort: number;
  let superPassword: string;
  let appPassword: string;
  let port: number;
  let httpPort: number;
  let yaml: string;
  let proxy: Running;
  const running: Running[] = [];
  const config = (poolSize: number, p: number) =>
    [
      'proxy:',
      '  listen: 127.0.0.1',
      `  port: ${p}`,
      `  default_pool_size: ${poolSize}`,
      '  admin_users: [postgres]',
      '  allow_superuser: true',
      `  auth_file: ${join(tc.dir, 'users.txt')}`,
      '  databases:',
      `    app: { host: 127.0.0.1, port: ${serverPort} }`,
      `    app_session: { host: 127.0.0.1, port: ${serverPort}, pool_mode: session }`,
      '',
    ].join('\n');

  const app = async (extra: Partial<pg.ClientConfig> = {}): Promise<pg.Client> => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'app',
      password: appPassword,
      database: 'app',
      ...extra,
    });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };
  const admin = () => app({ user: 'postgres', password: superPassword, database: 'pgscale' });
  const show = async (what: string) => {
    const a = await admin();
    try {
      return (await a.query<Record<string, string>>(`SHOW ${what}`)).rows;
    } finally {
      await a.end();
    }
  };
  const direct = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port: serverPort,
      user: 'postgres',
      password: superPassword,
      database: 'app',
    });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  /** Whether one `SELECT pg_sleep(30)` runs on the server now. */
  const sleeping = () =>
    direct(async (d) => {
      const r = await d.query(
        "SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(30)%'",
      );
      return r.rowCount === 1;
    });
  const target = (): DriverTarget => ({
    host: '127.0.0.1',
    port,
    database: 'app',
    user: 'app',
    password: appPassword,
    admin: { user: 'postgres', password: superPassword, port: serverPort, host: '127.0.0.1' },
  });

  before(async () => {
    tc = await makeCluster(bins, { replicas: 0 });
    await tc.cluster.up();
    const s = readSecrets(tc.cluster.dataDir)!;
    superPassword = s.superuser;
    appPassword = s.app;
    serverPort = tc.cluster.nodes()[0]!.port;
    // The session-pooling database: the drivers' scenarios set up their tables in it directly.
    await direct((d) => d.query('CREATE DATABASE app_session OWNER app'));
    writeFileSync(join(tc.dir, 'users.txt'), `"app" "${appPassword}"\n"postgres" "${superPassword}"\n`);
    [port, httpPort] = [await findFreePortBlock(1), await findFreePortBlock(1)];
    yaml = join(tc.dir, 'proxy.yaml');
    writeFileSync(yaml, config(30, port));
    proxy = await startProxy(['-c', yaml, '--workers', '2', '--http', `127.0.0.1:${httpPort}`]);
    running.push(proxy);
    assert.match(proxy.out(), /ready on 127\.0\.0\.1:\d+ \(2 workers\)/);
  });
  after(async () => {
    for (const r of running) if (r.child.exitCode === null) await r.stop();
    await tc.cleanup();
  });

  const tools = findClientTools();
  for (const database of ['app', 'app_session']) {
    const mode = database === 'app' ? 'transaction' : 'session';
    test(`psql, node-postgres and postgres.js work through two workers (${mode} pooling)`, async () => {
      // Clients land on both workers (round-robin): the drivers' scenarios open many.
      for (const make of [psqlScenario, nodePgScenario, postgresJsScenario])
        await make(tools).run({ ...target(), database });
      const clients = await Promise.all([app({ database }), app({ database })]);
      assert.deepEqual(
        new Set(clients.map(workerOf)),
        new Set([1, 2]),
        'two clients in a row: one per worker',
      );
      const pools = await show('POOLS');
      assert.equal(pools.find((r) => r.database === database)?.pool_mode, mode);
      await Promise.all(clients.map((c) => c.end()));
    });
  }

  /** Waits until each worker in turn answers SHOW CONFIG with this pool size. */
  const everyWorkerHas = async (poolSize: number) => {
    const seen = new Set<string>();
    await until(`both workers to have pool size ${poolSize}`, async () => {
      const a = await admin();
      try {
        const w = (await a.query<{ worker: string; answering: string }>('SHOW WORKERS')).rows;
        const cfg = (await a.query<{ key: string; value: string }>('SHOW CONFIG')).rows;
        if (cfg.find((r) => r.key === 'default_pool_size')?.value === String(poolSize))
          seen.add(w.find((r) => r.answering === 't')!.worker);
      } finally {
        await a.end();
      }
      return seen.size === 2;
    });
  };

  test('SIGHUP and RELOAD on the console reload every worker', async () => {
    writeFileSync(yaml, config(31, port));
    proxy.child.kill('SIGHUP');
    await everyWorkerHas(31);
    writeFileSync(yaml, config(32, port));
    const a = await admin();
    await a.query('RELOAD');
    await a.end();
    // RELOAD answered once every worker had the file: no waiting needed from here.
    const w = await show('WORKERS');
    assert.equal(w.length, 2);
    await everyWorkerHas(32);
  });

  test('a cancel works whether its connection lands on the worker of the client or the other', async () => {
    const c = await app();
    const { processID, secretKey } = c as Keyed;
    const counts = async () => {
      const rows = await show('WORKERS');
      const sum = (k: string) => rows.reduce((n, r) => n + Number(r[k]), 0);
      return {
        local: sum('cancels_local'),
        remote: sum('cancels_remote'),
        forwarded: sum('cancels_forwarded'),
      };
    };
    // Round-robin spreads the cancel connections over both workers; go on until each case
    // happened (counted from here: the drivers' scenarios cancelled queries before).
    const start = await counts();
    for (let i = 0; i < 20; i++) {
      const n = await counts();
      if (n.local > start.local && n.remote > start.remote) break;
      const q = c.query('SELECT pg_sleep(30)');
      await until('the query to run', () => sleeping());
      // Every other time one more connection first: each round opens the same number of
      // connections (the admin's, the cancel's), which would put every cancel on the same worker.
      if (i % 2 === 1) await sendCancel(port, 0, 0);
      await sendCancel(port, processID, secretKey);
      await assert.rejects(q, (e: Error & { code?: string }) => e.code === '57014');
    }
    const n = await counts();
    assert.ok(n.local > start.local, 'a cancel arrived on the worker holding the client');
    assert.ok(
      n.remote > start.remote && n.forwarded - start.forwarded >= n.remote - start.remote,
      'a cancel arrived on the other worker and was sent on',
    );
    // postgres.js's own cancel, and the client still works afterwards.
    const sql = postgres({
      host: '127.0.0.1',
      port,
      user: 'app',
      pass: appPassword,
      database: 'app',
      max: 1,
    });
    try {
      const q = sql`SELECT pg_sleep(30)`.execute();
      await until('the query to run', () => sleeping());
      q.cancel();
      await assert.rejects(q, (e: Error & { code?: string }) => e.code === '57014');
      assert.equal((await sql`SELECT 1 AS one`)[0]!.one, 1);
    } finally {
      await sql.end();
    }
    assert.equal((await c.query('SELECT 2 AS two')).rows[0].two, 2);
    await c.end();
  });

  test('a forged key cancels nothing, on either worker', async () => {
    const c = await app();
    const { processID, secretKey } = c as Keyed;
    const unmatched = async () =>
      (await show('WORKERS')).reduce((n, r) => n + Number(r.cancels_unmatched), 0);
    const before = await unmatched();
    const q = c.query('SELECT pg_sleep(30)');
    await until('the query to run', () => sleeping());
    // Four connections: round-robin puts two on each worker.
    for (let i = 1; i <= 4; i++) await sendCancel(port, processID, (secretKey + i) | 0);
    await until('the owner to turn all four down', async () => (await unmatched()) >= before + 4);
    assert.ok(await sleeping(), 'the query still runs');
    await sendCancel(port, processID, secretKey);
    await assert.rejects(q, (e: Error & { code?: string }) => e.code === '57014');
    await c.end();
  });

  test('SHOW sums over the workers, lists each worker’s rows; PAUSE and RESUME reach both; /metrics labels them', async () => {
    const clients = await Promise.all([app(), app(), app(), app()]);
    assert.deepEqual(new Set(clients.map(workerOf)), new Set([1, 2]));
    const xacts = async () =>
      Number((await show('STATS')).find((r) => r.database === 'app')!.total_xact_count);
    const before = await xacts();
    for (const c of clients) for (let i = 0; i < 5; i++) await c.query('SELECT 1');
    assert.ok((await xacts()) >= before + 20, 'the transactions of both workers are counted');
    const listed = (await show('CLIENTS')).filter((r) => r.user === 'app');
    assert.deepEqual(new Set(listed.map((r) => r.worker)), new Set(['1', '2']));
    const pools = (await show('POOLS')).filter((r) => r.database === 'app');
    assert.equal(pools.length, 1, 'one row for the pool of both workers');
    const workers = await show('WORKERS');
    assert.equal(workers.length, 2);
    await assert.rejects(show('NOTHING'), (e: Error & { code?: string }) => e.code === '42601');
    assert.equal(workers.filter((r) => r.answering === 't').length, 1);
    // PAUSE: a query on each worker waits; both are counted as waiting, and RESUME lets them run.
    const a = await admin();
    await a.query('PAUSE');
    const [one, two] = [clients.find((c) => workerOf(c) === 1)!, clients.find((c) => workerOf(c) === 2)!];
    const held = [one.query<{ x: number }>('SELECT 1 AS x'), two.query<{ x: number }>('SELECT 2 AS x')];
    await until('both to wait', async () => {
      const p = (await a.query<{ database: string; cl_waiting: string }>('SHOW POOLS')).rows;
      return Number(p.find((r) => r.database === 'app')?.cl_waiting) === 2;
    });
    await a.query('RESUME');
    assert.deepEqual(
      (await Promise.all(held)).map((r) => r.rows[0]!.x),
      [1, 2],
    );
    await a.end();
    const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    for (const w of ['1', '2'])
      assert.match(metrics, new RegExp(`^pgscale_proxy_clients\\{[^}]*worker="${w}"[^}]*\\} \\d+$`, 'm'));
    assert.match(metrics, /^pgscale_proxy_workers\{[^}]*\} 2$/m);
    // The cancels of the tests before, by worker: one worker sent some on, the other took them.
    assert.match(metrics, /^pgscale_proxy_cancel_requests_total\{[^}]*result="forwarded"[^}]*\} [1-9]/m);
    assert.match(metrics, /^pgscale_proxy_cancel_requests_total\{[^}]*result="remote"[^}]*\} [1-9]/m);
    const health = (await (await fetch(`http://127.0.0.1:${httpPort}/health`)).json()) as Record<
      string,
      number
    >;
    assert.equal(health.workers, 2);
    assert.ok((health.clients ?? 0) >= 4);
    await Promise.all(clients.map((c) => c.end()));
  });

  test('a worker killed with SIGKILL: its clients lose their connections, the others carry on, it is restarted', async () => {
    const clients = await Promise.all([app(), app(), app(), app()]);
    const pids = new Map((await show('WORKERS')).map((r) => [r.worker, Number(r.pid)]));
    const victim = pids.get('1')!;
    process.kill(victim, 'SIGKILL');
    for (const c of clients) {
      if (workerOf(c) === 1) await assert.rejects(c.query('SELECT 1'));
      else assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1);
    }
    // New clients succeed while worker 1 restarts, and it comes back under a new pid.
    for (let i = 0; i < 3; i++) await (await app()).end();
    await until('worker 1 to serve again', async () => {
      const w = await show('WORKERS');
      return w.length === 2 && w.some((r) => r.worker === '1' && Number(r.pid) !== victim);
    });
    assert.equal(alive(victim), false);
    await until('a client on the new worker 1', async () => {
      const c = await app();
      const on = workerOf(c);
      await c.query('SELECT 1');
      await c.end();
      return on === 1;
    });
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    assert.match(proxy.out(), /proxy worker 1 \(pid \d+\) died \(signal SIGKILL\)/);
  });

  test('SIGTERM stops the primary and every worker; a killed primary takes its workers with it', async () => {
    const pids = (await show('WORKERS')).map((r) => Number(r.pid));
    assert.equal(pids.length, 2);
    assert.equal(await proxy.stop(), 0);
    await until('no worker left', () => Promise.resolve(pids.every((p) => !alive(p))));
    // The same with SIGKILL of the primary (node:cluster workers exit when their channel closes),
    // for a proxy run from a pgbouncer.ini: the file has no workers setting, --workers does it.
    const other = await findFreePortBlock(1);
    const ini = join(tc.dir, 'pgbouncer.ini');
    writeFileSync(
      ini,
      `[databases]\napp = host=127.0.0.1 port=${serverPort} dbname=app\n\n[pgbouncer]\n` +
        `listen_addr = 127.0.0.1\nlisten_port = ${other}\nauth_type = scram-sha-256\n` +
        `auth_file = ${join(tc.dir, 'users.txt')}\nadmin_users = postgres\n`,
    );
    const second = await startProxy(['--pgbouncer-ini', ini, '--workers', '2']);
    running.push(second);
    port = other;
    const workers = (await show('WORKERS')).map((r) => Number(r.pid));
    assert.equal(workers.length, 2);
    second.child.kill('SIGKILL');
    await until('the workers to exit', () => Promise.resolve(workers.every((p) => !alive(p))));
  });
});
