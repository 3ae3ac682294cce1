/**
 * The proxy's statement counters — what `SHOW STATS`, `/metrics` (pgscale_proxy_queries_total,
 * _transactions_total, _query_duration_seconds_total) and the dashboard's throughput chart read —
 * count every statement once, whatever its protocol (simple, extended with unnamed or named
 * statements) and its path (one group, a shard on another group, a read or a write over every
 * group, a transaction on two groups). Through `pgscale up` with two groups of one primary each.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { binarySets } from './harness.js';
import { upSharded } from './sharding-support.js';
import type { ShardedCluster } from './sharding-support.js';

const bins = binarySets()[0]!;
const N = 12;

interface Totals {
  queries: number;
  xacts: number;
  queryUs: number;
}

describe('the proxy counts every statement once', () => {
  let sc: ShardedCluster;
  let app: pg.Client;
  let admin: pg.Client;

  /** SHOW STATS summed over the app user's pools (one per group). */
  const totals = async (): Promise<Totals> => {
    const r = await admin.query<{
      user: string;
      total_query_count: string;
      total_xact_count: string;
      total_query_time: string;
    }>('SHOW STATS');
    const rows = r.rows.filter((x) => x.user === 'app');
    const sum = (k: 'total_query_count' | 'total_xact_count' | 'total_query_time') =>
      rows.reduce((n, x) => n + Number(x[k]), 0);
    return {
      queries: sum('total_query_count'),
      xacts: sum('total_xact_count'),
      queryUs: sum('total_query_time'),
    };
  };

  /** Runs `fn` and returns how much each counter grew. */
  const grew = async (fn: () => Promise<void>): Promise<Totals> => {
    const a = await totals();
    await fn();
    const b = await totals();
    return { queries: b.queries - a.queries, xacts: b.xacts - a.xacts, queryUs: b.queryUs - a.queryUs };
  };

  before(async () => {
    sc = await upSharded(bins, { groups: 2, replicas: 0 });
    app = await sc.connectApp();
    await app.query('CREATE TABLE plain (id int PRIMARY KEY, v int NOT NULL DEFAULT 0)');
    await app.query('INSERT INTO plain SELECT g FROM generate_series(1, 100) g');
    await app.query('CREATE TABLE dist (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0)');
    await app.query('INSERT INTO dist SELECT g FROM generate_series(1, 100) g');
    await app.query("SELECT create_distributed_table('dist', 'id')");
    admin = new pg.Client({
      host: '127.0.0.1',
      port: sc.app.port,
      user: 'postgres',
      password: sc.superPassword,
      database: 'pgscale',
    });
    admin.on('error', () => undefined);
    await admin.connect();
  });
  after(async () => {
    await app?.end().catch(() => undefined);
    await admin?.end().catch(() => undefined);
    await sc?.down();
  });

  const cases: { name: string; run: (i: number) => Promise<unknown>; xacts?: number }[] = [
    { name: 'simple protocol, one group', run: (i) => app.query(`SELECT v FROM plain WHERE id = ${i + 1}`) },
    {
      name: 'extended protocol, unnamed statements, one group',
      run: (i) => app.query('SELECT v FROM plain WHERE id = $1', [i + 1]),
    },
    {
      name: 'extended protocol, a named statement, one group',
      run: (i) =>
        app.query({ name: 'counted_plain', text: 'SELECT v FROM plain WHERE id = $1', values: [i + 1] }),
    },
    {
      name: 'extended protocol, single-shard reads on both groups',
      run: (i) => app.query('SELECT v FROM dist WHERE id = $1', [i + 1]),
    },
    {
      name: 'extended protocol, single-shard writes on both groups',
      run: (i) => app.query('UPDATE dist SET v = v + 1 WHERE id = $1', [i + 1]),
    },
    { name: 'simple protocol, a read over every group', run: () => app.query('SELECT count(*) FROM dist') },
    {
      name: 'extended protocol, a read over every group',
      run: (i) => app.query('SELECT count(*) FROM dist WHERE v >= $1', [-i]),
    },
    { name: 'simple protocol, a write on every group', run: () => app.query('UPDATE dist SET v = v + 1') },
    {
      name: 'extended protocol, a write on every group',
      run: () => app.query('UPDATE dist SET v = v + $1', [1]),
    },
  ];

  for (const c of cases)
    test(`${c.name}: ${N} statements count as ${N} queries and ${N} transactions`, async () => {
      let wallUs = 0;
      const d = await grew(async () => {
        const t = performance.now();
        for (let i = 0; i < N; i++) await c.run(i);
        wallUs = (performance.now() - t) * 1000;
      });
      assert.equal(d.queries, N, `queries ${JSON.stringify(d)}`);
      assert.equal(d.xacts, N, `transactions ${JSON.stringify(d)}`);
      // Each statement's time lies within the client's wait for it: never more than the loop took.
      assert.ok(
        d.queryUs > 0 && d.queryUs <= wallUs + 1000,
        `query time ${JSON.stringify(d)}, loop ${wallUs} µs`,
      );
    });

  test('a transaction block over two groups: each statement once, one transaction', async () => {
    const d = await grew(async () => {
      await app.query('BEGIN');
      for (let i = 0; i < 4; i++) await app.query('UPDATE dist SET v = v + 1 WHERE id = $1', [i + 1]);
      await app.query('COMMIT');
    });
    assert.equal(d.queries, 6, JSON.stringify(d));
    assert.equal(d.xacts, 1, JSON.stringify(d));
  });
});
