/**
 * A client leaving must never cost a server connection (issue #12 item 5). Many clients write and
 * leave at once, in transaction and in session pooling, with a replica in the read set (so the
 * proxy asks the primary's WAL position after each write, for read-your-writes): they leave after
 * the reply (`pgbench -C` style), with Terminate pipelined right behind the INSERT, or by closing
 * the socket while the INSERT still runs. PostgreSQL itself is the witness: the backend pids of
 * the pool's server connections stay the same, and the primary logs no connection reset.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startProxyFixture } from './proxy-harness.js';
import type { ProxyFixture } from './proxy-harness.js';
import { RawClient, fe } from './raw-client.js';
import { until } from './harness.js';

const CLIENTS = 40;
const POOL = 6;

/** Backend pids of the app user's client backends on the primary (the pool's connections). */
async function appBackends(fx: ProxyFixture): Promise<Set<number>> {
  const d = await fx.direct();
  try {
    const r = await d.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend' " +
        "AND application_name NOT LIKE 'pgscale %'",
    );
    return new Set(r.rows.map((x) => x.pid));
  } finally {
    await d.end();
  }
}

/** A raw client logged in as app (SCRAM), ready for queries. */
async function rawApp(fx: ProxyFixture, database: string): Promise<RawClient> {
  const c = await RawClient.connect(fx.port);
  await c.loginScram({ user: 'app', database }, fx.appPassword, { timeoutMs: 30_000 });
  return c;
}

for (const mode of ['transaction', 'session'] as const) {
  describe(`a client leaving right after a write costs no server connection (${mode} pooling)`, () => {
    let fx: ProxyFixture;
    let log = '';
    let logStart = 0;
    before(async () => {
      fx = await startProxyFixture(
        // server_check_delay as by default (the harness sets 0): an idle connection is lent at once.
        {
          default_pool_size: POOL,
          pool_mode: mode,
          ryw_wait_ms: 200,
          max_client_conn: 500,
          server_check_delay: 30,
        },
        {},
        1,
      );
      const d = await fx.direct();
      await d.query(
        'CREATE TABLE IF NOT EXISTS t (id serial PRIMARY KEY, v int); GRANT ALL ON t TO app; ' +
          'GRANT ALL ON SEQUENCE t_id_seq TO app',
      );
      await d.end();
      log = fx.tc.cluster.paths(fx.tc.cluster.nodes()[0]!.name).log;
    });
    after(async () => {
      await fx.close();
    });

    /** Fills the pool (every connection busy at once), then returns its backends' pids. */
    async function warmPool(): Promise<Set<number>> {
      const cs = await Promise.all(Array.from({ length: POOL }, () => fx.client()));
      await Promise.all(
        cs.map((c) => c.query('WITH w AS (INSERT INTO t (v) VALUES (0) RETURNING 1) SELECT pg_sleep(0.1)')),
      );
      await Promise.all(cs.map((c) => c.end()));
      // The pool's connections are idle and reset (session mode) once every client is gone.
      let pids = new Set<number>();
      await until(
        'the pool filled and idle',
        async () => {
          pids = await appBackends(fx);
          return pids.size === POOL;
        },
        30_000,
      );
      logStart = readFileSync(log, 'utf8').length;
      return pids;
    }

    async function assertKept(beforePids: Set<number>, what: string): Promise<void> {
      // What the clients left behind settles (rollback, reset, the WAL-position query).
      await until(
        'the pool idle again',
        async () => {
          const a = await fx.admin();
          const r = await a.query<{
            cl_active: string;
            cl_waiting: string;
            sv_active: string;
            sv_used: string;
          }>('SHOW POOLS');
          await a.end();
          return r.rows.every(
            (x) => Number(x.cl_active) === 0 && Number(x.cl_waiting) === 0 && Number(x.sv_active) === 0,
          );
        },
        30_000,
      );
      const afterPids = await appBackends(fx);
      const lost = [...beforePids].filter((p) => !afterPids.has(p));
      const text = readFileSync(log, 'utf8').slice(logStart);
      const resets = text
        .split('\n')
        .filter((l) => /Connection reset by peer|unexpected EOF on client/.test(l));
      assert.deepEqual(
        lost,
        [],
        `${what}: server connections closed (pids gone); primary log: ${resets.slice(0, 3).join(' | ')}`,
      );
      assert.deepEqual(resets, [], `${what}: the primary logged resets`);
    }

    test('INSERT, then disconnect at once after the reply (pgbench -C style), 40 clients at a time', async () => {
      const pids = await warmPool();
      for (let round = 0; round < 3; round++) {
        await Promise.all(
          Array.from({ length: CLIENTS }, async () => {
            const c = await fx.client();
            await c.query('INSERT INTO t (v) VALUES (1)');
            await c.end();
          }),
        );
      }
      const pgbench = fx.tc.bins.pgbench;
      if (pgbench) {
        // pgbench -C itself: a new connection per transaction, each an INSERT.
        const script = join(fx.tc.dir, 'insert.sql');
        writeFileSync(script, 'INSERT INTO t (v) VALUES (3);\n');
        const args = [
          '-n',
          '-C',
          '-c',
          '20',
          '-t',
          '10',
          '-f',
          script,
          '-h',
          '127.0.0.1',
          '-p',
          String(fx.port),
          '-U',
          'app',
          'app',
        ];
        const out = await new Promise<string>((resolve, reject) =>
          execFile(pgbench, args, { env: { ...process.env, PGPASSWORD: fx.appPassword } }, (e, so, se) =>
            e ? reject(new Error(`pgbench: ${e.message}\n${se}`)) : resolve(so),
          ),
        );
        assert.match(out, /failed transactions: 0 /);
      }
      await assertKept(pids, 'disconnect after the reply');
    });

    test('INSERT with Terminate pipelined behind it, and INSERT then a closed socket', async () => {
      const pids = await warmPool();
      const clients = await Promise.all(Array.from({ length: CLIENTS }, () => rawApp(fx, 'app')));
      clients.forEach((c, i) => {
        const insert = fe({ name: 'Query', query: 'INSERT INTO t (v) VALUES (2)' });
        if (i % 2 === 0) {
          // Terminate right behind the INSERT, in the same packet, and no waiting for the reply.
          c.socket.end(Buffer.concat([insert, fe({ name: 'Terminate' })]));
        } else {
          // No Terminate at all: the socket closes while the INSERT runs.
          c.socket.write(insert, () => c.socket.destroy());
        }
      });
      await assertKept(pids, 'leaving while the INSERT runs');
    });
  });
}
