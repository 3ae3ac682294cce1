/**
 * Sharding inside a session (its steps; the targets are in shard-target.ts): each client message
 * is placed on the group its shards live on before it is forwarded. Between transactions the
 * server is given back and the next one attached on that group; inside a transaction a statement
 * on another group fails it (0A000) as an error in PostgreSQL would; BEGIN is held back until the
 * transaction's first statement, so the transaction runs on that statement's group; the Citus API
 * calls, and statements on several groups outside transaction blocks, are answered by the
 * sharding host; so is COPY … FROM STDIN into a catalog table (shard-copy.ts). Made only for sessions of sharded databases.
 */
import type { TypedFrame } from '../../protocol/framer.js';
import { sessionSearchPath } from './search-path-value.js';
import { decodeParse, encodeFrontendMessage } from '../../protocol/frontend-messages.js';
import type { decodeQuery } from '../../protocol/frontend-messages.js';
import { buildErrorResponse } from '../../protocol/error-response.js';
import { SqlState } from '../../protocol/sqlstate.js';
import type { Analyzer } from '../../sql/analyze.js';
import { commandComplete, readyForQuery } from '../rewrite.js';
import type { ClientRecord } from './client-record.js';
import type { ForwardContext, TxState } from './context.js';
import { endsWithReadyForQuery, ownQuery } from './pending.js';
import type { ServerLeg } from './server-leg.js';
import { extendedReplies, hostBatch } from './host-extended.js';
import { beginBatch } from './shard-extended.js';
import { HOME, bindAfter, boundText, fastOrGeneral, generalFor } from './shard-target.js';
import { MultiGroupTx } from './shard-tx.js';
import type { MultiGroupSession } from './shard-tx.js';
import type { SessionSharding, ShardTarget } from './shard-target.js';
import { ShardCopy } from './shard-copy.js';
import {
  ABORTED,
  BEGIN_ONLY,
  CROSS_GROUP,
  DATA_FREE,
  GLOBAL_AFTER_WRITE,
  GLOBAL_REPREPARE,
  HELD_COPY,
  PINNED_GROUP,
  TX_END,
  raiseSql,
  withText,
} from './shard-step-texts.js';
import { apiStep, rememberStatement } from './shard-api.js';
import { placeAhead, targetAt } from './shard-placement.js';
import type { StepHost } from './shard-api.js';
import { armExplain, explainHostReplies, explainNoteOf } from './shard-explain.js';
import type { ExplainNote } from './explain-note.js';
import { mayBeExplain } from '../../sharding/explain-route.js';

/** What factsOf() tells of a statement text. */
const TEXT_BEGIN = 1;
const TEXT_API = 2;
const TEXT_EXPLAIN = 4;
/** Texts whose facts a session keeps (then it starts again). */
const TEXT_FACTS_MAX = 256;

/** Where transaction control may start (a cheap test before the patterns). */
const CONTROL_START = /^\s*(?:--[^\n]*\n\s*)*[cCeErRaAsSpPbB]/;

/** What the steps use of their session. */
export interface ShardSession extends ForwardContext, MultiGroupSession {
  readonly record: ClientRecord;
  readonly tx: TxState;
  readonly analyzer: Analyzer;
  /** The client's messages not forwarded yet (the head is the one being placed). */
  readonly inbox: TypedFrame[];
  /** The leg the client's messages go to now, or null. */
  readonly leg: ServerLeg | null;
  /** The database's own group (local tables). */
  readonly homeGroup: string;
  queryOf(f: TypedFrame): ReturnType<typeof decodeQuery>;
  replyInOrder(bytes: Buffer): void;
  forward(leg: ServerLeg, f: TypedFrame): void;
  waitFor(answer: Promise<Buffer[]>): void;
  /** Gives the server back for work elsewhere: true when done now (ServerHolder.switchToPrimary). */
  switchServer(outsideTx: boolean): boolean;
  /** Ends the client's connection with `fatal`. */
  end(fatal: Buffer): void;
  /** Stops / resumes reading the client (a COPY's groups are behind). */
  holdClient(): void;
  releaseClient(): void;
}

