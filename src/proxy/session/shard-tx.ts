/**
 * A client transaction block that runs on several groups (sharding): when a statement of the
 * transaction needs another group than the one it is on, the current leg keeps its server and its
 * part of the transaction (parked), and the statement runs on the other group's leg — parked
 * earlier, or a new server whose transaction begins as the client's did (its BEGIN text), with
 * the savepoints the client made since, so that ROLLBACK TO and RELEASE, sent to every part,
 * mean on each what they mean on one PostgreSQL. A statement of a failed transaction goes to the
 * current leg, which answers 25P02 as PostgreSQL would.
 *
 * The end (COMMIT, END, ROLLBACK, ABORT, alone, as a Query or in the extended protocol) is the
 * proxy's: multi-group.ts ends every part, with two-phase commit when several wrote. A Query with
 * other statements beside transaction control, PREPARE TRANSACTION, COMMIT AND CHAIN and an
 * extended-protocol pipeline that changes group before its Sync are refused (0A000).
 *
 * Locks across groups: PostgreSQL's deadlock detector sees one group. Each part of a transaction
 * on several groups runs with `lock_timeout` (MULTI_GROUP_LOCK_TIMEOUT, unless the session set its
 * own), so a deadlock across groups ends with 55P03 on one of its transactions instead of waiting
 * forever.
 */
import type { TypedFrame } from '../../protocol/framer.js';
import { buildErrorResponse, decodeErrorResponse } from '../../protocol/error-response.js';
import { SqlState } from '../../protocol/sqlstate.js';
import { splitStatements } from '../../sql/split.js';
import type { SessionEffect } from '../../sql/session-effect.js';
import { quoteSettingName } from '../backend/state-check.js';
import { readyForQuery } from '../rewrite.js';
import type { ClientRecord } from './client-record.js';
import type { TxState } from './context.js';
import { endOnGroups, runOwn } from './multi-group.js';
import type { OwnQueryResult } from './pending.js';
import type { TxDecider } from './multi-group.js';
import type { ServerLeg } from './server-leg.js';
import { beginBatch } from './shard-extended.js';
import { boundText } from './shard-target.js';
import { TX_END } from './shard-step-texts.js';

/** A lock wait longer than this in a transaction on several groups may be a deadlock across them. */
export const MULTI_GROUP_LOCK_TIMEOUT = '10s';

/** What the multi-group steps use of their session. */
export interface MultiGroupSession {
  readonly record: ClientRecord;
  readonly tx: TxState;
  readonly inbox: TypedFrame[];
  readonly leg: ServerLeg | null;
  /** The transaction holds parts on other groups than the current leg's. */
  readonly multiGroup: boolean;
  /** The current leg keeps its part and steps aside. */
  park(): void;
  /** The parked leg of `group` becomes current: false when there is none. */
  unpark(group: string): boolean;
  /** Every leg holding a part, the current one first. */
  txLegs(): ServerLeg[];
  /** The end of the transaction on several groups starts / has ended (every server goes back). */
  beginEnding(): void;
  endedOnGroups(committed: boolean): void;
  replyInOrder(bytes: Buffer): void;
  waitFor(answer: Promise<Buffer[]>): void;
}

const SAVEPOINT = /^\s*savepoint\s+("(?:[^"]|"")+"|[\w$]+)\s*;?\s*$/i;
const RELEASE = /^\s*release\s+(?:savepoint\s+)?("(?:[^"]|"")+"|[\w$]+)\s*;?\s*$/i;
const ROLLBACK_TO =
  /^\s*rollback\s+(?:work\s+|transaction\s+)?to\s+(?:savepoint\s+)?("(?:[^"]|"")+"|[\w$]+)\s*;?\s*$/i;
const CONTROL = /^\s*(commit|end|rollback|abort|begin|start|savepoint|release|prepare\s+transaction)\b/i;
const CHAIN = /\band\s+chain\s*;?\s*$/i;

