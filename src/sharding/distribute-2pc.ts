/**
 * Two-phase commit over the groups' primaries for the executor (distribute.ts): transaction
 * names (gids) that say the operation and the table, the end of an operation (PREPARE on every
 * group, the catalog's commit as the decision, then COMMIT PREPARED or ROLLBACK PREPARED
 * everywhere), and recoverPrepared(), which settles the transactions a crash left prepared, by
 * the catalog's decision: an operation is committed exactly when the catalog says its result.
 * PREPARE TRANSACTION needs max_prepared_transactions > 0 on every node (src/cluster/conf.ts).
 * https://www.postgresql.org/docs/current/sql-prepare-transaction.html
 */
import type { RelName } from './types.js';
import { relKey } from './types.js';
import type { GroupSession } from './distribute-copy.js';
import { DistributeError, quoteLiteral } from './table-ddl.js';

/** What two-phase commit uses of a group's session: its name and its SQL. */
export type TxSession = Pick<GroupSession, 'group' | 'client'>;

export type Operation = 'distribute' | 'reference' | 'undistribute';

const GID_PREFIX = 'pgscale:';

/** `pgscale:<operation>:<id>:<schema>.<table>` (PostgreSQL allows 199 bytes). */
export function operationGid(op: Operation, id: string, table: RelName): string {
  return `${GID_PREFIX}${op}:${id}:${relKey(table)}`.slice(0, 199);
}

export interface ParsedGid {
  readonly op: Operation;
  readonly id: string;
  /** `schema.table` as relKey() writes it. */
  readonly table: string;
}

export function parseGid(gid: string): ParsedGid | null {
  const m = /^pgscale:(distribute|reference|undistribute):([^:]+):(.+)$/.exec(gid);
  return m ? { op: m[1] as Operation, id: m[2]!, table: m[3]! } : null;
}

export type Decision = 'commit' | 'rollback' | 'unknown';

/**
 * The decision for a gid from the catalog: create_distributed_table and create_reference_table
 * committed when the catalog has the table; undistribute_table when it no longer has it.
 * `inCatalog` receives the table's key (`schema.table`).
 */
export function decideFromCatalog(gid: string, inCatalog: (key: string) => boolean): Decision {
  const p = parseGid(gid);
  if (!p) return 'unknown';
  const has = inCatalog(p.table);
  return (p.op === 'undistribute') === has ? 'rollback' : 'commit';
}

/** Runs `sql` on a session, naming the group in a failure (the PostgreSQL error is the cause). */
export async function run(s: TxSession, sql: string, params?: unknown[]): Promise<Record<string, unknown>[]> {
  try {
    return (await s.client.query(sql, params)).rows;
  } catch (e) {
    annotate(e, s.group);
    throw e;
  }
}

/** Adds the group to a PostgreSQL error's message, once, keeping its fields (code, detail …). */
function annotate(e: unknown, group: string): void {
  if (e instanceof Error && !(e as { pgscaleGroup?: string }).pgscaleGroup) {
    (e as { pgscaleGroup?: string }).pgscaleGroup = group;
  }
}

export interface CommitOutcome {
  /** Groups whose COMMIT PREPARED did not complete: recoverPrepared() finishes them. */
  readonly pendingGroups: readonly string[];
}

/**
 * Rolls back what an operation did before its decision: ROLLBACK on the sessions still in their
 * transaction, ROLLBACK PREPARED on those already prepared. Never throws.
 */
export async function abortAll(
  open: readonly TxSession[],
  prepared: readonly TxSession[],
  gid: string,
): Promise<void> {
  await Promise.all([
    ...open.map((s) => s.client.query('ROLLBACK').catch(() => undefined)),
    ...prepared.map((s) => s.client.query(`ROLLBACK PREPARED ${quoteLiteral(gid)}`).catch(() => undefined)),
  ]);
}

/**
 * The end of an operation whose work is done inside an open transaction on each of `sessions`:
 * PREPARE on all, then the catalog decides. true: COMMIT PREPARED on all. false: ROLLBACK
 * PREPARED on all and a 40001 error (the catalog changed meanwhile). A throw of the catalog:
 * its outcome is unknown, so the prepared transactions stay for recoverPrepared() to settle
 * with the catalog's word, and the error says so.
 */
export async function prepareAndDecide(
  sessions: readonly TxSession[],
  gid: string,
  commitCatalog: () => Promise<boolean>,
): Promise<CommitOutcome> {
  const open = [...sessions];
  const prepared: TxSession[] = [];
  try {
    for (const s of sessions) {
      await run(s, `PREPARE TRANSACTION ${quoteLiteral(gid)}`);
      open.splice(open.indexOf(s), 1);
      prepared.push(s);
    }
  } catch (e) {
    // A failed PREPARE rolls its own transaction back; ROLLBACK there is harmless.
    await abortAll(open, prepared, gid);
    throw e;
  }
  let decided: boolean;
  try {
    decided = await commitCatalog();
  } catch (e) {
    throw new DistributeError(
      '08006',
      `the catalog's commit failed with an unknown outcome; the groups' transactions stay prepared as ${gid}`,
      {
        detail: e instanceof Error ? e.message : String(e),
        hint: 'recoverPrepared() commits or rolls them back by what the catalog says.',
        cause: e,
      },
    );
  }
  if (!decided) {
    await abortAll([], prepared, gid);
    throw new DistributeError('40001', 'the catalog changed during the operation; nothing was changed', {
      hint: 'Retry the operation.',
    });
  }
  const pending: string[] = [];
  await Promise.all(
    prepared.map(async (s) => {
      try {
        await s.client.query(`COMMIT PREPARED ${quoteLiteral(gid)}`);
      } catch {
        pending.push(s.group);
      }
    }),
  );
  return { pendingGroups: pending };
}

export interface RecoveredTransaction {
  readonly group: string;
  readonly gid: string;
  readonly action: 'committed' | 'rolled back' | 'left';
}

export interface RecoverOptions {
  /**
   * Only transactions prepared at least this long ago (default 0). An operation in progress has
   * its transactions prepared before the catalog decides: recovery that runs beside live
   * operations (not only at start-up) should leave those alone with a margin here.
   */
  readonly olderThanMs?: number;
}

/**
 * Settles the transactions pgscale left prepared on the groups (in each session's database):
 * commit or roll back each by `decided(gid)` (decideFromCatalog() gives the catalog's answer);
 * 'unknown' leaves it. Returns what it did.
 */
export async function recoverPrepared(
  sessions: readonly TxSession[],
  decided: (gid: string) => Decision | Promise<Decision>,
  opts: RecoverOptions = {},
): Promise<RecoveredTransaction[]> {
  const out: RecoveredTransaction[] = [];
  for (const s of sessions) {
    const rows = await run(
      s,
      `SELECT gid FROM pg_prepared_xacts
        WHERE database = current_database() AND gid LIKE 'pgscale:%'
          AND prepared <= now() - make_interval(secs => $1::float8 / 1000)
        ORDER BY prepared`,
      [opts.olderThanMs ?? 0],
    );
    for (const r of rows) {
      const gid = String(r.gid);
      const d = await decided(gid);
      if (d === 'unknown') {
        out.push({ group: s.group, gid, action: 'left' });
        continue;
      }
      await run(s, `${d === 'commit' ? 'COMMIT' : 'ROLLBACK'} PREPARED ${quoteLiteral(gid)}`);
      out.push({ group: s.group, gid, action: d === 'commit' ? 'committed' : 'rolled back' });
    }
  }
  return out;
}