export class ShardSteps {
  /** The group the next attachment goes to (the database's own unless a statement says). */
  attachGroup: string;
  /** An extended-protocol message was refused here: the rest up to Sync is skipped, as PostgreSQL does. */
  skipToSync = false;
  /** The text of the client's unnamed statement (a Bind of it is routed by it). */
  private unnamedText: string | null = null;
  /**
   * A BEGIN answered here and not sent yet: the transaction's group is known only at its first
   * statement that touches shards; BEGIN goes there first, then that statement.
   */
  private deferredBegin: string | null = null;
  /** The deferred transaction failed here (a refused statement): only its end is accepted. */
  private deferredFailed = false;
  /** A Sync was sent to the attached server before a statement goes to the host (hostStep). */
  private hostSynced = false;
  /** A COPY … FROM STDIN split by the host (shard-copy.ts). */
  private readonly copy: ShardCopy;
  /** What the Citus API steps (shard-api.ts) use of these steps. */
  private readonly apiHost: StepHost;
  /** The last Query rewritten for the global tables (globalStep). */
  private globalFrame: TypedFrame | null = null;
  /** The route of the EXPLAIN step() let go: its leg is armed with it as it is forwarded. */
  private explainNote: ExplainNote | null = null;
  /** A transaction block on several groups (shard-tx.ts). */
  private readonly multi: MultiGroupTx;
  /**
   * The Bind whose statement text was looked up last in this step() (each step asks: held
   * BEGIN, API call, target, EXPLAIN), with the unnamed statement's text then and the answer.
   */
  private boundFrame: TypedFrame | null = null;
  private boundUnnamed: string | null = null;
  private boundValue: string | null = null;
  /** What the steps ask of a prepared statement's text (TEXT_BEGIN …), by text, bounded. */
  private readonly textFacts = new Map<string, number>();

  constructor(
    private readonly s: ShardSession,
    private readonly sharding: SessionSharding,
  ) {
    this.attachGroup = s.homeGroup;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const steps = this;
    this.apiHost = {
      s,
      sharding,
      get unnamedText() {
        return steps.unnamedText;
      },
      set unnamedText(v) {
        steps.unnamedText = v;
      },
      refuse: (f, sqlstate, message) => this.refuse(f, sqlstate, message),
      searchPath: () => this.searchPath(),
      boundText: (f) => this.boundText(f),
      isApiText: (text) => (this.factsOf(text) & TEXT_API) !== 0,
    };
    this.multi = new MultiGroupTx(
      s,
      sharding.decider ?? null,
      (f, sqlstate, message) => this.refuse(f, sqlstate, message),
      (name, frame) => rememberStatement(s, name, frame),
      () => this.unnamedText,
    );
    this.copy = new ShardCopy(s, sharding, () => {
      this.deferredFailed = true;
      this.s.tx.status = 'E';
    });
  }

  /**
   * Message `f` belongs to a COPY the host runs (or is a leftover of one, with no server to drop
   * it): handled, true. Called before anything else looks at `f`.
   */
  copyStep(f: TypedFrame): boolean {
    return this.copy.step(f, this.s.leg === null);
  }

  /** The client left. */
  close(): void {
    this.copy.close();
  }

  /**
   * A read that needs several groups: the client's Query or Parse is replaced by one of the
   * rewritten text (the global tables on group 0), then routed again as that (group 0). A Bind of
   * a statement prepared earlier with the original text cannot be: it would read group 0's
   * shards only, so it is refused.
   */
  private globalStep(f: TypedFrame, t: Extract<ShardTarget, { kind: 'global' }>): 'next' | 'wait' {
    if (this.s.tx.wrote && this.s.tx.status !== 'I')
      return this.refuse(f, SqlState.FEATURE_NOT_SUPPORTED, GLOBAL_AFTER_WRITE);
    const r = withText(f, t.text);
    if (r === null) return this.refuse(f, SqlState.FEATURE_NOT_SUPPORTED, GLOBAL_REPREPARE);
    this.s.inbox[0] = r.frame;
    if (r.statement === null) this.globalFrame = r.frame;
    else if (r.statement === '') this.unnamedText = t.text;
    return 'next';
  }

