/**
 * Handing kept connections over (issue #11 item 1, its cost): after a transaction calling a user
 * function a client keeps its server connection unchecked, and gives it back (one session-state
 * check, then release) when another client waits. Many clients calling a user function on a
 * small pool must all be served, each check must hand a connection to a waiting client (a check
 * whose connection then stays with the client it was checked for is wasted, and the waiting
 * client starves), and the checks must not exceed the transactions. Counts, not times.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startProxyFixture } from './proxy-harness.js';
import type { ProxyFixture } from './proxy-harness.js';

const CLIENTS = 12;
const TRANSACTIONS = 25;

describe('kept connections are handed over to waiting clients', () => {
  let fx: ProxyFixture;

  before(async () => {
    fx = await startProxyFixture({ default_pool_size: 2, query_wait_timeout: 600 });
    const d = await fx.direct();
    await d.query(
      `CREATE FUNCTION public.f_clean(i int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN i; END $$`,
    );
    await d.end();
  });

  after(async () => {
    await fx?.close();
  });

  test(`${CLIENTS} clients calling a user function on a pool of 2: every check hands a connection over`, async () => {
    const clients: pg.Client[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      clients.push(await fx.client());
    }
    const pool = () => [...fx.proxy.pools.values()].find((p) => p.database === 'app')!;
    await clients[0]!.query('SELECT 1');
    const before = { ...pool().stats };
    try {
      await Promise.all(
        clients.map(async (c, k) => {
          for (let i = 0; i < TRANSACTIONS; i++) {
            const r = await c.query<{ n: number }>('SELECT public.f_clean($1) AS n', [k * 1000 + i]);
            assert.equal(r.rows[0]!.n, k * 1000 + i);
          }
        }),
      );
      const s = pool().stats;
      const checks = s.stateChecks - before.stateChecks;
      const waits = s.waits - before.waits;
      const xacts = CLIENTS * TRANSACTIONS;
      assert.ok(checks >= 1, 'clients waited, yet no connection was checked and handed over');
      assert.ok(checks <= xacts, `${checks} checks for ${xacts} transactions`);
      // Each check is asked for by a waiting client and ends by giving it the connection.
      assert.ok(checks <= waits, `${checks} checks, but only ${waits} clients waited for a connection`);
    } finally {
      for (const c of clients) await c.end().catch(() => undefined);
    }
  });
});
