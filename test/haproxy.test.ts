/**
 * The nodes' health endpoints with Debian's HAProxy in front, against real PostgreSQL (one build,
 * a primary and two standbys): each agent answers Patroni's checks for its own node; the
 * haproxy.cfg `pgscale haproxy-config` prints sends writes to the primary and spreads reads over
 * both replicas; after the primary stops and a standby is promoted by hand (HA comes later),
 * HAProxy's write port reaches the new primary. An api_port in use stops `up` before anything.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { binarySets, cli, makeCluster, until, withoutHa } from './harness.js';
import type { TestCluster } from './harness.js';
import { findFreePortBlock } from '../src/cluster/ports.js';
import { stop } from '../src/cluster/instance.js';
import { readSecrets } from '../src/cluster/secrets.js';

const HAPROXY = '/usr/sbin/haproxy';
const bins = binarySets()[0]!;

interface Reply {
  code: number;
  body: string;
}

function http(port: number, path: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe(
  `HAProxy in front of PostgreSQL ${bins.version} (${bins.source})`,
  { skip: existsSync(HAPROXY) ? false : `no ${HAPROXY}` },
  () => {
    let tc: TestCluster;
    let haproxy: ChildProcess | null = null;
    let haproxyLog = '';
    let ports: { write: number; read: number; stats: number };
    let superuser: string;
    const node = (name: string) => tc.cluster.nodes().find((n) => n.name === name)!;
    const api = (name: string, path: string, method = 'GET') => http(node(name).apiPort, path, method);

    /** A superuser connection through HAProxy (or straight to a node's port). */
    async function query<T extends pg.QueryResultRow>(port: number, sql: string): Promise<T> {
      const c = new pg.Client({
        host: '127.0.0.1',
        port,
        user: 'postgres',
        password: superuser,
        database: 'postgres',
        connectionTimeoutMillis: 5000,
      });
      await c.connect();
      try {
        return (await c.query<T>(sql)).rows[0]!;
      } finally {
        await c.end();
      }
    }

    /** HAProxy's view (stats CSV): `listener/server` → UP, DOWN … */
    async function serverStates(): Promise<Map<string, string>> {
      const r = await http(ports.stats, '/;csv');
      const states = new Map<string, string>();
      for (const line of r.body.split('\n')) {
        const f = line.split(',');
        if (f.length > 17 && f[1] !== 'FRONTEND' && f[1] !== 'BACKEND' && !line.startsWith('#'))
          states.set(`${f[0]}/${f[1]}`, f[17]!.split(' ')[0]!);
      }
      return states;
    }

    async function waitStates(want: Record<string, string>, timeoutMs = 30_000): Promise<void> {
      let last = new Map<string, string>();
      await until(
        `HAProxy to see ${JSON.stringify(want)}`,
        async () => {
          last = await serverStates();
          return Object.entries(want).every(([k, v]) => last.get(k) === v);
        },
        timeoutMs,
      ).catch((e: Error) => {
        throw new Error(`${e.message}; last seen ${JSON.stringify([...last])}\n${haproxyLog}`);
      });
    }

    before(async () => {
      // A promotion by hand, as HAProxy users do without HA: the decide loop would fence it.
      tc = await makeCluster(bins, { replicas: 2, extra: withoutHa });
      const base = await findFreePortBlock(3);
      ports = { write: base, read: base + 1, stats: base + 2 };
    });

    after(async () => {
      if (haproxy && haproxy.exitCode === null && haproxy.signalCode === null) {
        const exited = new Promise((r) => haproxy!.once('exit', r));
        haproxy.kill('SIGTERM');
        await exited;
      }
      await cli(['down', '-c', tc.file], tc.env);
      await tc.cleanup();
    });

    test('an api_port in use stops up --detach before anything is created', async () => {
      const port = node('s0n1').apiPort;
      const srv = createServer();
      await new Promise<void>((r) => srv.listen(port, '127.0.0.1', r));
      try {
        const r = await cli(['up', '-c', tc.file, '--detach'], tc.env);
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.match(
          r.stderr,
          new RegExp(
            `port ${port} of the health endpoints of node s0n1 \\(groups\\[0\\]\\.nodes\\[1\\]\\.api_port not set: ` +
              `derived from http\\.port and the node's position, on 127\\.0\\.0\\.1\\) is already in use`,
          ),
        );
        assert.equal(existsSync(tc.cluster.dataDir), false);
      } finally {
        await new Promise((r) => srv.close(r));
      }
    });

    test('each node answers Patroni’s checks for itself', async () => {
      const up = await cli(['up', '-c', tc.file, '--detach'], tc.env);
      assert.equal(up.code, 0, up.stdout + up.stderr);
      superuser = readSecrets(tc.cluster.dataDir)!.superuser;

      const codes = async (path: string) =>
        Promise.all(['s0n0', 's0n1', 's0n2'].map(async (n) => (await api(n, path)).code));
      assert.deepEqual(await codes('/primary'), [200, 503, 503]);
      assert.deepEqual(await codes('/master'), [200, 503, 503]);
      assert.deepEqual(await codes('/'), [200, 503, 503], '/ is the primary check, as in Patroni');
      assert.deepEqual(await codes('/replica'), [503, 200, 200]);
      assert.deepEqual(await codes('/replica?lag=1GB'), [503, 200, 200]);
      assert.deepEqual(await codes('/read-only'), [200, 200, 200]);
      assert.deepEqual(await codes('/health'), [200, 200, 200]);
      assert.deepEqual(await codes('/liveness'), [200, 200, 200]);
      assert.deepEqual(await codes('/patroni'), [200, 200, 200]);

      const p = JSON.parse((await api('s0n0', '/primary')).body) as Record<string, unknown>;
      assert.equal(p.state, 'running');
      assert.equal(p.role, 'primary');
      assert.equal(typeof p.server_version, 'number');
      assert.equal(typeof (p.xlog as { location: number }).location, 'number');
      assert.equal(p.timeline, 1);
      const r = JSON.parse((await api('s0n1', '/replica')).body) as Record<string, unknown>;
      assert.equal(r.role, 'replica');
      assert.deepEqual(Object.keys(r.xlog as object), ['received_location', 'replayed_location']);

      // HEAD and OPTIONS: the same status code, no body (HAProxy's bare `option httpchk` sends OPTIONS /).
      for (const method of ['HEAD', 'OPTIONS']) {
        const a = await api('s0n0', '/primary', method);
        const b = await api('s0n1', '/primary', method);
        assert.deepEqual([a.code, a.body, b.code, b.body], [200, '', 503, ''], method);
      }
      assert.equal((await api('s0n0', '/primary', 'POST')).code, 405);
      assert.equal((await api('s0n0', '/nope')).code, 404);
      assert.equal((await api('s0n1', '/replica?lag=lots')).code, 400);
    });

    test('/replica?lag=N: a replica that stopped replaying drops out once it lags more than N', async () => {
      const s2 = node('s0n2').port;
      await query(s2, 'SELECT pg_wal_replay_pause()');
      try {
        await query(node('s0n0').port, 'CREATE TABLE lag_probe AS SELECT generate_series(1, 1000) AS i');
        await until(
          's0n2 to fail /replica?lag=0',
          async () => (await api('s0n2', '/replica?lag=0')).code === 503,
        );
        assert.equal((await api('s0n2', '/replica?lag=1GB')).code, 200);
        assert.equal((await api('s0n2', '/replica')).code, 200, 'no limit, still a streaming replica');
        const doc = JSON.parse((await api('s0n2', '/replica?lag=0')).body) as {
          pgscale: { lag_bytes: number };
        };
        assert.ok(doc.pgscale.lag_bytes > 0);
      } finally {
        await query(s2, 'SELECT pg_wal_replay_resume()');
      }
      await until('s0n2 to catch up', async () => (await api('s0n2', '/replica?lag=0')).code === 200, 15_000);
    });

    test('HAProxy with the generated config: writes reach the primary, reads both replicas', async () => {
      const gen = await cli(
        [
          'haproxy-config',
          '-c',
          tc.file,
          '--write-port',
          String(ports.write),
          '--read-port',
          String(ports.read),
          '--stats-port',
          String(ports.stats),
        ],
        tc.env,
      );
      assert.equal(gen.code, 0, gen.stderr);
      const cfg = join(tc.dir, 'haproxy.cfg');
      writeFileSync(cfg, gen.stdout);
      haproxy = spawn(HAPROXY, ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
      haproxy.stdout!.setEncoding('utf8').on('data', (d: string) => (haproxyLog += d));
      haproxy.stderr!.setEncoding('utf8').on('data', (d: string) => (haproxyLog += d));
      await until('HAProxy stats', async () => (await http(ports.stats, '/;csv')).code === 200, 15_000).catch(
        (e: Error) => {
          throw new Error(`${e.message}\n${haproxyLog}`);
        },
      );
      // HAProxy starts its servers as up: wait until the checks have sorted them.
      await waitStates({
        'pgscale_write/s0n0': 'UP',
        'pgscale_write/s0n1': 'DOWN',
        'pgscale_write/s0n2': 'DOWN',
        'pgscale_read/s0n0': 'DOWN',
        'pgscale_read/s0n1': 'UP',
        'pgscale_read/s0n2': 'UP',
      });

      const w = await query<{ rec: boolean; port: number }>(
        ports.write,
        "SELECT pg_is_in_recovery() AS rec, current_setting('port')::int AS port",
      );
      assert.deepEqual(w, { rec: false, port: node('s0n0').port });
      await query(ports.write, 'CREATE TABLE through_haproxy (id int)');

      const seen = new Set<number>();
      for (let i = 0; i < 6; i++) {
        const r = await query<{ rec: boolean; port: number }>(
          ports.read,
          "SELECT pg_is_in_recovery() AS rec, current_setting('port')::int AS port",
        );
        assert.equal(r.rec, true, 'reads go to replicas only');
        seen.add(r.port);
      }
      assert.deepEqual(
        [...seen].sort(),
        [node('s0n1').port, node('s0n2').port].sort(),
        'round robin reaches both replicas',
      );
    });

    test('after the primary stops and s0n1 is promoted, the write port reaches s0n1', async () => {
      await stop(bins, tc.cluster.paths('s0n0').pgdata);
      await until('s0n0 to fail /primary', async () => (await api('s0n0', '/primary')).code === 503);
      assert.equal((await api('s0n0', '/health')).code, 503);
      await query(node('s0n1').port, 'SELECT pg_promote()');
      await until('s0n1 to pass /primary', async () => (await api('s0n1', '/primary')).code === 200, 30_000);
      await waitStates({
        'pgscale_write/s0n0': 'DOWN',
        'pgscale_write/s0n1': 'UP',
        'pgscale_read/s0n1': 'DOWN',
      });
      const w = await until(
        'the write port to reach a writable s0n1',
        async () => {
          const r = await query<{ rec: boolean; port: number }>(
            ports.write,
            "SELECT pg_is_in_recovery() AS rec, current_setting('port')::int AS port",
          );
          return r.port === node('s0n1').port && !r.rec ? r : null;
        },
        30_000,
      );
      assert.deepEqual(w, { rec: false, port: node('s0n1').port });
      await query(ports.write, 'INSERT INTO through_haproxy VALUES (1)');
    });
  },
);