  /** COPY … FROM STDIN into a catalog table: a simple-protocol Query outside transaction blocks. */
  private copyStart(f: TypedFrame, t: Extract<ShardTarget, { kind: 'copy' }>): 'next' | 'wait' {
    if (f.type !== 'Q')
      return this.refuse(
        f,
        SqlState.FEATURE_NOT_SUPPORTED,
        `${t.reason}: the proxy splits its rows when the COPY is sent as a simple Query, not in the extended protocol`,
      );
    // Inside a transaction block only as its first statement (psycopg2's default: BEGIN, COPY,
    // COMMIT): the transaction is then the COPY's, on its groups, until COMMIT or ROLLBACK.
    const first = this.deferredBegin !== null && !this.deferredFailed && this.s.leg === null;
    if (!first && this.s.tx.status !== 'I')
      return this.refuse(
        f,
        SqlState.FEATURE_NOT_SUPPORTED,
        `${t.reason}: its rows go to several groups, which inside a transaction block is supported only as the block's first statement`,
      );
    const leg = this.s.leg;
    if (leg !== null && !leg.idle) return 'wait';
    this.copy.start(t.work, first);
    return 'next';
  }

  /**
   * A BEGIN is held back, or a transaction moves to a new group: the transaction runs on the
   * primary of the group it is placed on.
   */
  get beginHeld(): boolean {
    return this.deferredBegin !== null || this.multi.joiningGroup;
  }

  /** Called before the first message of a transaction is forwarded on `leg`: the held BEGIN goes first. */
  beforeForward(leg: ServerLeg): void {
    if (this.deferredBegin !== null) {
      // Its reply was given already.
      leg.send(encodeFrontendMessage({ name: 'Query', query: this.deferredBegin }));
      leg.expect(ownQuery());
      this.multi.began(this.deferredBegin);
      this.deferredBegin = null;
    }
    this.multi.beforeForward(leg);
    this.armExplain(leg);
  }

  /** An EXPLAIN let go by step() is forwarded now: its replies show its route (shard-explain.ts). */
  private armExplain(leg: ServerLeg): void {
    if (this.explainNote === null) return;
    armExplain(leg, this.explainNote);
    this.explainNote = null;
  }

  /**
   * A BEGIN prepared and executed with the extended protocol: answered here and held back like a
   * simple-protocol one (beginBatch). True when the head of the inbox was one ('wait': not all of
   * it has come).
   */
  private deferExtendedBegin(): boolean | 'wait' {
    const b = beginBatch(
      this.s.inbox,
      (bind) => this.boundText(bind),
      (t) => (this.factsOf(t) & TEXT_BEGIN) !== 0,
    );
    if (b === null || b === 'wait') return b === 'wait' ? 'wait' : false;
    this.s.inbox.splice(0, b.count);
    if (b.parsed !== null) rememberStatement(this.s, b.parsed.name, b.parsed.frame);
    else if (b.unnamedParse) this.unnamedText = b.text;
    this.deferredBegin = b.text;
    this.s.tx.status = 'T';
    for (const r of b.replies) this.s.replyInOrder(r);
    return true;
  }

