/**
 * Concurrency and exactness: 300 connections each run 10 transfers between 100 accounts
 * (BEGIN, two UPDATEs in id order so no deadlock is needed, a log row, COMMIT), retrying only on
 * deadlock or serialization failure. Afterwards, read directly on the server: money is neither
 * created nor lost, every committed transfer is logged exactly once, and each balance equals its
 * opening balance plus what the log says it received minus what it sent.
 */
import assert from 'node:assert/strict';
import type pg from 'pg';
import type { ScenarioFactory } from './scenario.js';
import type { DriverTarget } from './target.js';
import { adminScalar, appClient, dropTables, uniqueName, withApp } from './util.js';

const CLIENTS = 300;
const TXNS = 10;
const ACCOUNTS = 100;
const OPENING = 1000;
const RETRYABLE = new Set(['40P01', '40001']);

export const concurrencyScenario: ScenarioFactory = () => ({
  name: `concurrency: ${CLIENTS} clients x ${TXNS} transfers, totals exact`,
  async run(t: DriverTarget) {
    const accounts = uniqueName('accounts');
    const log = uniqueName('transfers');
    try {
      await withApp(t, async (c) => {
        await c.query(`CREATE TABLE ${accounts} (id int PRIMARY KEY, balance bigint NOT NULL)`);
        await c.query(
          `CREATE TABLE ${log} (id bigserial PRIMARY KEY, client int, src int, dst int, amount bigint, backend int)`,
        );
        await c.query(`INSERT INTO ${accounts} SELECT g, ${OPENING} FROM generate_series(1, ${ACCOUNTS}) g`);
      });
      const clients = Array.from({ length: CLIENTS }, () => appClient(t));
      let committed = 0;
      let retries = 0;
      try {
        await Promise.all(clients.map((c) => c.connect()));
        await Promise.all(
          clients.map(async (c, ci) => {
            for (let n = 0; n < TXNS; n++) {
              const src = 1 + Math.floor(Math.random() * ACCOUNTS);
              let dst = 1 + Math.floor(Math.random() * (ACCOUNTS - 1));
              if (dst >= src) dst++;
              const amount = 1 + Math.floor(Math.random() * 50);
              retries += await transfer(c, { accounts, log }, ci, src, dst, amount);
              committed++;
            }
          }),
        );
      } finally {
        await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      }
      assert.equal(committed, CLIENTS * TXNS);
      assert.equal(await adminScalar(t, `SELECT sum(balance) FROM ${accounts}`), String(ACCOUNTS * OPENING));
      assert.equal(await adminScalar(t, `SELECT count(*) FROM ${log}`), String(committed));
      assert.equal(
        await adminScalar(
          t,
          `SELECT count(*) FROM (SELECT client FROM ${log} GROUP BY client HAVING count(*) = ${TXNS}) x`,
        ),
        String(CLIENTS),
      );
      const mismatched = await adminScalar(
        t,
        `SELECT count(*) FROM ${accounts} a
          WHERE a.balance <> ${OPENING}
            + coalesce((SELECT sum(amount) FROM ${log} WHERE dst = a.id), 0)
            - coalesce((SELECT sum(amount) FROM ${log} WHERE src = a.id), 0)`,
      );
      assert.equal(mismatched, '0', `balances agree with the log (${retries} retries)`);
    } finally {
      await dropTables(t, accounts, log);
    }
  },
});

/** One transfer; returns how many times it had to be retried. */
async function transfer(
  c: pg.Client,
  tables: { accounts: string; log: string },
  client: number,
  src: number,
  dst: number,
  amount: number,
): Promise<number> {
  // Lock rows in id order: concurrent transfers then queue instead of deadlocking.
  const steps: [number, number][] =
    src < dst
      ? [
          [src, -amount],
          [dst, amount],
        ]
      : [
          [dst, amount],
          [src, -amount],
        ];
  for (let attempt = 0; ; attempt++) {
    try {
      await c.query('BEGIN');
      for (const [id, delta] of steps) {
        const r = await c.query(`UPDATE ${tables.accounts} SET balance = balance + $1 WHERE id = $2`, [
          delta,
          id,
        ]);
        assert.equal(r.rowCount, 1);
      }
      await c.query(
        `INSERT INTO ${tables.log} (client, src, dst, amount, backend) VALUES ($1, $2, $3, $4, pg_backend_pid())`,
        [client, src, dst, amount],
      );
      await c.query('COMMIT');
      return attempt;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      const code = (e as { code?: string }).code;
      if (!code || !RETRYABLE.has(code) || attempt >= 5) throw e;
    }
  }
}
