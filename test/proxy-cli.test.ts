/**
 * `pgscale proxy` as a user runs it: from an existing pgbouncer.ini (SCRAM secrets in a
 * PgBouncer userlist, used to log in to the server without any plain password), from a
 * pgscale.yaml with auth_query, reloaded by SIGHUP and by RELOAD without dropping clients,
 * stopped by SIGTERM.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { binarySets, makeCluster, until } from './harness.js';
import { startProxy } from './standalone-proxy.js';
import type { Running } from './standalone-proxy.js';
import type { TestCluster } from './harness.js';
import { readSecrets } from '../src/cluster/secrets.js';
import { findFreePortBlock } from '../src/cluster/ports.js';

const bins = binarySets()[0]!;

describe('pgscale proxy (standalone)', () => {
  let tc: TestCluster;
  let serverPort: number;
  let superPassword: string;
  let appPassword: string;
  let appVerifier: string;
  const running: Running[] = [];

  before(async () => {
    tc = await makeCluster(bins, { replicas: 0 });
    await tc.cluster.up();
    const s = readSecrets(tc.cluster.dataDir)!;
    superPassword = s.superuser;
    appPassword = s.app;
    serverPort = tc.cluster.nodes()[0]!.port;
    const c = new pg.Client({
      host: '127.0.0.1',
      port: serverPort,
      user: 'postgres',
      password: s.superuser,
      database: 'app',
    });
    await c.connect();
    appVerifier = (
      await c.query<{ p: string }>("SELECT rolpassword AS p FROM pg_authid WHERE rolname = 'app'")
    ).rows[0]!.p;
    await c.query("CREATE ROLE bob LOGIN PASSWORD 'bob-secret-1'");
    await c.query('GRANT CONNECT ON DATABASE app TO bob');
    await c.end();
  });
  after(async () => {
    for (const r of running) if (r.child.exitCode === null) await r.stop();
    await tc.cleanup();
  });

  test('an existing pgbouncer.ini works as it is; SIGHUP reloads without dropping clients', async () => {
    const port = await findFreePortBlock(1);
    writeFileSync(join(tc.dir, 'userlist.txt'), `"app" "${appVerifier}"\n"postgres" "${superPassword}"\n`);
    const ini = (poolSize: number) =>
      `;; the classic guide's config\n[databases]\napp = host=127.0.0.1 port=${serverPort} dbname=app\n\n` +
      `[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = ${port}\nauth_type = scram-sha-256\n` +
      `auth_file = userlist.txt\npool_mode = transaction\nmax_client_conn = 100\n` +
      `default_pool_size = ${poolSize}\nadmin_users = postgres\nlogfile = /var/log/pgbouncer/pgbouncer.log\n` +
      `ignore_startup_parameters = extra_float_digits\n`;
    const file = join(tc.dir, 'pgbouncer.ini');
    writeFileSync(file, ini(5));
    const r = await startProxy(['--pgbouncer-ini', file]);
    running.push(r);
    assert.match(r.out(), /warning: .*logfile/);
    // The userlist holds only the server's SCRAM verifier: the proxy logs in to the server with
    // the ClientKey recovered from the client's own proof.
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'app', password: appPassword, database: 'app' });
    await c.connect();
    assert.equal((await c.query('SELECT current_user AS u')).rows[0].u, 'app');
    writeFileSync(file, ini(7));
    r.child.kill('SIGHUP');
    await until('the reload', () => Promise.resolve(r.out().includes('configuration reloaded')));
    assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, 'the client survived the reload');
    const admin = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'postgres',
      password: superPassword,
      database: 'pgbouncer',
    });
    await admin.connect();
    const cfg = await admin.query<{ key: string; value: string }>('SHOW CONFIG');
    assert.equal(cfg.rows.find((x) => x.key === 'default_pool_size')?.value, '7');
    // A setting that needs a restart is reported, and nothing breaks.
    writeFileSync(file, ini(7).replace(`listen_port = ${port}`, `listen_port = ${port + 1}`));
    const notices: string[] = [];
    admin.on('notice', (n) => notices.push(n.message ?? ''));
    await admin.query('RELOAD');
    await until('the notice', () => Promise.resolve(notices.length > 0));
    assert.match(notices.join(), /proxy.port changed: takes effect after a restart/);
    await admin.end();
    assert.equal((await c.query('SELECT 2 AS two')).rows[0].two, 2);
    await c.end();
    assert.equal(await r.stop(), 0);
    // It logs as the controller does: pino JSON lines on stderr, nothing else, no secret.
    assert.equal(r.stdout(), '');
    const lines = r.stderr().trim().split('\n');
    assert.ok(lines.length >= 4, r.stderr());
    for (const l of lines) {
      const o = JSON.parse(l) as { level: number; time: string; msg: string; component: string };
      assert.equal(typeof o.level, 'number', l);
      assert.match(o.time, /^\d{4}-\d\d-\d\dT/, l);
      assert.equal(o.component, 'proxy', l);
      assert.equal(typeof o.msg, 'string', l);
    }
    assert.ok(
      lines.some((l) => /"level":40.*warning: .*logfile/.test(l)),
      'the warning is a WARN line',
    );
    assert.ok(!r.stderr().includes(superPassword) && !r.stderr().includes(appVerifier));
  });

  test('auth_query finds users the proxy was never told about', async () => {
    const port = await findFreePortBlock(1);
    writeFileSync(join(tc.dir, 'auth-users.txt'), `"postgres" "${superPassword}"\n`);
    const yaml = join(tc.dir, 'proxy.yaml');
    writeFileSync(
      yaml,
      [
        'proxy:',
        '  listen: 127.0.0.1',
        `  port: ${port}`,
        `  auth_file: ${join(tc.dir, 'auth-users.txt')}`,
        '  auth_user: postgres',
        '  auth_query: SELECT rolname, rolpassword FROM pg_authid WHERE rolname = $1 AND rolcanlogin',
        '  databases:',
        `    app: { host: 127.0.0.1, port: ${serverPort} }`,
        '',
      ].join('\n'),
    );
    const r = await startProxy(['-c', yaml]);
    running.push(r);
    const bob = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'bob',
      password: 'bob-secret-1',
      database: 'app',
    });
    await bob.connect();
    assert.equal((await bob.query('SELECT current_user AS u')).rows[0].u, 'bob');
    await bob.end();
    const wrong = new pg.Client({ host: '127.0.0.1', port, user: 'bob', password: 'nope', database: 'app' });
    wrong.on('error', () => undefined);
    await assert.rejects(wrong.connect(), (e: Error & { code?: string }) => e.code === '28P01');
    assert.equal(await r.stop(), 0);
  });

  test('--http serves the gauges on /metrics and a liveness answer on /health', async () => {
    const [port, httpPort] = [await findFreePortBlock(1), await findFreePortBlock(1)];
    writeFileSync(join(tc.dir, 'userlist-m.txt'), `"app" "${appPassword}"\n`);
    const file = join(tc.dir, 'pgbouncer-m.ini');
    writeFileSync(
      file,
      `[databases]\napp = host=127.0.0.1 port=${serverPort} dbname=app\n\n` +
        `[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = ${port}\nauth_type = scram-sha-256\n` +
        `auth_file = userlist-m.txt\npool_mode = transaction\ndefault_pool_size = 2\n`,
    );
    const r = await startProxy(['--pgbouncer-ini', file, '--http', `127.0.0.1:${httpPort}`]);
    running.push(r);
    assert.match(r.out(), new RegExp(`metrics on http://127.0.0.1:${httpPort}/metrics`));
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'app', password: appPassword, database: 'app' });
    await c.connect();
    await c.query('SELECT 1');
    const base = `http://127.0.0.1:${httpPort}`;
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(
      metrics,
      /^pgscale_proxy_clients\{[^}]*state="idle"[^}]*\} 1$/m,
      'the one idle client is counted',
    );
    assert.match(metrics, /^pgscale_proxy_transactions_total\{[^}]*database="app"[^}]*\} [1-9]/m);
    assert.doesNotMatch(metrics, new RegExp(appPassword), 'no secret in the metrics');
    const health = await fetch(`${base}/health`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { clients: number }).clients, 1);
    assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
    assert.equal((await fetch(`${base}/nothing`)).status, 404);
    await c.end();
    assert.equal(await r.stop(), 0);
  });

  test('bad invocations are named', async () => {
    const { cli } = await import('./harness.js');
    const a = await cli(['proxy', '--pgbouncer-ini', join(tc.dir, 'missing.ini')]);
    assert.equal(a.code, 1);
    assert.match(a.stderr, /missing\.ini/);
    const yaml = join(tc.dir, 'noproxy.yaml');
    writeFileSync(yaml, `groups:\n  - nodes:\n      - { name: a, port: ${serverPort} }\n`);
    const b = await cli(['proxy', '-c', yaml]);
    assert.equal(b.code, 1);
    assert.match(b.stderr, /proxy\.databases is empty/);
    const c = await cli(['proxy', '-c', yaml, '--http', 'localhost:99999']);
    assert.equal(c.code, 2);
    assert.match(
      c.stderr,
      /--http: expected HOST:PORT or PORT with a port from 1 to 65535, got "localhost:99999"/,
    );
    const d = await cli(['proxy', '-c', yaml, '--log-format', 'yaml']);
    assert.equal(d.code, 2);
    assert.match(d.stderr, /--log-format: expected json or text, got "yaml"/);
  });
});
