/**
 * The end of a client transaction that ran on several groups (its legs: one server per group,
 * each holding its part of the transaction; shard-steps.ts moves the transaction between them).
 * The proxy ends it with its own queries on the legs, and the client gets one reply, as from one
 * PostgreSQL:
 *
 * - ROLLBACK (or COMMIT of a failed transaction): ROLLBACK on every leg.
 * - COMMIT: a part wrote when a statement the classifier does not know to be a read ran there
 *   (ServerLeg.wrote; the classifier never takes a write for a read, since reads may go to
 *   replicas). One part that wrote: a plain COMMIT there, then the parts that only read —
 *   read-only and single-group transactions pay nothing more. Several: two-phase commit —
 *   PREPARE TRANSACTION `pgscale:tx:<id>:<group>` on each in parallel; any failure (a deferred
 *   constraint, a serialization failure) rolls every part back and is the client's error. Then
 *   the decision is recorded in group 0's decision table (sharding/tx-decisions.ts: whoever
 *   records first — this session's commit or recovery's abort — decides), and COMMIT PREPARED
 *   runs on each group in parallel, the read-only parts committing with them. Once the commit is
 *   recorded the client is told COMMIT even if a group's COMMIT PREPARED fails (a failover):
 *   recovery finishes it from the record within seconds. If the record cannot be written the outcome is
 *   unknown to the proxy: the client gets 08006 and recovery settles it (abort, unless the record
 *   did land). When group 0 wrote, its part is the last participant instead (lastParticipant):
 *   it records the decision inside its own transaction and commits, sparing a PREPARE, a separate
 *   write and a COMMIT PREPARED.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { buildErrorResponse, decodeErrorResponse, errorField } from '../../protocol/error-response.js';
import { SqlState } from '../../protocol/sqlstate.js';
import { MAX_PREPARE_PHASE_MS, newTxId, txGid } from '../../sharding/tx-decisions.js';
import { quoteLiteral } from '../../sharding/table-ddl.js';
import { commandComplete, queryMessage } from '../rewrite.js';
import type { ClientRecord } from './client-record.js';
import { ownQueryThen, pendingQuery } from './pending.js';
import type { OwnQueryResult } from './pending.js';
import { ownQueryDestroysUnnamed } from './server-prep.js';
import type { ServerLeg } from './server-leg.js';

/** What the end of a transaction on several groups needs of the sharding host. */
export interface TxDecider {
  /**
   * Records the commit of transaction `id` prepared on `groups`, unless recovery recorded its
   * abort first: the decision that holds. Throws when it cannot be recorded (outcome unknown).
   */
  decideCommit(id: string, groups: readonly string[]): Promise<'commit' | 'abort'>;
  /**
   * The statement that records the commit of `id` inside group 0's own part of the transaction
   * (the last-participant optimisation), or null when it cannot (group 0's table unreachable:
   * then decideCommit, which says so).
   */
  recordInTransaction?(id: string, groups: readonly string[]): Promise<string | null>;
  /** A session of this process is ending `id` (recovery leaves it alone until `done`). */
  begin(id: string): void;
  done(id: string): void;
  /** Told of parts a COMMIT PREPARED did not finish (recovery finishes them). */
  pending?(id: string, groups: readonly string[]): void;
}

export interface TxEnd {
  /** CommandComplete (COMMIT / ROLLBACK) or the ErrorResponse the client gets. */
  readonly reply: Buffer;
  readonly committed: boolean;
}

/**
 * Fault injection for the tests of in-doubt recovery (never set in use):
 * `PGSCALE_FAULT_2PC=<after-prepare|after-decide>:<ms>` stops every two-phase commit there for
 * that long, after saying so on stderr (the controller's log).
 */
const FAULT = /^(after-prepare|after-decide):(\d+)$/.exec(process.env.PGSCALE_FAULT_2PC ?? '');

async function faultPoint(at: 'after-prepare' | 'after-decide', id: string): Promise<void> {
  if (FAULT === null || FAULT[1] !== at) return;
  process.stderr.write(`pgscale fault point: ${at} ${id}\n`);
  await sleep(Number(FAULT[2]));
}

const LOST: OwnQueryResult = {
  rows: [],
  error: buildErrorResponse('ERROR', SqlState.CONNECTION_FAILURE, 'server connection lost'),
  status: 'I',
};

/** Runs `sql` on `leg` as the proxy's own Query; its outcome (a lost server: an error). */
export function runOwn(record: ClientRecord, leg: ServerLeg, sql: string): Promise<OwnQueryResult> {
  if (leg.server === null) return Promise.resolve(LOST);
  ownQueryDestroysUnnamed(record, leg);
  return new Promise((resolve) => {
    leg.send(queryMessage(sql));
    leg.expect(ownQueryThen(resolve));
    leg.flush();
  });
}

