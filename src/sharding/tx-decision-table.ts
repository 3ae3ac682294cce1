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
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { quoteLiteral } from './table-ddl.js';
import type { DecisionBackend } from './tx-decisions.js';

export const DECISION_TABLE_DDL = [
  'CREATE SCHEMA IF NOT EXISTS pgscale_tx',
  // Usage only, for record_commit below: the tables stay the superuser's alone.
  'REVOKE CREATE ON SCHEMA pgscale_tx FROM PUBLIC',
  'GRANT USAGE ON SCHEMA pgscale_tx TO PUBLIC',
  'CREATE TABLE IF NOT EXISTS pgscale_tx.decisions (key text PRIMARY KEY, value text NOT NULL)',
  'REVOKE ALL ON pgscale_tx.decisions FROM PUBLIC',
  'CREATE TABLE IF NOT EXISTS pgscale_tx.secret (id int PRIMARY KEY CHECK (id = 1), k bytea NOT NULL)',
  'REVOKE ALL ON pgscale_tx.secret FROM PUBLIC',
  // The last-participant optimisation (multi-group.ts): group 0's part of a client transaction
  // records its commit decision itself, inside the client's transaction, as the client's role.
  // Callable by anyone, but only with the proof for that id (sha256 of the cluster's secret and
  // the id), which only the proxy can compute: the ids are visible to every user in
  // pg_prepared_xacts, and a 'commit' record written for an abandoned transaction would make
  // recovery commit parts of it. A record already there (recovery's abort) fails the call, and
  // with it the transaction: 40001.
  `CREATE OR REPLACE FUNCTION pgscale_tx.record_commit(tx text, proof text, groups text[]) RETURNS void
     LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $f$
   BEGIN
     IF tx !~ '^[0-9a-f]{24}$' OR proof IS DISTINCT FROM encode(sha256(
          (SELECT k FROM pgscale_tx.secret WHERE id = 1) || convert_to(tx, 'UTF8')), 'hex') THEN
       RAISE EXCEPTION 'not a commit decision of pgscale' USING ERRCODE = '42501';
     END IF;
     INSERT INTO pgscale_tx.decisions (key, value) VALUES ('sharding/tx/' || tx,
       json_build_object('decision', 'commit',
         'at', floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint, 'groups', groups,
         'by', 'group 0')::text);
   EXCEPTION WHEN unique_violation THEN
     RAISE EXCEPTION 'the transaction was rolled back: the recovery of in-doubt transactions aborted it before its commit was recorded'
       USING ERRCODE = '40001';
   END $f$`,
  'REVOKE ALL ON FUNCTION pgscale_tx.record_commit(text, text, text[]) FROM PUBLIC',
  'GRANT EXECUTE ON FUNCTION pgscale_tx.record_commit(text, text, text[]) TO PUBLIC',
];

/** The cluster's secret for record_commit's proofs: made once (`fresh`, if none is there), then read. */
export async function decisionSecret(pool: pg.Pool, fresh: Buffer): Promise<Buffer> {
  await pool.query('INSERT INTO pgscale_tx.secret (id, k) VALUES (1, $1) ON CONFLICT DO NOTHING', [fresh]);
  const r = await pool.query<{ k: Buffer }>('SELECT k FROM pgscale_tx.secret WHERE id = 1');
  return r.rows[0]!.k;
}

/** The statement that records the commit of `id` inside group 0's part of the transaction. */
export function recordCommitSql(secret: Buffer, id: string, groups: readonly string[]): string {
  const proof = createHash('sha256').update(secret).update(id, 'utf8').digest('hex');
  const list = groups.map((g) => quoteLiteral(g)).join(', ');
  return `SELECT pgscale_tx.record_commit(${quoteLiteral(id)}, ${quoteLiteral(proof)}, ARRAY[${list}]::text[])`;
}

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