  /**
   * A statement on several groups (DDL on catalog tables, a reference-table write, a split
   * INSERT): run by the sharding host, atomically on every group concerned, outside transaction
   * blocks only (a transaction on several groups is not built yet). A Query, or in the extended
   * protocol a batch of the statement alone through its Sync (host-extended.ts).
   */
  private hostStep(f: TypedFrame, t: Extract<ShardTarget, { kind: 'host' }>): 'next' | 'wait' {
    const leg = this.s.leg;
    if (this.deferredBegin !== null || this.s.tx.status !== 'I') {
      return this.refuse(
        f,
        SqlState.FEATURE_NOT_SUPPORTED,
        `${t.reason}: it runs on several groups, which is not supported inside a transaction block yet`,
      );
    }
    // An extended-protocol pipeline not synced yet is one implicit transaction on the attached
    // server, and its Sync is behind this statement: waiting for it would wait forever.
    if (leg !== null && !leg.idle && !endsWithReadyForQuery(leg.pending))
      return this.refuse(f, SqlState.FEATURE_NOT_SUPPORTED, `${t.reason}: ${CROSS_GROUP}`);
    // Replies still due from the server come first.
    if (leg !== null && !leg.idle) return 'wait';
    if (f.type === 'Q') {
      const note = this.explainOf(f);
      this.s.inbox.shift();
      this.s.waitFor(this.sharding.host(t.work).then((r) => explainHostReplies(note, this.s.homeGroup, r)));
      return 'next';
    }
    const batch = hostBatch(this.s.inbox);
    if (batch === 'wait') return 'wait';
    if (leg !== null && !this.hostSynced && !('refused' in batch)) {
      // The statement was prepared on the attached server, maybe without a Sync (postgres.js:
      // Parse, Describe, Flush): its implicit transaction there holds locks on the tables the
      // host is about to change. A Sync ends it (its ReadyForQuery swallowed).
      // The server is then given back (the host needs none of it), and the batch goes on.
      this.hostSynced = true;
      leg.send(encodeFrontendMessage({ name: 'Sync' }));
      leg.expect(ownQuery());
      return this.s.switchServer(true) ? 'next' : 'wait';
    }
    this.hostSynced = false;
    if ('refused' in batch) {
      return this.refuse(
        f,
        SqlState.FEATURE_NOT_SUPPORTED,
        `${t.reason}: it runs on several groups, which the proxy does in the extended protocol for Parse, Bind, Describe, Execute and Sync of the statement alone (${batch.refused})`,
      );
    }
    const note = this.explainOf(this.s.inbox.find((m) => m.type === 'B') ?? f);
    this.s.inbox.splice(0, batch.count);
    this.s.waitFor(
      this.sharding
        .host({ ...t.work, params: batch.params })
        .then((r) => extendedReplies(batch, explainHostReplies(note, this.s.homeGroup, r))),
    );
    return 'next';
  }

  /** The route note of `f` when it runs an EXPLAIN (shard-explain.ts), else null. */
  private explainOf(f: TypedFrame): ExplainNote | null {
    // A text rewritten for the global tables: its plan shows every group's foreign scans itself.
    if (f === this.globalFrame) return null;
    return explainNoteOf(
      this.s,
      this.sharding,
      f,
      (bind) => this.boundText(bind),
      (t) => (this.factsOf(t) & TEXT_EXPLAIN) !== 0,
    );
  }

  /** A Bind of the statement Parse `f` prepares is queued after it. */
  private bindFollows(f: TypedFrame): boolean {
    const p = decodeParse(f.payload);
    return p.ok && bindAfter(this.s.inbox, 1, p.value.statement) !== null;
  }

  /** The message after a refused extended-protocol one: skipped, and a Sync answered. */
  skip(f: TypedFrame): void {
    this.s.inbox.shift();
    if (f.type !== 'S') return;
    this.skipToSync = false;
    this.s.replyInOrder(readyForQuery(this.s.tx.status));
  }

