/**
 * A session of a sharded database moves between groups by what each statement touches: a real
 * proxy in front of two groups (two PostgreSQL primaries), with a stand-in for the catalog's
 * routing (a statement naming `group_1` runs on group 1, `by_param` on the group its first
 * parameter names, the rest — no table — wherever the session is, group 0 when it holds nothing) — so this file tests the session's mechanics (simple and
 * extended protocol, pipelines, transactions, deferred BEGIN, refusals, API calls) apart from the
 * planner, which has its own tests.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import postgres from 'postgres';
import { binarySets, makeCluster } from './harness.js';
import type { TestCluster } from './harness.js';
import { readSecrets } from '../src/cluster/secrets.js';
import { findFreePortBlock } from '../src/cluster/ports.js';
import { ProxyServer } from '../src/proxy/proxy-server.js';
import { apiError } from '../src/proxy/sharding.js';
import type { DatabaseSharding, ShardingHost } from '../src/proxy/proxy-server.js';
import { databasesResolver } from '../src/proxy/resolver.js';
import { proxyConfig } from './proxy-harness.js';
import type { ShardTarget } from '../src/proxy/session/shard-target.js';
import { encodeBackendMessage } from '../src/protocol/backend-messages.js';
import { commandComplete, readyForQuery } from '../src/proxy/rewrite.js';

function fakeSharding(): DatabaseSharding & {
  apiCalls: string[];
  hostCalls: string[];
  hostParams: (readonly (string | null)[] | null)[];
} {
  const apiCalls: string[] = [];
  const hostCalls: string[] = [];
  const hostParams: (readonly (string | null)[] | null)[] = [];
  return {
    apiCalls,
    hostCalls,
    hostParams,
    active: true,
    target(sql, params): ShardTarget {
      if (sql.includes('every_group'))
        return {
          kind: 'host',
          reason: 'DDL on every group',
          work: { kind: 'all', sql, reason: 'test', compare: [] },
        };
      if (sql.includes('pgscale_test_refuse'))
        return { kind: 'refuse', sqlstate: '0A000', message: 'refused for the test' };
      const g = /\bgroup_(\d)\b/.exec(sql);
      if (g) return { kind: 'group', group: g[1]! };
      if (sql.includes('by_param')) {
        if (params === null) return { kind: 'needs-params' };
        const v = params[0];
        return v && v.format === 'text' ? { kind: 'group', group: v.text } : { kind: 'home' };
      }
      // Tables of group 0's own (local tables) name group_0; statements on no table go anywhere.
      return { kind: 'any' };
    },
    isApi: (sql) => /^select fake_api\(/i.test(sql),
    copyIn: () => Promise.resolve({ ok: false, replies: apiError('0A000', 'no COPY in this test') }),
    api(sql) {
      apiCalls.push(sql);
      return Promise.resolve([
        encodeBackendMessage({
          name: 'RowDescription',
          fields: [
            {
              name: 'fake_api',
              tableOid: 0,
              columnAttr: 0,
              typeOid: 25,
              typeSize: -1,
              typeModifier: -1,
              format: 0,
            },
          ],
        }),
        encodeBackendMessage({ name: 'DataRow', values: [Buffer.from('done')] }),
        commandComplete('SELECT 1'),
        readyForQuery('I'),
      ]);
    },
    host(work) {
      hostCalls.push(work.sql);
      hostParams.push(work.params ?? null);
      return Promise.resolve([commandComplete('ALTER TABLE'), readyForQuery('I')]);
    },
  };
}

describe('a sharded session moves between groups by its statements', () => {
  let tc: TestCluster;
  let proxy: ProxyServer;
  let port: number;
  let appPassword: string;
  let groupPorts: number[];
  const sharding = fakeSharding();
  const connect = async (extra: Partial<pg.ClientConfig> = {}) => {
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
  const groupOf = (p: number | string) => groupPorts.indexOf(Number(p));

  before(async () => {
    tc = await makeCluster(binarySets()[0]!, { groups: 2, replicas: 0 });
    await tc.cluster.up();
    groupPorts = [0, 1].map((g) => tc.cluster.nodes().find((n) => n.group === g)!.port);
    appPassword = readSecrets(tc.cluster.dataDir)!.app;
    port = await findFreePortBlock(1);
    const cfg = proxyConfig(groupPorts[0]!, port, { default_pool_size: 3 });
    const host: ShardingHost = {
      forDatabase: (db) => (db === 'app' ? sharding : null),
      groupTarget: (db, group) => ({ host: '127.0.0.1', port: groupPorts[Number(group)]!, dbname: db }),
    };
    proxy = new ProxyServer({
      config: cfg,
      resolve: databasesResolver(cfg),
      inlineUsers: new Map([['app', appPassword]]),
      loginBackoff: false,
      sharding: host,
    });
    await proxy.start();
  });
  after(async () => {
    await proxy?.stop();
    await tc?.cleanup();
  });

  test('simple queries go to the group they name, and back, within one session', async () => {
    const c = await connect();
    for (let i = 0; i < 6; i++) {
      const g = i % 2;
      const sql = `SELECT inet_server_port() AS p, 1 AS group_${g}`;
      const r = await c.query<{ p: number }>(sql);
      assert.equal(groupOf(r.rows[0]!.p), g, sql);
    }
    await c.end();
  });

  test('extended protocol: a Bind routes its Parse by its parameters (pg), unnamed and named', async () => {
    const c = await connect();
    for (const g of ['1', '0', '1', '1', '0']) {
      const r = await c.query<{ p: number }>('SELECT inet_server_port() AS p, $1::text AS by_param', [g]);
      assert.equal(groupOf(r.rows[0]!.p), Number(g));
      const n = await c.query<{ p: number }>({
        name: 'named_by_param',
        text: 'SELECT inet_server_port() AS p, $1::text AS by_param',
        values: [g],
      });
      assert.equal(groupOf(n.rows[0]!.p), Number(g));
    }
    await c.end();
  });

  test('postgres.js: a Parse described alone is re-prepared where its Bind goes', async () => {
    const sql = postgres({
      host: '127.0.0.1',
      port,
      user: 'app',
      password: appPassword,
      database: 'app',
      max: 1,
      onnotice: () => {},
    });
    try {
      for (const g of ['1', '0', '1', '0', '1']) {
        const rows = await sql<{ p: number }[]>`SELECT inet_server_port() AS p, ${g}::text AS by_param`;
        assert.equal(groupOf(rows[0]!.p), Number(g));
      }
      const many = await Promise.all(
        ['1', '0', '1', '0'].map(
          (g) => sql<{ p: number }[]>`SELECT inet_server_port() AS p, ${g}::text AS by_param`,
        ),
      );
      assert.deepEqual(
        many.map((r) => groupOf(r[0]!.p)),
        [1, 0, 1, 0],
      );
    } finally {
      await sql.end();
    }
  });

  test('BEGIN waits for the first statement: the transaction runs on its group, commits there', async () => {
    const c = await connect();
    await c.query('CREATE TABLE IF NOT EXISTS t_tx (v int)');
    const d1 = new pg.Client({
      host: '127.0.0.1',
      port: groupPorts[1],
      user: 'app',
      password: appPassword,
      database: 'app',
    });
    await d1.connect();
    await d1.query('CREATE TABLE IF NOT EXISTS t_tx (v int)');
    await c.query('BEGIN');
    await c.query('INSERT INTO t_tx /* group_1 */ VALUES (1)');
    const inside = await c.query<{ p: number }>('SELECT inet_server_port() AS p, 1 AS group_1');
    assert.equal(groupOf(inside.rows[0]!.p), 1);
    await c.query('COMMIT');
    assert.equal((await d1.query('SELECT count(*)::int AS n FROM t_tx')).rows[0].n, 1);
    // BEGIN; COMMIT with nothing between never reaches a server.
    await c.query('BEGIN');
    await c.query('COMMIT');
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    const iso = await c.query<{ p: number; iso: string }>(
      "SELECT inet_server_port() AS p, current_setting('transaction_isolation') AS iso, 1 AS group_1",
    );
    assert.equal(iso.rows[0]!.iso, 'repeatable read');
    assert.equal(groupOf(iso.rows[0]!.p), 1);
    await c.query('ROLLBACK');
    await d1.end();
    await c.end();
  });

  test('a statement on another group inside a transaction fails it (0A000), as an error in PostgreSQL would', async () => {
    const c = await connect();
    await c.query('BEGIN');
    await c.query('SELECT 1'); // group 0
    await assert.rejects(c.query('SELECT 1 AS group_1'), (e: { code?: string }) => e.code === '0A000');
    await assert.rejects(c.query('SELECT 2'), (e: { code?: string }) => e.code === '25P02');
    await c.query('ROLLBACK');
    // The same with the extended protocol: the transaction fails, the session stays.
    await c.query('BEGIN');
    await c.query('SELECT $1::int AS v, 1 AS group_0', [1]);
    await assert.rejects(
      c.query('SELECT $1::int AS v, 1 AS group_1', [2]),
      (e: { code?: string }) => e.code === '0A000',
    );
    await assert.rejects(c.query('SELECT $1::int AS v', [3]), (e: { code?: string }) => e.code === '25P02');
    await c.query('ROLLBACK');
    // Deferred: fails before any server saw it.
    await c.query('BEGIN');
    await assert.rejects(
      c.query('SELECT pgscale_test_refuse()'),
      (e: { code?: string }) => e.code === '0A000',
    );
    await assert.rejects(c.query('SELECT 1 AS group_1'), (e: { code?: string }) => e.code === '25P02');
    const end = await c.query('COMMIT');
    assert.equal(end.command, 'ROLLBACK');
    const r = await c.query<{ p: number }>('SELECT inet_server_port() AS p, 1 AS group_1');
    assert.equal(groupOf(r.rows[0]!.p), 1);
    await c.end();
  });

  test('a refused statement outside a transaction gets its error; extended ones skip to Sync; the session goes on', async () => {
    const c = await connect();
    await assert.rejects(
      c.query('SELECT pgscale_test_refuse()'),
      (e: { code?: string }) => e.code === '0A000',
    );
    await assert.rejects(
      c.query('SELECT $1::int AS pgscale_test_refuse', [1]),
      (e: { code?: string }) => e.code === '0A000',
    );
    const r = await c.query<{ p: number }>('SELECT inet_server_port() AS p, $1::text AS by_param', ['1']);
    assert.equal(groupOf(r.rows[0]!.p), 1);
    await c.end();
  });

  test('session pooling keeps its own group and refuses statements on another', async () => {
    const sp = await findFreePortBlock(1);
    const cfg = proxyConfig(groupPorts[0]!, sp, { pool_mode: 'session' });
    const p2 = new ProxyServer({
      config: cfg,
      resolve: databasesResolver(cfg),
      inlineUsers: new Map([['app', appPassword]]),
      loginBackoff: false,
      sharding: {
        forDatabase: () => sharding,
        groupTarget: (db, group) => ({ host: '127.0.0.1', port: groupPorts[Number(group)]!, dbname: db }),
      },
    });
    await p2.start();
    try {
      const c = await connect({ port: sp });
      assert.equal(groupOf((await c.query<{ p: number }>('SELECT inet_server_port() AS p')).rows[0]!.p), 0);
      await assert.rejects(c.query('SELECT 1 AS group_1'), (e: { code?: string }) => e.code === '0A000');
      assert.equal(groupOf((await c.query<{ p: number }>('SELECT inet_server_port() AS p')).rows[0]!.p), 0);
      await c.end();
    } finally {
      await p2.stop();
    }
  });

  test('API calls in the extended protocol: unnamed with parameters (pg), named (postgres.js); the next statement is not taken for one', async () => {
    const c = await connect();
    const before = sharding.apiCalls.length;
    const r = await c.query<{ fake_api: string }>('SELECT fake_api($1)', ['ext']);
    assert.equal(r.rows[0]!.fake_api, 'done');
    assert.equal(sharding.apiCalls.at(-1), "SELECT fake_api('ext')");
    // The unnamed statement is an ordinary one again: it runs on a server.
    assert.equal((await c.query<{ v: number }>('SELECT $1::int AS v', [5])).rows[0]!.v, 5);
    await c.end();
    const sql = postgres({
      host: '127.0.0.1',
      port,
      user: 'app',
      password: appPassword,
      database: 'app',
      max: 1,
    });
    try {
      const rows = await sql<{ fake_api: string }[]>`SELECT fake_api(${'named'})`;
      assert.equal(rows[0]!.fake_api, 'done');
      const again = await sql<{ fake_api: string }[]>`SELECT fake_api(${'named'})`;
      assert.equal(again[0]!.fake_api, 'done');
    } finally {
      await sql.end();
    }
    sharding.apiCalls.splice(before); // the count test below counts its own
  });

  test('an API call pipelined behind a running statement waits for it, then runs (postgres.js)', async () => {
    const sql = postgres({
      host: '127.0.0.1',
      port,
      user: 'app',
      password: appPassword,
      database: 'app',
      max: 1,
      onnotice: () => {},
    });
    try {
      const [slow, api] = await Promise.all([
        sql`SELECT pg_sleep(0.3) AS s, 1 AS group_1`,
        sql.unsafe("SELECT fake_api('pipelined')").simple(),
      ]);
      assert.equal(slow.length, 1);
      assert.equal((api as unknown as { fake_api: string }[])[0]!.fake_api, 'done');
    } finally {
      await sql.end();
    }
  });

  test('an API call is answered by the sharding host; inside a transaction it is refused (25001)', async () => {
    const c = await connect();
    const r = await c.query<{ fake_api: string }>("SELECT fake_api('users')");
    assert.equal(r.rows[0]!.fake_api, 'done');
    await c.query('BEGIN');
    await c.query('SELECT 1');
    await assert.rejects(c.query("SELECT fake_api('x')"), (e: { code?: string }) => e.code === '25001');
    await c.query('ROLLBACK');
    assert.equal(sharding.apiCalls.length, 2); // this test's first, the pipelined one; not the refused one
    await c.end();
  });

  test('a statement on several groups is run by the sharding host outside a transaction (simple and extended); inside one it is refused (0A000)', async () => {
    const c = await connect();
    const r = await c.query('ALTER TABLE every_group ADD COLUMN x int');
    assert.equal(r.command, 'ALTER');
    assert.deepEqual(sharding.hostCalls, ['ALTER TABLE every_group ADD COLUMN x int']);
    // A pipeline: the host's reply comes after the server's, in order.
    const [a, b, d] = await Promise.all([
      c.query('SELECT 1 AS n, 1 AS group_1'),
      c.query('ALTER TABLE every_group ADD COLUMN y int'),
      c.query('SELECT 2 AS n, 1 AS group_0'),
    ]);
    assert.deepEqual([a.rows[0].n, b.command, d.rows[0].n], [1, 'ALTER', 2]);
    const zeroA = (e: { code?: string }) => e.code === '0A000';
    await c.query('BEGIN');
    await assert.rejects(c.query('ALTER TABLE every_group ADD COLUMN z int'), zeroA);
    await c.query('ROLLBACK');
    await c.query('BEGIN');
    await c.query('SELECT 1 AS group_1');
    await assert.rejects(c.query('ALTER TABLE every_group ADD COLUMN z int'), zeroA);
    await c.query('ROLLBACK');
    assert.equal(sharding.hostCalls.length, 2);
    // Extended protocol: Parse, Bind, Describe, Execute, Sync answered from the host's reply.
    const ext = await c.query('UPDATE every_group SET x = $1', [7]);
    assert.equal(ext.command, 'ALTER');
    assert.deepEqual(sharding.hostParams.at(-1), ['7']);
    // Inside a transaction block the extended one is refused too; the transaction then fails.
    await c.query('BEGIN');
    await c.query('SELECT 1 AS group_0');
    await assert.rejects(c.query('UPDATE every_group SET x = $1', [8]), zeroA);
    await c.query('ROLLBACK');
    assert.equal(sharding.hostCalls.length, 3);
    assert.equal((await c.query('SELECT 3 AS n')).rows[0].n, 3);
    await c.end();
  });
});
