/**
 * `pgscale proxy --cluster` with `proxy.workers: 2` (issue #18), on one machine: a real etcd on
 * 127.0.0.1, a `pgscale agent` running the cluster's node, proxy A (two workers, each registered
 * as a proxy of its own) and proxy B (one process, its own port). A query's cancel reaches its
 * backend whichever worker of A the cancel lands on, and through the other proxy both ways
 * (node-postgres' keys, postgres.js's and psql's own cancels); SHOW and /metrics cover both
 * workers; a worker killed with SIGKILL is started again, registered anew, and its old
 * registration goes with its lease; `pgscale status` lists the proxies and A's workers.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import postgres from 'postgres';
import { findFreePortBlock } from '../src/cluster/ports.js';
import { EtcdProcess, etcdSkipReason } from './etcd-harness.js';
import { binarySets, cli, repoRoot, tempDir, until } from './harness.js';
import { sendCancel } from './raw-client.js';
import { findClientTools } from './drivers/util.js';

const bins = binarySets()[0]!;
const TTL_S = 3;
const TEST_MS = 180_000;
const skip = etcdSkipReason();

type Keyed = pg.Client & { processID: number; secretKey: number };
/** The proxy number in a client's process id (cancel-key.ts, bits 30..21). */
const numberOf = (c: pg.Client) => ((c as Keyed).processID >>> 21) & 1023;