/** The commit position of `leg`'s group after its part committed (read-your-writes, commit horizon). */
function capture(record: ClientRecord, leg: ServerLeg): Promise<void> {
  if (leg.server === null) return Promise.resolve();
  ownQueryDestroysUnnamed(record, leg);
  return new Promise((resolve) => {
    const q = pendingQuery(true, false, { captureLsn: true, capture: leg.horizon?.beginCapture() ?? 0 });
    q.done = () => resolve();
    q.error = null;
    leg.send(queryMessage('SELECT pg_current_wal_lsn()'));
    leg.expect(q);
    leg.flush();
  });
}

function all(record: ClientRecord, legs: readonly ServerLeg[], sql: (l: ServerLeg) => string) {
  return Promise.all(legs.map((l) => runOwn(record, l, sql(l))));
}

/**
 * Ends the transaction held by `legs` (the current one first): commits it (`commit`) or rolls it
 * back. `captureLsn`: learn each written group's commit position afterwards. Never rejects.
 */
export async function endOnGroups(
  record: ClientRecord,
  legs: readonly ServerLeg[],
  commit: boolean,
  decider: TxDecider,
  captureLsn: boolean,
): Promise<TxEnd> {
  if (!commit) {
    await all(record, legs, () => 'ROLLBACK');
    return { reply: commandComplete('ROLLBACK'), committed: false };
  }
  // Which parts wrote: by the classifier, which never takes a write for a read (a read may go to
  // a replica). The parts that only read commit with the decision, never before it.
  const writers = legs.filter((l) => l.wrote);
  const readers = legs.filter((l) => !l.wrote);
  let end: TxEnd;
  if (writers.length <= 1) {
    // One group wrote (or none): its COMMIT is the transaction's, as on one PostgreSQL.
    const main = writers[0] ?? legs[0]!;
    const [r] = await all(record, [main], () => 'COMMIT');
    const others = readers.filter((l) => l !== main);
    await all(record, others, () => (r!.error === null ? 'COMMIT' : 'ROLLBACK'));
    end =
      r!.error === null
        ? { reply: commandComplete('COMMIT'), committed: true }
        : { reply: r!.error, committed: false };
  } else {
    const last = writers.find((l) => l.group === '0');
    const id = newTxId();
    const groups = writers.map((l) => l.group);
    const recordSql = last ? ((await decider.recordInTransaction?.(id, groups)) ?? null) : null;
    end =
      last && recordSql !== null
        ? await lastParticipant(record, id, last, recordSql, writers, readers, decider)
        : await twoPhase(record, id, writers, readers, decider);
  }
  if (end.committed && captureLsn) await Promise.all(writers.map((l) => capture(record, l)));
  return end;
}

async function twoPhase(
  record: ClientRecord,
  id: string,
  writers: readonly ServerLeg[],
  readers: readonly ServerLeg[],
  decider: TxDecider,
): Promise<TxEnd> {
  const gid = (l: ServerLeg) => quoteLiteral(txGid(id, l.group));
  decider.begin(id);
  try {
    const t0 = Date.now();
    const prepared = await all(record, writers, (l) => `PREPARE TRANSACTION ${gid(l)}`);
    const bad = prepared.findIndex((r) => r.error !== null);
    if (bad >= 0) {
      // A part could not prepare (it is rolled back already): the others are rolled back too.
      await Promise.all([
        all(
          record,
          writers.filter((_, i) => prepared[i]!.error === null),
          (l) => `ROLLBACK PREPARED ${gid(l)}`,
        ),
        all(record, readers, () => 'ROLLBACK'),
      ]);
      return { reply: prepared[bad]!.error!, committed: false };
    }
    await faultPoint('after-prepare', id);
    const groups = writers.map((l) => l.group);
    let decision: 'commit' | 'abort';
    try {
      // A session that stalled this long may have been taken for dead by recovery: it gives up.
      decision = Date.now() - t0 > MAX_PREPARE_PHASE_MS ? 'abort' : await decider.decideCommit(id, groups);
    } catch (e) {
      decider.pending?.(id, groups);
      await all(record, readers, () => 'ROLLBACK');
      return { reply: OUTCOME_UNKNOWN(e instanceof Error ? e.message : String(e)), committed: false };
    }
    if (decision === 'abort') {
      await Promise.all([
        all(record, writers, (l) => `ROLLBACK PREPARED ${gid(l)}`),
        all(record, readers, () => 'ROLLBACK'),
      ]);
      return { reply: ABORTED_BY_RECOVERY(), committed: false };
    }
    await faultPoint('after-decide', id);
    const [done] = await Promise.all([
      all(record, writers, (l) => `COMMIT PREPARED ${gid(l)}`),
      all(record, readers, () => 'COMMIT'),
    ]);
    const left = writers.filter((_, i) => done[i]!.error !== null).map((l) => l.group);
    // The record goes with recovery's next pass (every 2 s), not one more store write per commit.
    if (left.length > 0) decider.pending?.(id, left);
    return { reply: commandComplete('COMMIT'), committed: true };
  } finally {
    decider.done(id);
  }
}

