/**
 * The decisions of client transactions that wrote on several groups (two-phase commit from a
 * proxy session, src/proxy/session/multi-group.ts). Each such transaction is prepared on every
 * group it wrote on as `pgscale:tx:<id>:<group>`; then its decision is written under
 * `sharding/tx/<id>` by create-if-absent (compare-and-set on revision 0) — in group 0's decision
 * table (tx-decision-table.ts) — and only then is anything committed. Whoever writes the record first decides: the session writes `commit`;
 * recovery, finding a transaction prepared with no record and old enough, writes `abort`. So a
 * session that stalls between PREPARE and its record can never commit what recovery rolled back:
 * its own write fails and it rolls back too.
 *
 * A commit record is removed once no group holds the transaction any more (by the session after
 * its COMMIT PREPAREDs, or by recovery after it finished them). An abort record is kept an hour
 * (ABORT_RECORD_KEEP_MS): longer than any session may take between PREPARE and its record
 * (MAX_PREPARE_PHASE_MS), so a late session always finds it.
 *
 * src/sharding may not import src/ha: the store is taken as DecisionBackend (StateStore's shapes).
 * https://www.postgresql.org/docs/current/sql-prepare-transaction.html
 */
import { randomBytes } from 'node:crypto';
import { quoteLiteral } from './table-ddl.js';

/**
 * Where decisions are kept: StateStore's shapes (src/ha/store.ts), so that a StateStore would do;
 * pgscale uses group 0's table (tx-decision-table.ts).
 */
export interface DecisionBackend {
  get(key: string): Promise<{ readonly value: string; readonly revision: number } | null>;
  list(
    prefix: string,
  ): Promise<readonly { readonly key: string; readonly value: string; readonly revision: number }[]>;
  compareAndSet(key: string, expected: number, value: string): Promise<number | null>;
  compareAndDelete(key: string, expected: number): Promise<boolean>;
}

export type TxDecision = 'commit' | 'abort';

const KEY_PREFIX = 'sharding/tx/';
const GID = /^pgscale:tx:([0-9a-f]{8,64}):(\d+)$/;

/** How long an abort record is kept (a session that stalls longer than this is refused anyway). */
export const ABORT_RECORD_KEEP_MS = 60 * 60 * 1000;

/** A session whose prepare phase took longer than this does not commit: it rolls back. */
export const MAX_PREPARE_PHASE_MS = 60 * 1000;

/** How old a prepared transaction without a record must be before recovery aborts it. */
export const RECOVERY_MIN_AGE_MS = 5000;

/** A new transaction id (hex, 24 characters): unguessable, so nobody can write its decision first. */
export function newTxId(): string {
  return randomBytes(12).toString('hex');
}

/** The prepared transaction's name on `group` (PostgreSQL allows 199 bytes). */
export function txGid(id: string, group: string): string {
  return `pgscale:tx:${id}:${group}`;
}

export function parseTxGid(gid: string): { readonly id: string; readonly group: string } | null {
  const m = GID.exec(gid);
  return m === null ? null : { id: m[1]!, group: m[2]! };
}

interface Stored {
  readonly decision: TxDecision;
  /** When it was written (ms since the epoch, the writer's clock). */
  readonly at: number;
  readonly groups: readonly string[];
}

function decode(value: string): Stored | null {
  try {
    const v = JSON.parse(value) as Partial<Stored>;
    if ((v.decision !== 'commit' && v.decision !== 'abort') || typeof v.at !== 'number') return null;
    return { decision: v.decision, at: v.at, groups: Array.isArray(v.groups) ? v.groups.map(String) : [] };
  } catch {
    return null;
  }
}

