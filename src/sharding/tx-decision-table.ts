/**
 * Where the decisions of transactions on several groups are kept (tx-decisions.ts): a table on
 * group 0's primary, `pgscale_tx.decisions`, written by the sharding host as the cluster's
 * superuser. Create-if-absent is `INSERT … ON CONFLICT DO NOTHING`, so the first decision
 * written holds, as compare-and-set on revision 0 would in a StateStore; rows never change, so
 * every row's revision is 1.
 *
 * Why not the HA state store: a decision is written for every transaction that commits on
 * several groups — hundreds a second — and a state store is made for a few writes a second (the
 * embedded one rewrites and fsyncs its whole file for each; etcd's raft log and its compaction
 * are sized for metadata). One INSERT on group 0 costs one commit there (PostgreSQL's group
 * commit shares the flush between concurrent ones), and with synchronous replication on it
 * survives a failover of group 0 like any acknowledged commit. Citus keeps its commit records
 * on the coordinator (pg_dist_transaction) for the same reasons.
 */
import type pg from 'pg';
import type { DecisionBackend } from './tx-decisions.js';

export const DECISION_TABLE_DDL = [
  'CREATE SCHEMA IF NOT EXISTS pgscale_tx',
  'REVOKE ALL ON SCHEMA pgscale_tx FROM PUBLIC',
  'CREATE TABLE IF NOT EXISTS pgscale_tx.decisions (key text PRIMARY KEY, value text NOT NULL)',
];

/** A DecisionBackend over group 0's table; `pool` gives the superuser pool of group 0's primary. */
export class TableDecisions implements DecisionBackend {
  constructor(private readonly pool: () => Promise<pg.Pool>) {}

  private async q(sql: string, params: unknown[]): Promise<pg.QueryResult<{ key: string; value: string }>> {
    return (await this.pool()).query<{ key: string; value: string }>(sql, params);
  }

  async get(key: string): Promise<{ value: string; revision: number } | null> {
    const r = await this.q('SELECT key, value FROM pgscale_tx.decisions WHERE key = $1', [key]);
    return r.rows.length === 0 ? null : { value: r.rows[0]!.value, revision: 1 };
  }

  async list(prefix: string): Promise<{ key: string; value: string; revision: number }[]> {
    const r = await this.q('SELECT key, value FROM pgscale_tx.decisions WHERE starts_with(key, $1)', [
      prefix,
    ]);
    return r.rows.map((x) => ({ key: x.key, value: x.value, revision: 1 }));
  }

  async compareAndSet(key: string, expected: number, value: string): Promise<number | null> {
    if (expected !== 0) return null; // rows never change
    const r = await this.q(
      'INSERT INTO pgscale_tx.decisions (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING key',
      [key, value],
    );
    return r.rows.length === 0 ? null : 1;
  }

  async compareAndDelete(key: string, expected: number): Promise<boolean> {
    if (expected !== 1) return false;
    const r = await this.q('DELETE FROM pgscale_tx.decisions WHERE key = $1 RETURNING key', [key]);
    return r.rows.length > 0;
  }
}