  /**
   * Routes message `f` (the inbox's head) by its shards: 'go' forwards it (this.attachGroup says
   * where a new attachment goes), 'next' means it was answered or the server given back (loop on),
   * 'wait' that it waits (for the leg to finish, or for the Bind that follows a Parse).
   */
  step(f: TypedFrame): 'go' | 'next' | 'wait' {
    this.explainNote = null;
    this.boundFrame = null;
    if (!this.sharding.active) {
      // No table is sharded yet: only the API calls are the proxy's.
      return f.type === 'Q' || f.type === 'P' || f.type === 'B' || f.type === 'D'
        ? apiStep(this.apiHost, f)
        : 'go';
    }
    const held = this.s.leg;
    // Outside a transaction block nothing of the last one is kept (its BEGIN text, savepoints).
    if (this.s.tx.status === 'I' && this.deferredBegin === null) this.multi.reset();
    if (
      (f.type === 'P' || f.type === 'B') &&
      this.deferredBegin === null &&
      this.s.tx.status === 'I' &&
      (held === null || held.idle)
    ) {
      const begin = this.deferExtendedBegin();
      if (begin === 'wait') return 'wait';
      if (begin) return 'next';
    }
    if (this.deferredFailed && (f.type === 'P' || f.type === 'B')) {
      // A statement of a held-back transaction that failed here: as PostgreSQL, refused until its end.
      return this.refuse(f, SqlState.IN_FAILED_SQL_TRANSACTION, ABORTED);
    }
    if (
      f.type === 'Q' &&
      (held === null || (held.idle && (this.s.tx.status === 'I' || this.deferredBegin !== null)))
    ) {
      const q = this.s.queryOf(f);
      if (q.ok && this.deferTransactionControl(q.value.query)) return 'next';
    }
    if (this.s.tx.status !== 'I' && (f.type === 'Q' || f.type === 'P' || f.type === 'B')) {
      const c = this.transactionControl(f);
      if (c !== 'pass') return c;
    }
    if (this.copy.holding && !this.deferredFailed && (f.type === 'Q' || f.type === 'P' || f.type === 'B')) {
      // A transaction whose COPY ran on several groups: only its end is supported (issue #16).
      return this.refuse(f, SqlState.FEATURE_NOT_SUPPORTED, HELD_COPY);
    }
    if (f.type === 'Q' || f.type === 'P' || f.type === 'B' || f.type === 'D') {
      const api = apiStep(this.apiHost, f);
      if (api !== 'go') return api;
    }
    let t = this.targetOf(f);
    if (t === 'wait') return 'wait';
    if (t !== null && t.kind === 'held') {
      // A move's cutover holds its shards (shard-hold.ts): a transaction already on the source
      // group goes on there (it must be able to finish); anything else waits and is routed again.
      const inTx = this.deferredBegin === null && this.s.tx.status !== 'I';
      if (!t.hold.letsThrough(this.s.leg, inTx)) {
        this.s.waitFor(t.hold.released.then(() => []));
        return 'next';
      }
      t = { kind: 'group', group: t.hold.spec.group };
    }
    if (t !== null && t.kind === 'host' && t.general !== undefined) {
      const l = this.s.leg;
      // In a transaction block, or in a pipeline not synced yet on the attached server.
      const inTx = this.deferredBegin !== null || this.s.tx.status !== 'I';
      const piped = l !== null && !l.idle && !endsWithReadyForQuery(l.pending);
      t = fastOrGeneral(
        t,
        inTx || piped || generalFor(f, this.s.inbox, this.bindFollows(f)),
        this.s.record.settings,
      );
    }
    if (t !== null && t.kind === 'host' && f.type === 'P' && !this.bindFollows(f)) {
      // Prepared and described alone (postgres.js): group 0 answers; its Bind comes to the host.
      t = HOME;
    }
    const leg = this.s.leg;
    const home = this.s.homeGroup;
    if (t !== null && t.kind === 'refuse') return this.refuse(f, t.sqlstate, t.message);
    if (t !== null && t.kind === 'host') return this.hostStep(f, t);
    if (t !== null && t.kind === 'copy') return this.copyStart(f, t);
    if (t !== null && t.kind === 'global') return this.globalStep(f, t);
    this.explainNote = f.type === 'Q' || f.type === 'B' ? this.explainOf(f) : null;
    if (this.deferredBegin !== null && t === null && !DATA_FREE.has(f.type)) {
      // Nothing to place the transaction by yet: look further along what the client has sent.
      const ahead = placeAhead(this.apiHost);
      if (ahead !== null) {
        this.attachGroup = ahead;
        if (leg === null) return 'go';
      }
    }
    const want = t === null || t.kind === 'any' ? null : t.kind === 'group' ? t.group : home;
    if (leg === null) {
      // A pinned session (session pooling, session state) keeps one connection: its database's own.
      this.attachGroup = this.s.record.pinned ? home : (want ?? home);
      if (want === null || want === this.attachGroup) return 'go';
    } else if (want === null || leg.group === want) return 'go';
    if (leg === null || this.s.record.pinned) {
      return this.refuse(f, SqlState.FEATURE_NOT_SUPPORTED, PINNED_GROUP);
    }
    if (!leg.idle && !endsWithReadyForQuery(leg.pending)) {
      // An extended-protocol pipeline with no Sync yet is one implicit transaction on one server.
      return this.refuse(f, SqlState.FEATURE_NOT_SUPPORTED, CROSS_GROUP);
    }
    // A held-back BEGIN has not reached the server: it holds no transaction yet.
    const outsideTx = this.s.tx.status === 'I' || this.deferredBegin !== null;
    if (!outsideTx) {
      if (!leg.idle) return 'wait';
      // A failed transaction: the current group answers 25P02, as PostgreSQL would.
      if (this.s.tx.status === 'E') return 'go';
      // The transaction goes on on `want` too (shard-tx.ts).
      const moved = this.multi.moveTo(f, want);
      if (moved === 'go' && this.s.leg === null) this.attachGroup = want;
      return moved;
    }
    // Between transactions: the next one goes to the other group once this server is given back.
    this.attachGroup = want;
    return this.s.switchServer(outsideTx) ? 'next' : 'wait';
  }

