/**
 * query_wait_timeout: a client queued for a server connection longer than the timeout gets
 * 53300 and is disconnected, as PgBouncer does; the pool keeps one timer for every queued client
 * (backend/pool.ts), so each must still fail at its own deadline, not at the first one's, and one
 * served before its deadline must not fail. Order of events, not times.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startProxyFixture } from './proxy-harness.js';
import type { ProxyFixture } from './proxy-harness.js';

describe('query_wait_timeout with one pool timer', () => {
  let fx: ProxyFixture;

  before(async () => {
    fx = await startProxyFixture({ default_pool_size: 1, query_wait_timeout: 2 });
  });

  after(async () => {
    await fx?.close();
  });

  test('queued clients fail with 53300 at their own deadlines; one served in time does not', async () => {
    const holder = await fx.client();
    const first = await fx.client();
    const second = await fx.client();
    const served = await fx.client();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1');
      const firstQueued = Date.now();
      const a = first.query('SELECT 1').then(
        () => null,
        (e: { code?: string }) => ({ code: e.code, at: Date.now() }),
      );
      // The second queues one second later: its deadline is one second after the first's.
      await sleep(1000);
      const b = second.query('SELECT 1').then(
        () => null,
        (e: { code?: string }) => ({ code: e.code, at: Date.now() }),
      );
      const ra = await a;
      assert.equal(ra?.code, '53300', 'the first queued client was not failed by query_wait_timeout');
      // The holder commits: the next queued client is served in time, and it is the second.
      const c = served.query<{ n: number }>('SELECT 2 AS n');
      const rb = await b;
      assert.equal(rb?.code, '53300', 'the second queued client was not failed by query_wait_timeout');
      assert.ok(
        rb.at - firstQueued >= 2900,
        `the second client failed ${rb.at - firstQueued} ms after the first queued: at the first one's deadline`,
      );
      await holder.query('COMMIT');
      assert.equal((await c).rows[0]!.n, 2);
      // The proxy goes on serving: a new client gets the connection.
      const later = await fx.client();
      assert.equal((await later.query<{ n: number }>('SELECT 3 AS n')).rows[0]!.n, 3);
      await later.end();
    } finally {
      for (const c of [holder, first, second, served]) await c.end().catch(() => undefined);
    }
  });
});