/**
 * The transaction's SETs as one text to run on another part ('' for none), or null when one of
 * them cannot be carried (SET LOCAL other than search_path, SET TRANSACTION, SET CONSTRAINTS).
 */
export function settingsReplay(effects: readonly SessionEffect[]): string | null {
  const out: string[] = [];
  for (const e of effects) {
    if (e.kind === 'set') out.push(`SET ${quoteSettingName(e.name)} = ${e.value}`);
    else if (e.kind === 'reset') out.push(`RESET ${quoteSettingName(e.name)}`);
    else if (e.kind === 'reset_all') out.push('RESET ALL');
    else if (e.kind === 'local') {
      if (e.searchPath === undefined) return null;
      out.push(`SET LOCAL search_path = ${e.searchPath}`);
    }
  }
  return out.join('; ');
}

function ident(raw: string): string {
  return raw.startsWith('"') ? raw.slice(1, -1).replace(/""/g, '"') : raw.toLowerCase();
}
function quoted(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export class MultiGroupTx {
  /** The text that began the transaction (sent again to each group it moves to). */
  private beginText: string | null = null;
  /** The savepoints of the transaction, oldest first (made again on each group it moves to). */
  private savepoints: string[] = [];
  /** A new leg's part begins (BEGIN, savepoints) before the client's next message. */
  private joining = false;
  /** Savepoint commands sent to the parked parts, not answered yet. */
  private broadcasts: Promise<unknown> = Promise.resolve();
  /** A part where one of the proxy's own statements failed (its transaction there is aborted). */
  /** By group: a ROLLBACK TO that succeeds there afterwards recovers it, as in PostgreSQL. */
  private readonly broken = new Map<string, Buffer>();

  constructor(
    private readonly s: MultiGroupSession,
    private readonly decider: TxDecider | null,
    private readonly refuse: (f: TypedFrame, sqlstate: string, message: string) => 'next' | 'wait',
    /** A named statement a batch prepared: the client's record learns it (shard-api.ts). */
    private readonly remember: (name: string, f: TypedFrame) => void,
    /** The text of the client's unnamed statement. */
    private readonly unnamedText: () => string | null,
  ) {}

  /** The transaction began with `text` (held back, then sent with its first statement). */
  began(text: string): void {
    this.beginText = text;
  }

  /** A new leg waits for its part of the transaction to begin: attach on the primary. */
  get joiningGroup(): boolean {
    return this.joining;
  }

  /**
   * A statement of the transaction needs `group` while the current leg (idle, in the transaction)
   * is on another: 'go' once the transaction's part there is current (or a new server is to be
   * attached for it, the session's attachGroup set by the caller), or a refusal.
   */
  moveTo(f: TypedFrame, group: string): 'go' | 'next' | 'wait' {
    if (this.decider === null)
      return this.refuse(
        f,
        SqlState.FEATURE_NOT_SUPPORTED,
        'transactions on several groups need the sharding host',
      );
    const leg = this.s.leg!;
    const settings = this.s.tx.localSet ? null : settingsReplay(this.s.tx.settings);
    if (settings === null)
      return this.refuse(
        f,
        SqlState.FEATURE_NOT_SUPPORTED,
        'this transaction ran SET LOCAL, SET TRANSACTION or SET CONSTRAINTS, which the proxy cannot carry to another group: give the isolation level in BEGIN, or set it for the session',
      );
    if (!this.s.multiGroup) this.boundLocks(leg);
    this.s.park();
    if (this.s.unpark(group)) {
      // The transaction's SETs so far hold on this part too (SET twice is the same SET).
      if (settings !== '') this.track(this.s.leg!, runOwn(this.s.record, this.s.leg!, settings));
      return 'go';
    }
    this.joining = true;
    return 'go';
  }

  /** Before the first message on a new leg of the transaction: its part begins. */
  beforeForward(leg: ServerLeg): void {
    if (!this.joining) return;
    this.joining = false;
    const parts = [this.beginText ?? 'BEGIN'];
    if (!this.hasOwnLockTimeout()) parts.push(`SET LOCAL lock_timeout = '${MULTI_GROUP_LOCK_TIMEOUT}'`);
    const settings = settingsReplay(this.s.tx.settings);
    if (settings) parts.push(settings);
    for (const sp of this.savepoints) parts.push(`SAVEPOINT ${quoted(sp)}`);
    this.track(leg, runOwn(this.s.record, leg, parts.map((p) => p.replace(/;\s*$/, '')).join('; ')));
  }

  /** The first leg of a transaction that becomes one on several groups gets the lock bound too. */
  private boundLocks(leg: ServerLeg): void {
    if (this.hasOwnLockTimeout()) return;
    this.track(leg, runOwn(this.s.record, leg, `SET LOCAL lock_timeout = '${MULTI_GROUP_LOCK_TIMEOUT}'`));
  }

  private hasOwnLockTimeout(): boolean {
    return this.s.record.settings.has('lock_timeout');
  }

  /**
   * An own statement sent on `leg`: the end waits for it; its failure breaks the transaction
   * there, until a ROLLBACK TO (`recovers`) succeeds there.
   */
  private track(leg: ServerLeg, p: Promise<OwnQueryResult>, recovers = false): void {
    const before = this.broadcasts;
    this.broadcasts = Promise.all([
      before,
      p.then((r) => {
        if (r.error !== null) {
          if (!this.broken.has(leg.group)) this.broken.set(leg.group, r.error);
        } else if (recovers) this.broken.delete(leg.group);
      }),
    ]);
  }

  /**
   * Transaction control of a transaction on several groups (a Query, or a Bind's text): the end
   * is the proxy's; a savepoint command goes to every part; other control beside statements in
   * one Query is refused. 'pass' lets `f` go on as usual.
   */
  controlStep(f: TypedFrame, text: string): 'pass' | 'next' | 'wait' {
    const single = f.type === 'B' || f.type === 'P' || !/;\s*\S/.test(text.replace(/;\s*$/, ''));
    if (single) {
      if (TX_END.test(text)) return this.end(f, text);
      if (CHAIN.test(text) || /^\s*prepare\s+transaction\b/i.test(text))
        return this.refuse(
          f,
          SqlState.FEATURE_NOT_SUPPORTED,
          'a transaction on several groups ends with COMMIT or ROLLBACK alone (no AND CHAIN, no PREPARE TRANSACTION)',
        );
      this.savepointCommand(text);
      return 'pass';
    }
    if (splitStatements(text).some((st) => CONTROL.test(st.text)))
      return this.refuse(
        f,
        SqlState.FEATURE_NOT_SUPPORTED,
        'in a transaction on several groups, transaction control (COMMIT, ROLLBACK, SAVEPOINT …) must be sent alone, not in a Query with other statements',
      );
    return 'pass';
  }

  /** Follows the savepoints of any transaction (single group too: it may move later). */
  noteSavepoint(text: string): void {
    if (!this.s.multiGroup) this.apply(text);
  }

  private savepointCommand(text: string): void {
    if (!this.apply(text)) return;
    // Every other part does the same (the current one runs the client's own statement).
    const others = this.s.txLegs().slice(1);
    const recovers = ROLLBACK_TO.test(text);
    for (const l of others) this.track(l, runOwn(this.s.record, l, text.replace(/;\s*$/, '')), recovers);
  }

  /** Updates the savepoint list for `text`: true when it was a savepoint command. */
  private apply(text: string): boolean {
    let m = SAVEPOINT.exec(text);
    if (m) {
      this.savepoints.push(ident(m[1]!));
      return true;
    }
    m = RELEASE.exec(text);
    if (m) {
      const at = this.savepoints.lastIndexOf(ident(m[1]!));
      if (at >= 0) this.savepoints.length = at;
      return true;
    }
    m = ROLLBACK_TO.exec(text);
    if (m) {
      const at = this.savepoints.lastIndexOf(ident(m[1]!));
      if (at >= 0) this.savepoints.length = at + 1;
      return true;
    }
    return false;
  }

  /** The transaction ended on its only group (or never moved): nothing to remember. */
  reset(): void {
    if (this.beginText === null && this.savepoints.length === 0 && !this.joining && this.broken.size === 0)
      return;
    this.beginText = null;
    this.savepoints = [];
    this.joining = false;
    this.broken.clear();
  }

  /** COMMIT / END / ROLLBACK / ABORT of a transaction on several groups. */
  private end(f: TypedFrame, text: string): 'next' | 'wait' {
    const s = this.s;
    // The current leg's replies to the client come first (its drain wakes this up again); the
    // parked legs may still run the proxy's own queries (savepoints, lock_timeout): the end
    // waits for those (broadcasts) and queues behind them.
    if (s.leg !== null && !s.leg.idle) return 'wait';
    let replies: readonly Buffer[];
    let count: number;
    if (f.type === 'Q') {
      count = 1;
      replies = [Buffer.alloc(0), readyForQuery('I')];
    } else {
      const b = beginBatch(
        s.inbox,
        (bind) => boundText(s.record, bind, this.unnamedText()),
        (t) => TX_END.test(t),
        true,
      );
      if (b === 'wait') return 'wait';
      if (b !== null && b.describeOnly === true && b.parsed !== null) {
        // Learnt before it runs (postgres.js): answered here; its Bind ends the transaction.
        s.inbox.splice(0, b.count);
        this.remember(b.parsed.name, b.parsed.frame);
        for (const r of b.replies) s.replyInOrder(r[0] === 0x5a ? readyForQuery(s.tx.status) : r);
        return 'next';
      }
      if (b === null || b.describeOnly === true)
        return this.refuse(
          f,
          SqlState.FEATURE_NOT_SUPPORTED,
          'a transaction on several groups ends with COMMIT or ROLLBACK prepared and executed alone',
        );
      if (b.parsed !== null) this.remember(b.parsed.name, b.parsed.frame);
      count = b.count;
      replies = b.replies;
    }
    s.inbox.splice(0, count);
    const commit = /^\s*(commit|end)\b/i.test(text) && s.tx.status !== 'E';
    const legs = s.txLegs();
    const captureLsn = s.tx.needLsn;
    s.beginEnding();
    const decider = this.decider!;
    const broadcasts = this.broadcasts;
    s.waitFor(
      (async () => {
        await broadcasts;
        // A part the proxy could not keep in step (a savepoint it lacked): the whole rolls back.
        const first = [...this.broken][0];
        const broken = first === undefined ? null : { group: first[0], error: first[1] };
        this.reset();
        const end = await endOnGroups(s.record, legs, commit && broken === null, decider, captureLsn);
        s.endedOnGroups(end.committed);
        const reply =
          commit && broken !== null
            ? buildErrorResponse(
                'ERROR',
                SqlState.TRANSACTION_ROLLBACK,
                `the transaction was rolled back: its part on group ${broken.group} failed (${errorMessage(broken.error)})`,
              )
            : end.reply;
        return replies.map((r) =>
          r.length === 0 || r[0] === 0x43 ? reply : r[0] === 0x5a ? readyForQuery('I') : r,
        );
      })().catch((e: unknown) => {
        s.endedOnGroups(false);
        return [
          buildErrorResponse('ERROR', SqlState.INTERNAL_ERROR, `ending the transaction failed: ${String(e)}`),
          readyForQuery('I'),
        ];
      }),
    );
    return 'next';
  }
}

/** The message of a whole ErrorResponse. */
function errorMessage(e: Buffer): string {
  const d = decodeErrorResponse(e.subarray(5));
  return (d.ok ? d.value.fields.find((f) => f.code === 'M')?.value : undefined) ?? 'an error';
}