export class TxDecisions {
  constructor(
    private readonly backend: DecisionBackend,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Writes `want` for transaction `id` unless a decision is there already: the decision that
   * holds (the one written first). Throws when the store cannot be reached or written (the
   * outcome is then unknown to the caller; recovery settles it).
   */
  async decide(id: string, want: TxDecision, groups: readonly string[]): Promise<TxDecision> {
    const key = KEY_PREFIX + id;
    const value = JSON.stringify({ decision: want, at: this.clock(), groups } satisfies Stored);
    for (let attempt = 0; attempt < 5; attempt++) {
      if ((await this.backend.compareAndSet(key, 0, value)) !== null) return want;
      const cur = await this.backend.get(key);
      if (cur === null) continue; // removed between the two: try again
      const d = decode(cur.value);
      if (d === null) throw new Error(`the decision record of transaction ${id} does not decode`);
      return d.decision;
    }
    throw new Error(`the decision of transaction ${id} could not be written`);
  }

  /** The recorded decision of `id`, or null when there is none. */
  async decision(id: string): Promise<TxDecision | null> {
    const cur = await this.backend.get(KEY_PREFIX + id);
    return cur === null ? null : (decode(cur.value)?.decision ?? null);
  }

  /** Removes the record of `id` (its transaction is held by no group any more; recovery does it). */
  async forget(id: string): Promise<void> {
    const cur = await this.backend.get(KEY_PREFIX + id);
    if (cur !== null) await this.backend.compareAndDelete(KEY_PREFIX + id, cur.revision);
  }

  /** Every record: id, decision and age. */
  async list(): Promise<{ id: string; decision: TxDecision | null; ageMs: number; revision: number }[]> {
    const now = this.clock();
    return (await this.backend.list(KEY_PREFIX)).map((kv) => {
      const d = decode(kv.value);
      return {
        id: kv.key.slice(kv.key.lastIndexOf('/') + 1),
        decision: d?.decision ?? null,
        ageMs: d === null ? 0 : now - d.at,
        revision: kv.revision,
      };
    });
  }

  /** Removes the record of `id` if it is still at `revision`. */
  async remove(id: string, revision: number): Promise<void> {
    await this.backend.compareAndDelete(KEY_PREFIX + id, revision);
  }
}

/** What recovery uses of a group's session: its name and its SQL. */
export interface RecoverySession {
  readonly group: string;
  query(sql: string): Promise<readonly Record<string, unknown>[]>;
}

export interface TxRecoveryOptions {
  /** Transactions a session of this process is still committing (never touched). */
  readonly inFlight: (id: string) => boolean;
  /** How old a prepared transaction without a record must be to be aborted (RECOVERY_MIN_AGE_MS). */
  readonly minAgeMs?: number;
}

export interface RecoveredTx {
  readonly id: string;
  readonly group: string;
  readonly action: 'committed' | 'rolled back';
}

/**
 * Settles the client transactions left prepared (`pgscale:tx:…`) on the groups of `sessions`
 * (every group of the catalog, reachable): committed where the record says commit; rolled back
 * where it says abort, or where there is none and the transaction is older than `minAgeMs` (an
 * abort is recorded first, so that its session, if alive, cannot commit it). Then removes the
 * records nothing needs any more. A group's failure is thrown after the others are done.
 */
export async function recoverTransactions(
  sessions: readonly RecoverySession[],
  decisions: TxDecisions,
  opts: TxRecoveryOptions,
): Promise<RecoveredTx[]> {
  const minAge = opts.minAgeMs ?? RECOVERY_MIN_AGE_MS;
  const held = new Map<string, { group: RecoverySession; ageMs: number }[]>();
  for (const s of sessions) {
    const rows = await s.query(
      `SELECT gid, (extract(epoch FROM now() - prepared) * 1000)::float8 AS age_ms FROM pg_prepared_xacts
        WHERE database = current_database() AND gid LIKE 'pgscale:tx:%'`,
    );
    for (const r of rows) {
      const p = parseTxGid(String(r.gid));
      if (p === null || p.group !== s.group) continue;
      const list = held.get(p.id) ?? [];
      list.push({ group: s, ageMs: Number(r.age_ms) });
      held.set(p.id, list);
    }
  }
  const out: RecoveredTx[] = [];
  let failure: Error | null = null;
  for (const [id, where] of held) {
    if (opts.inFlight(id)) continue;
    let d = await decisions.decision(id);
    if (d === null) {
      if (Math.max(...where.map((w) => w.ageMs)) < minAge) continue;
      d = await decisions.decide(
        id,
        'abort',
        where.map((w) => w.group.group),
      );
    }
    for (const w of where) {
      try {
        await w.group.query(
          `${d === 'commit' ? 'COMMIT' : 'ROLLBACK'} PREPARED ${quoteLiteral(txGid(id, w.group.group))}`,
        );
        out.push({ id, group: w.group.group, action: d === 'commit' ? 'committed' : 'rolled back' });
      } catch (e) {
        failure ??= e instanceof Error ? e : new Error(String(e));
      }
    }
  }
  // Records no group needs: commits whose transactions are all finished, old aborts.
  const stillHeld = new Set(held.keys());
  const gone = (await decisions.list()).filter((r) => {
    if (opts.inFlight(r.id)) return false;
    const done = r.decision === 'commit' && !stillHeld.has(r.id) && r.ageMs >= minAge;
    const stale = r.decision !== 'commit' && r.ageMs >= ABORT_RECORD_KEEP_MS;
    return done || stale;
  });
  // Removed together (a store that writes a file shares one write among concurrent changes).
  for (let i = 0; i < gone.length; i += 256)
    await Promise.all(gone.slice(i, i + 256).map((r) => decisions.remove(r.id, r.revision)));
  if (failure !== null) throw failure;
  return out;
}