const ABORTED_BY_RECOVERY = () =>
  buildErrorResponse(
    'ERROR',
    SqlState.TRANSACTION_ROLLBACK,
    'the transaction was rolled back: the recovery of in-doubt transactions aborted it before its commit was recorded',
  );

const OUTCOME_UNKNOWN = (why: string) =>
  buildErrorResponse(
    'ERROR',
    SqlState.CONNECTION_FAILURE,
    `the outcome of this COMMIT is not known: its decision could not be recorded (${why}); recovery settles it`,
  );

/**
 * Whether an error from group 0's COMMIT leaves its outcome unknown: the connection was lost or
 * the server is going away (the commit may have happened), rather than a statement that failed.
 */
function outcomeUnknown(error: Buffer): boolean {
  const e = decodeErrorResponse(error.subarray(5));
  if (!e.ok) return true;
  const code = errorField(e.value, 'C') ?? '';
  const severity = errorField(e.value, 'V') ?? errorField(e.value, 'S') ?? '';
  return code.startsWith('08') || code.startsWith('57P') || severity === 'FATAL' || severity === 'PANIC';
}

/**
 * Two-phase commit where group 0's part is the last participant (as Citus's coordinator is): the
 * other parts prepare; then group 0's part records the decision itself, inside the client's own
 * transaction, and commits — one commit is both its part and the decision, where twoPhase has a
 * PREPARE, a separate decision write and a COMMIT PREPARED on group 0. Then the prepared parts
 * commit. A crash before group 0's COMMIT loses its part with the connection (no record:
 * recovery rolls the others back); after it, the record is there (recovery commits them).
 */
async function lastParticipant(
  record: ClientRecord,
  id: string,
  last: ServerLeg,
  recordSql: string,
  writers: readonly ServerLeg[],
  readers: readonly ServerLeg[],
  decider: TxDecider,
): Promise<TxEnd> {
  const gid = (l: ServerLeg) => quoteLiteral(txGid(id, l.group));
  const others = writers.filter((l) => l !== last);
  decider.begin(id);
  try {
    const t0 = Date.now();
    const prepared = await all(record, others, (l) => `PREPARE TRANSACTION ${gid(l)}`);
    const bad = prepared.findIndex((r) => r.error !== null);
    const stalled = bad < 0 && Date.now() - t0 > MAX_PREPARE_PHASE_MS;
    if (bad >= 0 || stalled) {
      await Promise.all([
        all(
          record,
          others.filter((_, i) => prepared[i]!.error === null),
          (l) => `ROLLBACK PREPARED ${gid(l)}`,
        ),
        all(record, [last, ...readers], () => 'ROLLBACK'),
      ]);
      return { reply: bad >= 0 ? prepared[bad]!.error! : ABORTED_BY_RECOVERY(), committed: false };
    }
    await faultPoint('after-prepare', id);
    const [decided] = await all(record, [last], () => `${recordSql}; COMMIT`);
    if (decided!.error !== null) {
      if (outcomeUnknown(decided!.error)) {
        decider.pending?.(
          id,
          writers.map((l) => l.group),
        );
        await all(record, readers, () => 'ROLLBACK');
        return { reply: OUTCOME_UNKNOWN('group 0 did not answer its COMMIT'), committed: false };
      }
      // Its part did not commit (a deferred constraint, recovery's abort recorded first): the
      // error is the client's, and every other part rolls back.
      await Promise.all([
        decided!.status === 'I' ? Promise.resolve([]) : all(record, [last], () => 'ROLLBACK'),
        all(record, others, (l) => `ROLLBACK PREPARED ${gid(l)}`),
        all(record, readers, () => 'ROLLBACK'),
      ]);
      return { reply: decided!.error, committed: false };
    }
    await faultPoint('after-decide', id);
    const [done] = await Promise.all([
      all(record, others, (l) => `COMMIT PREPARED ${gid(l)}`),
      all(record, readers, () => 'COMMIT'),
    ]);
    const left = others.filter((_, i) => done[i]!.error !== null).map((l) => l.group);
    if (left.length > 0) decider.pending?.(id, left);
    return { reply: commandComplete('COMMIT'), committed: true };
  } finally {
    decider.done(id);
  }
}