describe('pgscale proxy --cluster with two workers', { skip, timeout: 600_000 }, () => {
  let etcd: EtcdProcess;
  let dir: string;
  let dataDir: string;
  let nodePort: number;
  let portA: number;
  let portB: number;
  let httpA: number;
  let superPassword: string;
  let appPassword: string;
  const children = new Map<string, ChildProcess>();
  const logs: string[] = [];

  const yaml = (proxyPort: number, httpPort: number) => `cluster:
  name: cw
  id: cw-${process.pid}
  data_dir: ${dataDir}
postgres:
  client_networks: [127.0.0.0/8]
replication:
  networks: [127.0.0.0/8]
ha:
  store: etcd
  etcd:
    endpoints: [${etcd.url}]
    # Other tests share the machine's two cores: a slow answer must not stop a proxy's start.
    timeout_ms: 5000
  ttl: ${TTL_S}
  watchdog:
    mode: 'off'
http:
  port: ${httpPort}
proxy:
  enabled: false
  listen: 127.0.0.1
  port: ${proxyPort}
  workers: 2
  admin_users: [postgres]
groups:
  - nodes:
      - { name: n1, host: 127.0.0.1, port: ${nodePort} }
      - { name: n2, host: 127.0.0.2, port: ${nodePort + 1} }
`;

  const run = (name: string, args: string[]): ChildProcess => {
    const log = join(dir, `${name}.log`);
    logs.push(log);
    const fd = openSync(log, 'a');
    const child = spawn(process.execPath, [join(repoRoot, 'bin/pgscale.js'), ...args], {
      env: { ...process.env, PGSCALE_PG_BIN: bins.dir },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    children.set(name, child);
    return child;
  };

  const client = async (port: number, extra: Partial<pg.ClientConfig> = {}): Promise<pg.Client> => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'app',
      password: appPassword,
      database: 'app',
      connectionTimeoutMillis: 10_000,
      ...extra,
    });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };
  const show = async (port: number, what: string) => {
    const a = await client(port, { user: 'postgres', password: superPassword, database: 'pgscale' });
    try {
      return (await a.query<Record<string, string>>(`SHOW ${what}`)).rows;
    } finally {
      await a.end();
    }
  };
  const sleeping = async () => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port: nodePort,
      user: 'postgres',
      password: superPassword,
      database: 'app',
    });
    await c.connect();
    try {
      const r = await c.query(
        "SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()",
      );
      return r.rowCount === 1;
    } finally {
      await c.end();
    }
  };
  /** Runs pg_sleep on `c`, cancels it through `port` with c's key; resolves once it was cancelled. */
  const cancelVia = async (c: pg.Client, port: number) => {
    const q = c.query('SELECT pg_sleep(30)');
    await until('the query to run', () => sleeping());
    await sendCancel(port, (c as Keyed).processID, (c as Keyed).secretKey);
    await assert.rejects(q, (e: Error & { code?: string }) => e.code === '57014');
  };
  const status = async () => {
    const r = await cli(['status', '-c', join(dir, 'a.yaml'), '--json'], { PGSCALE_PG_BIN: bins.dir });
    return JSON.parse(r.stdout) as {
      proxies: { proxy: number; pid: number; port: number; worker: number | null; primary: number | null }[];
    };
  };

  before(async () => {
    etcd = await EtcdProcess.start();
    dir = tempDir('pgscale-cw-');
    dataDir = join(dir, 'data');
    const base = await findFreePortBlock(8);
    [nodePort, portA, portB, httpA] = [base, base + 1, base + 2, base + 3];
    writeFileSync(join(dir, 'a.yaml'), yaml(portA, base + 4));
    writeFileSync(join(dir, 'b.yaml'), yaml(portB, base + 4));
    // Two "hosts" on the loopback (127.0.0.1 and 127.0.0.2), an agent each with its own data
    // directory: a cluster over several hosts as far as pgscale can tell (status reads etcd).
    run('agent1', ['agent', '-c', join(dir, 'a.yaml'), '--host', '127.0.0.1']);
    const secrets = join(dataDir, 'secrets.json');
    await until('the agent to create the cluster', () => Promise.resolve(existsSync(secrets)), 120_000);
    const s = await until(
      'secrets.json to be complete',
      () => Promise.resolve(JSON.parse(readFileSync(secrets, 'utf8')) as { superuser: string; app: string }),
      10_000,
    );
    superPassword = s.superuser;
    appPassword = s.app;
    mkdirSync(join(dir, 'data2'), { mode: 0o755 });
    copyFileSync(secrets, join(dir, 'data2', 'secrets.json'));
    run('agent2', [
      'agent',
      '-c',
      join(dir, 'a.yaml'),
      '--host',
      '127.0.0.2',
      '--data-dir',
      join(dir, 'data2'),
    ]);
    run('proxyA', ['proxy', '-c', join(dir, 'a.yaml'), '--cluster', '--http', `127.0.0.1:${httpA}`]);
    run('proxyB', ['proxy', '-c', join(dir, 'b.yaml'), '--cluster', '--workers', '1']);
    for (const port of [portA, portB])
      await until(
        `the proxy on ${port}`,
        async () => {
          const c = await client(port);
          await c.end();
          return true;
        },
        120_000,
      );
    // Every worker of A listens (the port answers as soon as one does).
    await until('both workers of A', async () => (await show(portA, 'WORKERS')).length === 2, 60_000);
  });

  after(async () => {
    for (const c of children.values()) c.kill('SIGTERM');
    await Promise.all(
      [...children.values()].map((c) =>
        c.exitCode !== null || c.signalCode !== null
          ? Promise.resolve()
          : Promise.race([new Promise((r) => c.once('exit', r)), new Promise((r) => setTimeout(r, 60_000))]),
      ),
    );
    for (const c of children.values()) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    if (process.env.PGSCALE_KEEP_LOGS)
      for (const l of logs) if (existsSync(l)) console.log(readFileSync(l, 'utf8'));
    await etcd?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test(
    'each worker is a proxy of its own; a cancel reaches the query from either worker and from the other proxy',
    { timeout: TEST_MS },
    async () => {
      // Round-robin: successive connections to A land on its two workers, each with its own number.
      const [c1, c2] = [await client(portA), await client(portA)];
      const b = await client(portB);
      const numbers = new Set([numberOf(c1), numberOf(c2), numberOf(b)]);
      assert.equal(numbers.size, 3, 'two workers of A and proxy B: three proxy numbers');
      const workers = await show(portA, 'WORKERS');
      assert.deepEqual(
        new Set(workers.map((r) => Number(r.worker))),
        new Set([numberOf(c1), numberOf(c2)]),
        'SHOW WORKERS on A lists both workers by their proxy numbers',
      );
      const counts = async () => {
        const rows = await show(portA, 'WORKERS');
        const sum = (k: string) => rows.reduce((n, r) => n + Number(r[k]), 0);
        return { local: sum('cancels_local'), remote: sum('cancels_remote') };
      };
      const start = await counts();
      // Cancels through fresh connections to A, landing on either worker (an extra connection every
      // other round shifts the round-robin), until both cases happened.
      for (let i = 0; i < 12; i++) {
        const n = await counts();
        if (n.local > start.local && n.remote > start.remote) break;
        if (i % 2 === 1) await sendCancel(portA, 0, 0);
        await cancelVia(c1, portA);
      }
      const n = await counts();
      assert.ok(n.local > start.local, 'a cancel arrived on the worker holding the client');
      assert.ok(n.remote > start.remote, 'a cancel arrived on the other worker and was sent on to it');
      // Through the other proxy, both ways: B forwards to A's address (any worker, then the
      // primary), A's workers forward to B.
      await cancelVia(c1, portB);
      await cancelVia(c2, portB);
      await cancelVia(b, portA);
      await cancelVia(b, portA);
      // postgres.js's own cancel through A, and psql's (SIGINT) through A.
      const sql = postgres({
        host: '127.0.0.1',
        port: portA,
        user: 'app',
        pass: appPassword,
        database: 'app',
        max: 1,
      });
      try {
        for (let i = 0; i < 2; i++) {
          const q = sql`SELECT pg_sleep(30)`.execute();
          await until('the query to run', () => sleeping());
          q.cancel();
          await assert.rejects(q, (e: Error & { code?: string }) => e.code === '57014');
        }
        assert.equal((await sql`SELECT 1 AS one`)[0]!.one, 1);
      } finally {
        await sql.end();
      }
      const psql = findClientTools().psql;
      if (psql) {
        const p = spawn(
          psql,
          ['-h', '127.0.0.1', '-p', String(portA), '-U', 'app', '-d', 'app', '-c', 'SELECT pg_sleep(30)'],
          {
            env: { ...process.env, PGPASSWORD: appPassword },
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let err = '';
        p.stderr.on('data', (d: Buffer) => (err += d.toString()));
        const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
        await until('psql’s query to run', () => sleeping());
        p.kill('SIGINT');
        assert.notEqual(await exited, 0);
        assert.match(err, /canceling statement due to user request/);
      }
      for (const c of [c1, c2, b]) assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1);
      await Promise.all([c1, c2, b].map((c) => c.end()));
    },
  );

  test(
    'SHOW, /metrics and status cover both workers; RELOAD reaches them',
    { timeout: TEST_MS },
    async () => {
      const cs = await Promise.all([client(portA), client(portA), client(portA), client(portA)]);
      const listed = (await show(portA, 'CLIENTS')).filter((r) => r.user === 'app');
      assert.equal(new Set(listed.map((r) => r.worker)).size, 2, 'SHOW CLIENTS lists both workers’ clients');
      const metrics = await (await fetch(`http://127.0.0.1:${httpA}/metrics`)).text();
      for (const w of ['1', '2'])
        assert.match(metrics, new RegExp(`^pgscale_proxy_clients\\{[^}]*worker="${w}"[^}]*\\} \\d+$`, 'm'));
      assert.match(metrics, /^pgscale_proxy_workers\{[^}]*\} 2$/m);
      const a = await client(portA, { user: 'postgres', password: superPassword, database: 'pgscale' });
      await a.query('RELOAD');
      await a.end();
      const s = await status();
      const ofA = s.proxies.filter((p) => p.port === portA);
      assert.equal(ofA.length, 2, 'A registered once per worker');
      assert.equal(new Set(ofA.map((p) => p.primary)).size, 1, 'both under one primary');
      assert.deepEqual(ofA.map((p) => p.worker).sort(), [1, 2]);
      assert.deepEqual(
        s.proxies.filter((p) => p.port === portB).map((p) => p.worker),
        [null],
      );
      const text = await cli(['status', '-c', join(dir, 'a.yaml')], { PGSCALE_PG_BIN: bins.dir });
      assert.match(text.stdout, new RegExp(`proxies: .*127\\.0\\.0\\.1:${portA} \\(2 workers of pid \\d+`));
      await Promise.all(cs.map((c) => c.end()));
    },
  );

  test(
    'a worker killed with SIGKILL is started again and registered anew; its old registration ends with its lease',
    { timeout: TEST_MS },
    async () => {
      const before = await show(portA, 'WORKERS');
      const victim = before[0]!;
      process.kill(Number(victim.pid), 'SIGKILL');
      await until(
        'the worker to serve again',
        async () => {
          const w = await show(portA, 'WORKERS');
          return w.length === 2 && !w.some((r) => r.pid === victim.pid);
        },
        60_000,
      );
      await until(
        'the dead worker’s registration to end',
        async () => !(await status()).proxies.some((p) => p.pid === Number(victim.pid)),
        (TTL_S + 10) * 1000,
      );
      const now = await show(portA, 'WORKERS');
      const fresh = now.find((r) => !before.some((b) => b.pid === r.pid))!;
      // Registered on its own (a free number: the old one once its lease ended, or another).
      const registered = (await status()).proxies.find((p) => p.pid === Number(fresh.pid));
      assert.equal(registered?.proxy, Number(fresh.worker));
      assert.equal(
        registered?.primary,
        (await status()).proxies.find((p) => p.port === portA && p.pid !== registered?.pid)?.primary,
      );
      // A client of each worker (round-robin over two connections) is cancelled through either proxy.
      const [c1, c2] = [await client(portA), await client(portA)];
      assert.deepEqual(new Set([numberOf(c1), numberOf(c2)]), new Set(now.map((r) => Number(r.worker))));
      for (const c of [c1, c2]) {
        await cancelVia(c, portB);
        await cancelVia(c, portA);
      }
      await Promise.all([c1, c2].map((c) => c.end()));
    },
  );
});