  /**
   * BEGIN with no server attached is answered here and sent later, with the transaction's first
   * statement, to that statement's group; COMMIT or ROLLBACK of a transaction that never reached a
   * server is answered here too. True when `sql` was one of those.
   */
  private deferTransactionControl(sql: string): boolean {
    const tx = this.s.tx;
    if (this.deferredBegin === null) {
      if (tx.status !== 'I' || !BEGIN_ONLY.test(sql)) return false;
      this.s.inbox.shift();
      this.deferredBegin = sql;
      tx.status = 'T';
      this.s.replyInOrder(commandComplete('BEGIN'));
      this.s.replyInOrder(readyForQuery('T'));
      return true;
    }
    const end = TX_END.exec(sql);
    if (end === null) {
      if (!this.deferredFailed) return false;
      this.s.inbox.shift();
      this.s.replyInOrder(buildErrorResponse('ERROR', SqlState.IN_FAILED_SQL_TRANSACTION, ABORTED));
      this.s.replyInOrder(readyForQuery('E'));
      return true;
    }
    this.s.inbox.shift();
    const commit = /^(commit|end)$/i.test(end[1]!) && !this.deferredFailed;
    this.deferredBegin = null;
    this.deferredFailed = false;
    tx.status = 'I';
    if (this.copy.holding) {
      // The transaction of a COPY on several groups ends there (its COPY committed or not).
      this.s.waitFor(this.copy.endHeld(commit));
      return true;
    }
    this.s.replyInOrder(commandComplete(commit ? 'COMMIT' : 'ROLLBACK'));
    this.s.replyInOrder(readyForQuery('I'));
    return true;
  }

  /**
   * Transaction control inside a transaction block: in one on several groups its end is the
   * proxy's and savepoints go to every part; elsewhere savepoints are only followed (the
   * transaction may move later). 'pass': `f` goes on as usual.
   */
  private transactionControl(f: TypedFrame): 'pass' | 'next' | 'wait' {
    let text: string | null = null;
    if (f.type === 'Q') {
      const q = this.s.queryOf(f);
      if (q.ok) text = q.value.query;
    } else if (f.type === 'P') {
      const p = decodeParse(f.payload);
      if (p.ok) text = p.value.query;
    } else text = this.boundText(f);
    if (text === null) return 'pass';
    if (this.s.multiGroup) {
      // A Query of several statements may hide COMMIT or ROLLBACK after its first.
      if (CONTROL_START.test(text) || (f.type === 'Q' && /;\s*\S/.test(text)))
        return this.multi.controlStep(f, text);
      return 'pass';
    }
    if (f.type !== 'P' && CONTROL_START.test(text)) this.multi.noteSavepoint(text);
    return 'pass';
  }

