/**
 * The proxy inside `pgscale up`: the endpoint `pgscale url` prints goes through it to the
 * primary, the superuser (listed in admin_users by `pgscale init`) administers it, its gauges
 * reach the controller's /metrics, and a proxy port in use stops `up` before anything starts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { existsSync } from 'node:fs';
import pg from 'pg';
import { binarySets, cli, makeCluster } from './harness.js';
import type { TestCluster } from './harness.js';
import { readSecrets } from '../src/cluster/secrets.js';

const bins = binarySets()[0]!;

describe('the proxy inside pgscale up', () => {
  let tc: TestCluster;
  before(async () => {
    tc = await makeCluster(bins, { replicas: 1 });
  });
  after(async () => {
    await cli(['down', '-c', tc.file], tc.env);
    await tc.cleanup();
  });

  test('a proxy port in use stops up --detach before anything is created', async () => {
    const port = tc.cluster.config.proxy.port;
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(port, '127.0.0.1', r));
    try {
      const r = await cli(['up', '-c', tc.file, '--detach'], tc.env);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        new RegExp(`port ${port} of the proxy \\(proxy.port, on 127.0.0.1\\) is already in use`),
      );
      assert.equal(existsSync(tc.cluster.dataDir), false);
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });

  test('pgscale url goes through the proxy to the primary', async () => {
    const up = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(up.code, 0, up.stderr + up.stdout);
    const u = await cli(['url', '-c', tc.file], tc.env);
    assert.equal(u.code, 0, u.stderr);
    const url = new URL(u.stdout.trim());
    assert.equal(Number(url.port), tc.cluster.config.proxy.port);
    const c = new pg.Client({ connectionString: u.stdout.trim() });
    await c.connect();
    await c.query('CREATE TABLE t (id int)');
    await c.query('INSERT INTO t VALUES (1)');
    const r = await c.query<{ port: number; rec: boolean }>(
      "/* pgscale:primary */ SELECT current_setting('port')::int AS port, pg_is_in_recovery() AS rec",
    );
    assert.equal(r.rows[0]!.port, tc.cluster.nodes()[0]!.port);
    assert.equal(r.rows[0]!.rec, false);
    await c.end();
  });

  test('reads through the proxy go to the standby, writes to the primary', async () => {
    const s = readSecrets(tc.cluster.dataDir)!;
    const { until } = await import('./harness.js');
    const c = new pg.Client({
      host: '127.0.0.1',
      port: tc.cluster.config.proxy.port,
      user: 'app',
      password: s.app,
      database: 'app',
    });
    await c.connect();
    await until(
      'a read served by the standby',
      async () => (await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r,
      10_000,
    );
    const w = await c.query<{ r: boolean }>('INSERT INTO t VALUES (2) RETURNING pg_is_in_recovery() AS r');
    assert.equal(w.rows[0]!.r, false);
    // Read-your-writes: the row just written is visible to this client's next read.
    assert.equal((await c.query<{ n: string }>('SELECT count(*) AS n FROM t WHERE id = 2')).rows[0]!.n, '1');
    await c.end();
  });

  test(
    'psql without a node runs on the primary (superusers do not pass the proxy by default)',
    { skip: bins.psql ? false : 'no psql' },
    async () => {
      const r = await cli(['psql', '-c', tc.file, '--', '-At', '-c', 'SELECT inet_server_port()'], tc.env);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(Number(r.stdout.trim()), tc.cluster.nodes()[0]!.port, r.stdout);
    },
  );

  test('the superuser administers the proxy; its gauges are on /metrics', async () => {
    const s = readSecrets(tc.cluster.dataDir)!;
    const admin = new pg.Client({
      host: '127.0.0.1',
      port: tc.cluster.config.proxy.port,
      user: 'postgres',
      password: s.superuser,
      database: 'pgscale',
    });
    await admin.connect();
    const pools = await admin.query<{ database: string }>('SHOW POOLS');
    assert.ok(pools.rows.some((p) => p.database === 'app'));
    await admin.end();
    const m = await fetch(`http://127.0.0.1:${tc.cluster.config.http.port}/metrics`);
    const text = await m.text();
    assert.match(text, /pgscale_proxy_clients\{state="idle"\}/);
    assert.match(text, /pgscale_proxy_server_connections\{database="app",user="app",state="idle"\} \d+/);
    assert.match(text, /pgscale_proxy_node_in_read_set\{database="app",user="app",node="s0n1"\} 1/);
    assert.match(text, /pgscale_proxy_node_reads_total\{database="app",user="app",node="s0n1"\} [1-9]/);
    assert.ok(!text.includes(s.app) && !text.includes(s.superuser));
    const services = (await (
      await fetch(`http://127.0.0.1:${tc.cluster.config.http.port}/services`)
    ).json()) as {
      name: string;
      state: string;
    }[];
    assert.ok(JSON.stringify(services).includes('"proxy"'));
  });

  test('SIGHUP to the controller reloads the proxy settings without dropping clients', async () => {
    const s = readSecrets(tc.cluster.dataDir)!;
    const port = tc.cluster.config.proxy.port;
    const app = new pg.Client({ host: '127.0.0.1', port, user: 'app', password: s.app, database: 'app' });
    await app.connect();
    const { readFileSync, writeFileSync } = await import('node:fs');
    writeFileSync(
      tc.file,
      readFileSync(tc.file, 'utf8').replace(/(\nproxy:\n)/, '$1  default_pool_size: 9\n'),
    );
    const info = JSON.parse(readFileSync(`${tc.cluster.dataDir}/controller.json`, 'utf8')) as { pid: number };
    process.kill(info.pid, 'SIGHUP');
    const admin = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'postgres',
      password: s.superuser,
      database: 'pgscale',
    });
    await admin.connect();
    const { until } = await import('./harness.js');
    await until('the new pool size', async () => {
      const cfg = await admin.query<{ key: string; value: string }>('SHOW CONFIG');
      return cfg.rows.find((x) => x.key === 'default_pool_size')?.value === '9';
    });
    await admin.query('RELOAD');
    await admin.end();
    assert.equal((await app.query('SELECT 1 AS one')).rows[0].one, 1);
    await app.end();
  });
});
