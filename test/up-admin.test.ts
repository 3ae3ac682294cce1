/**
 * What the proxy inside `pgscale up` lets through, and how the controller keeps it: SHUTDOWN on
 * the admin console is refused and logged (the controller owns the proxy); only the application
 * database is served unless proxy.exposed_databases adds more; superuser logins through the
 * proxy are refused unless proxy.allow_superuser; the console is for admin_users/stats_users
 * only; a listener that closes is noticed, logged, reported (/services, /health, status) and
 * reopened.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import pg from 'pg';
import { binarySets, cli, makeCluster, until, withoutHa } from './harness.js';
import type { TestCluster } from './harness.js';
import { readSecrets } from '../src/cluster/secrets.js';
import { loadConfig } from '../src/config/load.js';
import { Cluster } from '../src/cluster/cluster.js';
import { Controller } from '../src/controller/controller.js';
import { buildServices } from '../src/cli/services.js';
import { createLogger } from '../src/obs/logger.js';
import type { ProxyService } from '../src/cli/proxy-service.js';

const bins = binarySets()[0]!;

type PgError = Error & { code?: string };

describe('the proxy inside pgscale up: what it exposes and who owns it', () => {
  let tc: TestCluster;
  let port: number;
  let secrets: { app: string; superuser: string };
  const connect = async (user: string, password: string, database: string) => {
    const c = new pg.Client({ host: '127.0.0.1', port, user, password, database });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };
  const loginError = async (user: string, password: string, database: string) => {
    try {
      const c = await connect(user, password, database);
      await c.end();
      return null;
    } catch (e) {
      return e as PgError;
    }
  };

  before(async () => {
    tc = await makeCluster(bins, { replicas: 0, extra: withoutHa });
    port = tc.cluster.config.proxy.port;
    const up = await cli(['up', '-c', tc.file, '--detach'], tc.env);
    assert.equal(up.code, 0, up.stderr + up.stdout);
    secrets = readSecrets(tc.cluster.dataDir)!;
  });
  after(async () => {
    await cli(['down', '-c', tc.file], tc.env);
    await tc.cleanup();
  });

  test('SHUTDOWN on the admin console is refused with 55000 and logged; the proxy keeps serving', async () => {
    const admin = await connect('postgres', secrets.superuser, 'pgscale');
    await assert.rejects(admin.query('SHUTDOWN'), (e: PgError) => {
      assert.equal(e.code, '55000');
      assert.match(e.message, /belongs to the pgscale controller/);
      return true;
    });
    // The console itself goes on, and so does the proxy.
    assert.ok((await admin.query('SHOW VERSION')).rows.length === 1);
    await admin.end();
    const app = await connect('app', secrets.app, 'app');
    assert.equal((await app.query<{ n: number }>('SELECT 1 AS n')).rows[0]!.n, 1);
    await app.end();
    const log = join(tc.cluster.dataDir, 'logs', 'controller.log');
    await until('the refusal in the controller log', () =>
      Promise.resolve(readFileSync(log, 'utf8').includes('"event":"admin_shutdown_refused"')),
    );
    const services = (await (
      await fetch(`http://127.0.0.1:${tc.cluster.config.http.port}/services`)
    ).json()) as {
      services: { name: string; state: string; status: { listening: boolean } }[];
    };
    const proxy = services.services.find((s) => s.name === 'proxy')!;
    assert.equal(proxy.state, 'running');
    assert.equal(proxy.status.listening, true);
  });

  test('only the application database is served: postgres, template1 and unknown names get 3D000 and no pool', async () => {
    const admin = await connect('postgres', secrets.superuser, 'pgscale');
    const pools = async () => (await admin.query('SHOW POOLS')).rows.length;
    const before = await pools();
    for (const db of ['postgres', 'template1', 'nosuch']) {
      const e = await loginError('app', secrets.app, db);
      assert.equal(e?.code, '3D000', `${db}: ${e?.message}`);
    }
    for (let i = 0; i < 100; i++) {
      assert.equal((await loginError('app', secrets.app, `missing_${i}`))?.code, '3D000');
    }
    assert.equal(await pools(), before);
    // A wrong password still fails as a wrong password, whatever the database.
    assert.equal((await loginError('app', 'wrong', 'postgres'))?.code, '28P01');
    await admin.end();
  });

  test('the superuser cannot log in through the proxy by default, nor is an admin unless listed', async () => {
    const e = await loginError('postgres', secrets.superuser, 'app');
    assert.equal(e?.code, '28000');
    assert.match(e.message, /allow_superuser/);
    // The app role is neither an admin nor a stats user: not on the console.
    assert.equal((await loginError('app', secrets.app, 'pgscale'))?.code, '42501');
  });

  test('exposed_databases and allow_superuser open more, on RELOAD; an unlisted superuser is no admin', async () => {
    const text = readFileSync(tc.file, 'utf8');
    writeFileSync(
      tc.file,
      text
        .replace('  exposed_databases: []', '  exposed_databases: [postgres]')
        .replace('  allow_superuser: false', '  allow_superuser: true'),
    );
    const admin = await connect('postgres', secrets.superuser, 'pgscale');
    await admin.query('RELOAD');
    await admin.end();
    const su = await connect('postgres', secrets.superuser, 'postgres');
    assert.equal((await su.query<{ d: string }>('SELECT current_database() AS d')).rows[0]!.d, 'postgres');
    await su.end();
    assert.equal((await loginError('app', secrets.app, 'template1'))?.code, '3D000');
    // Without admin_users listing it, the superuser is not an admin of the console.
    writeFileSync(
      tc.file,
      readFileSync(tc.file, 'utf8').replace('  admin_users: [postgres]', '  admin_users: []'),
    );
    const admin2 = await connect('postgres', secrets.superuser, 'pgscale');
    await admin2.query('RELOAD');
    await admin2.end();
    assert.equal((await loginError('postgres', secrets.superuser, 'pgscale'))?.code, '42501');
    writeFileSync(tc.file, text);
    const info = JSON.parse(readFileSync(join(tc.cluster.dataDir, 'controller.json'), 'utf8')) as {
      pid: number;
    };
    process.kill(info.pid, 'SIGHUP');
    await until(
      'the superuser refused again after SIGHUP',
      async () => (await loginError('postgres', secrets.superuser, 'postgres'))?.code === '3D000',
    );
  });

  test('a proxy listener that closes is logged, shown in /services, /health and status, and reopened', async () => {
    assert.equal((await cli(['down', '-c', tc.file], tc.env)).code, 0);
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        cb();
      },
    });
    const loaded = loadConfig(tc.file);
    const cluster = new Cluster(loaded, undefined, bins);
    const logger = createLogger({ destination: sink, level: 'info' });
    const controller = new Controller(loaded, cluster, logger);
    for (const s of buildServices({ loaded, cluster, logger, registry: controller.registry })) {
      controller.addService(s);
    }
    const httpPort = loaded.config.http.port;
    const get = async (path: string) => {
      const r = await fetch(`http://127.0.0.1:${httpPort}${path}`);
      return { code: r.status, body: (await r.json()) as Record<string, unknown> };
    };
    let squatter: Server | null = null;
    try {
      await controller.start();
      const service = controller.services().find((s) => s.name === 'proxy') as ProxyService;
      const proxy = (service as unknown as { proxy: { server: Server } }).proxy;
      // Some other program takes the port the moment the listener lets go of it.
      const taken = new Promise<void>((resolve) => {
        proxy.server.once('close', () => {
          squatter = createServer((s) => s.destroy());
          squatter.listen(port, '127.0.0.1', () => resolve());
        });
      });
      proxy.server.close();
      await taken;
      await until('the closed listener in the log', () =>
        Promise.resolve(lines.some((l) => l.includes('"event":"proxy_listener_closed"'))),
      );
      await until(
        'a failed restart in the log',
        () => Promise.resolve(lines.some((l) => l.includes('"event":"proxy_restart_failed"'))),
        15_000,
      );
      const health = await get('/health');
      assert.equal(health.code, 503);
      assert.equal(health.body.status, 'degraded');
      const services = (await get('/services')).body.services as {
        name: string;
        state: string;
        error?: string;
        status: { listening: boolean };
      }[];
      const p = services.find((s) => s.name === 'proxy')!;
      assert.equal(p.state, 'degraded');
      assert.equal(p.status.listening, false);
      assert.match(p.error ?? '', /not listening/);
      const st = await cli(['status', '-c', tc.file], tc.env);
      assert.match(st.stdout, /proxy: .*NOT LISTENING/, st.stdout + st.stderr);
      await new Promise((r) => squatter!.close(r));
      squatter = null;
      await until('the proxy listening again', async () => (await get('/health')).code === 200, 30_000);
      assert.ok(lines.some((l) => l.includes('"event":"proxy_restarted"')));
      const app = await connect('app', secrets.app, 'app');
      await app.query('SELECT 1');
      await app.end();
      const after = (await get('/services')).body.services as {
        name: string;
        state: string;
        status: { listening: boolean; restarts: number };
      }[];
      const p2 = after.find((s) => s.name === 'proxy')!;
      assert.equal(p2.state, 'running');
      assert.equal(p2.status.restarts, 1);
      const st2 = await cli(['status', '-c', tc.file], tc.env);
      assert.match(st2.stdout, /proxy: listening on 127\.0\.0\.1:\d+ \(restarted 1 time/, st2.stdout);
    } finally {
      if (squatter) await new Promise((r) => squatter!.close(r));
      await controller.stop();
    }
  });
});