  /**
   * The text of the statement Bind `f` names (boundText), decoded once for the message however
   * many steps ask within one step() (the memo is dropped at each step(): nothing the answer
   * depends on changes within one, but a Parse or Close between two may).
   */
  private boundText(f: TypedFrame): string | null {
    if (this.boundFrame === f && this.boundUnnamed === this.unnamedText) return this.boundValue;
    const text = boundText(this.s.record, f, this.unnamedText);
    this.boundFrame = f;
    this.boundUnnamed = this.unnamedText;
    this.boundValue = text;
    return text;
  }

  /**
   * Whether a Bind's statement text is a BEGIN, a Citus API call, an EXPLAIN (TEXT_* bits):
   * remembered per text, as a prepared statement's Binds bring the same text again and again.
   */
  private factsOf(text: string): number {
    let facts = this.textFacts.get(text);
    if (facts === undefined) {
      facts =
        (BEGIN_ONLY.test(text) ? TEXT_BEGIN : 0) |
        (this.sharding.isApi(text) ? TEXT_API : 0) |
        (mayBeExplain(text) ? TEXT_EXPLAIN : 0);
      if (this.textFacts.size >= TEXT_FACTS_MAX) this.textFacts.clear();
      this.textFacts.set(text, facts);
    }
    return facts;
  }

  /** The session's search_path now (SQL text; undefined: the default), for the planner. */
  private searchPath(): string | undefined {
    return sessionSearchPath(this.s.record.settings, this.s.record.startupSettings, this.s.tx.settings);
  }

  /** Where message `f` must run by its shards; null: anywhere (no preference); 'wait': more input first. */
  private targetOf(f: TypedFrame): ShardTarget | null | 'wait' {
    return targetAt(this.apiHost, f, 0);
  }

  /**
   * Answers message `f` with an error instead of running it. Outside a transaction the proxy
   * answers; inside one, the server's transaction must fail as PostgreSQL's would, so a Query is
   * replaced by one that raises the error there. An extended-protocol message in a transaction
   * or pipeline cannot be failed that way: the client's connection ends with the error (FATAL).
   */
  refuse(f: TypedFrame, sqlstate: string, message: string): 'next' | 'wait' {
    const leg = this.s.leg;
    if (this.deferredBegin !== null && (leg === null || leg.idle)) {
      // The deferred transaction fails as PostgreSQL's would: only its end is accepted now.
      this.deferredFailed = true;
      this.s.tx.status = 'E';
      this.s.inbox.shift();
      this.s.replyInOrder(buildErrorResponse('ERROR', sqlstate, message));
      if (f.type === 'Q') this.s.replyInOrder(readyForQuery('E'));
      else this.skipToSync = true;
      return 'next';
    }
    const inTx = leg !== null && (this.s.tx.status !== 'I' || !leg.idle);
    if (inTx && !leg.idle && !endsWithReadyForQuery(leg.pending)) {
      // Inside an extended-protocol pipeline not yet synced (an implicit transaction on the
      // server): nothing can fail that transaction the way PostgreSQL would, so the connection ends.
      this.s.inbox.length = 0;
      this.s.end(buildErrorResponse('FATAL', sqlstate, message));
      return 'wait';
    }
    if (inTx) {
      if (!leg.idle) return 'wait';
      // In a transaction block: the server's transaction fails too (a statement that raises, its
      // replies swallowed), and the client gets the error, as from PostgreSQL itself.
      this.s.inbox.shift();
      leg.send(encodeFrontendMessage({ name: 'Query', query: raiseSql(sqlstate, message) }));
      leg.expect(ownQuery());
      this.s.tx.status = 'E';
      this.s.replyInOrder(buildErrorResponse('ERROR', sqlstate, message));
      if (f.type === 'Q') this.s.replyInOrder(readyForQuery('E'));
      else this.skipToSync = true;
      return 'next';
    }
    this.s.inbox.shift();
    this.s.replyInOrder(buildErrorResponse('ERROR', sqlstate, message));
    if (f.type === 'Q') this.s.replyInOrder(readyForQuery(this.s.tx.status));
    else this.skipToSync = true;
    return 'next';
  }
}
