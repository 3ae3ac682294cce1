/**
 * Sharding inside a session (its steps; the targets are in shard-target.ts): each client message
 * is placed on the group its shards live on before it is forwarded. Between transactions the
 * server is given back and the next one attached on that group; inside a transaction a statement
 * on another group fails it (0A000) as an error in PostgreSQL would; BEGIN is held back until the
 * transaction's first statement, so the transaction runs on that statement's group; the Citus API
 * calls, and statements on several groups outside transaction blocks, are answered by the
 * sharding host; so is COPY … FROM STDIN into a catalog table (shard-copy.ts). Made only for sessions of sharded databases.
 */
import { TypedMessage } from '../../protocol/framer.js';
import type { TypedFrame } from '../../protocol/framer.js';
import { sessionSearchPath } from './search-path-value.js';
import { decodeDescribe, decodeParse, encodeFrontendMessage } from '../../protocol/frontend-messages.js';
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
import { beginBatch, withParams } from './shard-extended.js';
import { apiCallOf } from '../../sharding/api-call.js';
import { encodeBackendMessage } from '../../protocol/backend-messages.js';
import { protocolStatementName } from './statement-names.js';
import { tagOf } from './statement-risk.js';
import { renameParse } from '../rewrite.js';
import { HOME, bindAfter, bindParams, boundText } from './shard-target.js';
import type { SessionSharding, ShardTarget } from './shard-target.js';
import { ShardCopy } from './shard-copy.js';
import { armExplain, explainHostReplies, explainNoteOf } from './shard-explain.js';
import type { ExplainNote } from './explain-note.js';

const NO_PARAMS: readonly never[] = [];
const CROSS_GROUP =
  'a transaction on several groups is not supported yet: every statement of a transaction must touch the shards of one group';

/** A Query that only starts a transaction block (its options are kept: sent as written). */
const BEGIN_ONLY = /^\s*(begin|start\s+transaction)\b[^;'"$]*;?\s*$/i;
/** A Query that only ends one. */
const TX_END = /^\s*(commit|end|rollback|abort)\b(?:\s+(?:work|transaction))?\s*;?\s*$/i;
const ABORTED = 'current transaction is aborted, commands ignored until end of transaction block';
/** Messages that never decide a transaction's group: they follow what came before them. */
const DATA_FREE: ReadonlySet<string> = new Set(['D', 'E', 'C', 'H', 'S', 'd', 'c', 'f']);

const GLOBAL_REPREPARE =
  'this prepared statement reads several groups with these parameters, but it was prepared before they were known (a Parse without its Bind): prepare it again together with its Bind, or send it unprepared';
const HELD_COPY =
  'a transaction block that ran a COPY into a sharded table can only end (COMMIT or ROLLBACK): its other statements would need a transaction on several groups';
const PINNED_GROUP =
  'this session keeps one server connection (session pooling, or session state such as temporary tables): statements on shards of other groups need transaction pooling';
const PARSE_COMPLETE = encodeBackendMessage({ name: 'ParseComplete' });
const TYPE_OIDS = { void: 2278, bigint: 20, text: 25 } as const;
const API_EXTENDED =
  'a sharding function (create_distributed_table …) runs in the extended protocol as an unnamed Parse, Bind, Describe, Execute and Sync';
const API_IN_TX = 'the sharding functions (create_distributed_table …) cannot run inside a transaction block';

function nullIfNeedsParams(t: ShardTarget): ShardTarget | null {
  return t.kind === 'needs-params' ? null : t;
}

/** A statement that fails with `sqlstate` and `message` on the server (a transaction there aborts). */
function raiseSql(sqlstate: string, message: string): string {
  const lit = (v: string) => `'${v.replace(/'/g, "''")}'`;
  const body = `BEGIN RAISE EXCEPTION USING ERRCODE = ${lit(sqlstate)}, MESSAGE = ${lit(message.replace(/\$/g, ''))}; END`;
  return `DO $pgscale$${body}$pgscale$`;
}

/** What the steps use of their session. */
export interface ShardSession extends ForwardContext {
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
  /** The last Query rewritten for the global tables (globalStep). */
  private globalFrame: TypedFrame | null = null;
  /** The route of the EXPLAIN step() let go: its leg is armed with it as it is forwarded. */
  private explainNote: ExplainNote | null = null;

  constructor(
    private readonly s: ShardSession,
    private readonly sharding: SessionSharding,
  ) {
    this.attachGroup = s.homeGroup;
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
    if (f.type === 'Q') {
      this.s.inbox[0] = this.globalFrame = TypedMessage.of(
        encodeFrontendMessage({ name: 'Query', query: t.text }),
      );
      return 'next';
    }
    if (f.type === 'P') {
      const p = decodeParse(f.payload);
      if (p.ok) {
        const { statement, paramTypes } = p.value;
        this.s.inbox[0] = TypedMessage.of(
          encodeFrontendMessage({ name: 'Parse', statement, query: t.text, paramTypes }),
        );
        if (statement === '') this.unnamedText = t.text;
        return 'next';
      }
    }
    return this.refuse(f, SqlState.FEATURE_NOT_SUPPORTED, GLOBAL_REPREPARE);
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

  /** A BEGIN is held back: the transaction runs on the primary of the group it is placed on. */
  get beginHeld(): boolean {
    return this.deferredBegin !== null;
  }

  /** Called before the first message of a transaction is forwarded on `leg`: the held BEGIN goes first. */
  beforeForward(leg: ServerLeg): void {
    if (this.deferredBegin !== null) {
      // Its reply was given already.
      leg.send(encodeFrontendMessage({ name: 'Query', query: this.deferredBegin }));
      leg.expect(ownQuery());
      this.deferredBegin = null;
    }
    this.armExplain(leg);
  }

  /** An EXPLAIN let go by step() is forwarded now: its replies show its route (shard-explain.ts). */
  private armExplain(leg: ServerLeg): void {
    if (this.explainNote === null) return;
    armExplain(leg, this.explainNote);
    this.explainNote = null;
  }

  /**
   * A Citus API call: run by the sharding host, outside any transaction. A Query, or in the
   * extended protocol an unnamed Parse of it with its Bind, Describe, Execute and Sync (pgjdbc),
   * its Bind parameters written into the call as literals.
   */
  private apiStep(f: TypedFrame): 'go' | 'next' | 'wait' {
    let text: string;
    if (f.type === 'Q') {
      const q = this.s.queryOf(f);
      if (!q.ok) return 'go';
      text = q.value.query;
    } else if (f.type === 'P') {
      const p = this.s.record.parseOf(f, this.s.analyzer);
      if (!p.ok) return 'go';
      // The unnamed statement's text is always tracked: its Binds are routed by it.
      if (p.value.statement === '') this.unnamedText = p.value.query;
      if (!this.sharding.isApi(p.value.query)) return 'go';
      text = p.value.query;
      if (p.value.statement !== '') {
        // A named statement of the call (postgres.js, a named node-postgres query): prepared here,
        // described here, run when bound (below).
        this.rememberStatement(p.value.statement, f);
        this.s.inbox.shift();
        this.s.replyInOrder(PARSE_COMPLETE);
        return 'next';
      }
    } else if (f.type === 'B') {
      const bound = boundText(this.s.record, f, this.unnamedText);
      if (bound === null) return 'go';
      text = bound;
    } else if (f.type === 'D') {
      return this.describeApi(f);
    } else return 'go';
    if (!this.sharding.isApi(text)) return 'go';
    const leg = this.s.leg;
    if (this.s.tx.status !== 'I' || (leg !== null && !leg.idle)) {
      return this.refuse(f, SqlState.ACTIVE_SQL_TRANSACTION, API_IN_TX);
    }
    if (f.type === 'Q') {
      this.s.inbox.shift();
      this.s.waitFor(this.sharding.api(text, this.searchPath()));
      return 'next';
    }
    const batch = hostBatch(this.s.inbox);
    if (batch === 'wait') return 'wait';
    if ('refused' in batch)
      return this.refuse(f, SqlState.FEATURE_NOT_SUPPORTED, `${API_EXTENDED} (${batch.refused})`);
    this.s.inbox.splice(0, batch.count);
    this.s.waitFor(
      this.sharding
        .api(withParams(text, batch.params), this.searchPath())
        .then((r) => extendedReplies(batch, r)),
    );
    return 'next';
  }

  /** A Describe of a named API statement prepared here: its parameters (text) and result column. */
  private describeApi(f: TypedFrame): 'go' | 'next' {
    const d = decodeDescribe(f.payload);
    if (!d.ok || d.value.target !== 'statement' || d.value.targetName === '') return 'go';
    const text = this.s.record.statements.get(d.value.targetName)?.text;
    if (text === undefined || !this.sharding.isApi(text)) return 'go';
    const n = Math.max(0, ...[...text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
    const parsed = apiCallOf(withParams(text, new Array<string>(n).fill('x')));
    // A call the parser cannot read fully yet (its arguments come at Bind): named by its function.
    const fn = /\bselect\s+(?:[a-z_]+\.)?([a-z_][a-z0-9_]*)\s*\(/i.exec(text)?.[1]?.toLowerCase();
    const call = parsed?.ok
      ? parsed
      : fn === undefined
        ? null
        : { ok: true as const, call: { column: fn, returns: 'text' as const } };
    this.s.inbox.shift();
    this.s.replyInOrder(
      encodeBackendMessage({ name: 'ParameterDescription', typeOids: new Array<number>(n).fill(25) }),
    );
    if (call !== null) {
      this.s.replyInOrder(
        encodeBackendMessage({
          name: 'RowDescription',
          fields: [
            {
              name: call.call.column,
              tableOid: 0,
              columnAttr: 0,
              typeOid: TYPE_OIDS[call.call.returns],
              typeSize: call.call.returns === 'bigint' ? 8 : call.call.returns === 'void' ? 4 : -1,
              typeModifier: -1,
              format: 0,
            },
          ],
        }),
      );
    } else this.s.replyInOrder(encodeBackendMessage({ name: 'NoData' }));
    return 'next';
  }

  /**
   * A BEGIN prepared and executed with the extended protocol: answered here and held back like a
   * simple-protocol one (beginBatch). True when the head of the inbox was one ('wait': not all of
   * it has come).
   */
  private deferExtendedBegin(): boolean | 'wait' {
    const b = beginBatch(this.s.inbox, this.s.record, this.unnamedText, (t) => BEGIN_ONLY.test(t));
    if (b === null || b === 'wait') return b === 'wait' ? 'wait' : false;
    this.s.inbox.splice(0, b.count);
    if (b.parsed !== null) this.rememberStatement(b.parsed.name, b.parsed.frame);
    else if (b.unnamedParse) this.unnamedText = b.text;
    this.deferredBegin = b.text;
    this.s.tx.status = 'T';
    for (const r of b.replies) this.s.replyInOrder(r);
    return true;
  }

  /** A named statement Parse `f` made without a server: the record knows it (re-prepared where bound). */
  private rememberStatement(name: string, f: TypedFrame): void {
    const p = this.s.record.parseOf(f, this.s.analyzer);
    if (!p.ok) return;
    const serverName = protocolStatementName(p.value.query, p.value.paramTypes, tagOf(this.s, p.value.query));
    const facts = p.value.facts;
    this.s.record.ownStatements().set(name, {
      serverName,
      parse: renameParse(f.payload, serverName),
      effects: [],
      risk: facts.risk,
      ddl: facts.ddl,
      seq: facts.sequenceCall,
      read: false,
      text: p.value.query,
    });
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
    return explainNoteOf(this.s, this.sharding, f, this.unnamedText);
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
    if (!this.sharding.active) {
      // No table is sharded yet: only the API calls are the proxy's.
      return f.type === 'Q' || f.type === 'P' || f.type === 'B' || f.type === 'D' ? this.apiStep(f) : 'go';
    }
    const held = this.s.leg;
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
    if (this.copy.holding && !this.deferredFailed && (f.type === 'Q' || f.type === 'P' || f.type === 'B')) {
      // A transaction whose COPY ran on several groups: only its end is supported (issue #16).
      return this.refuse(f, SqlState.FEATURE_NOT_SUPPORTED, HELD_COPY);
    }
    if (f.type === 'Q' || f.type === 'P' || f.type === 'B' || f.type === 'D') {
      const api = this.apiStep(f);
      if (api !== 'go') return api;
    }
    let t = this.targetOf(f);
    if (t === 'wait') return 'wait';
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
      const ahead = this.placeAhead();
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
      return this.refuse(f, SqlState.FEATURE_NOT_SUPPORTED, CROSS_GROUP);
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

  /** The group of the first message queued that names one (a pipeline's first statement on shards). */
  private placeAhead(): string | null {
    for (let i = 1; i < this.s.inbox.length; i++) {
      const g = this.s.inbox[i]!;
      if (g.type !== 'Q' && g.type !== 'P' && g.type !== 'B') continue;
      const t = this.targetAt(g, i);
      if (t === 'wait' || t === null) continue;
      if (t.kind === 'group') return t.group;
      if (t.kind === 'home') return this.s.homeGroup;
      return null;
    }
    return null;
  }

  /** The session's search_path now (SQL text; undefined: the default), for the planner. */
  private searchPath(): string | undefined {
    return sessionSearchPath(this.s.record.settings, this.s.record.startupSettings, this.s.tx.settings);
  }

  /** Where message `f` must run by its shards; null: anywhere (no preference); 'wait': more input first. */
  private targetOf(f: TypedFrame): ShardTarget | null | 'wait' {
    return this.targetAt(f, 0);
  }

  /** targetOf for the message at `at` in the inbox. */
  private targetAt(f: TypedFrame, at: number): ShardTarget | null | 'wait' {
    switch (f.type) {
      case 'Q': {
        const q = this.s.queryOf(f);
        return q.ok ? this.sharding.target(q.value.query, NO_PARAMS, this.searchPath()) : null;
      }
      case 'P': {
        const p = at === 0 ? this.s.record.parseOf(f, this.s.analyzer) : decodeParse(f.payload);
        if (!p.ok) return null;
        const { statement, query } = p.value;
        if (statement === '' && at === 0) this.unnamedText = query;
        const t = this.sharding.target(query, null, this.searchPath());
        if (t.kind !== 'needs-params') return t;
        // Its shards depend on its parameters: route it with the Bind that follows. Without one
        // in this batch it may go anywhere (a Describe round); a Bind later re-prepares it where
        // its shards are. Until a Sync or Flush shows the batch is complete, wait for more.
        const b = bindAfter(this.s.inbox, at + 1, statement);
        if (b !== null) {
          const params = bindParams(b);
          return params === null
            ? null
            : nullIfNeedsParams(this.sharding.target(query, params, this.searchPath()));
        }
        for (let i = at + 1; i < this.s.inbox.length; i++) {
          const type = this.s.inbox[i]!.type;
          if (type === 'S' || type === 'H' || type === 'Q') return null;
        }
        return 'wait';
      }
      case 'B': {
        const text = boundText(this.s.record, f, this.unnamedText);
        if (text === null) return null;
        const params = bindParams(f);
        return params === null
          ? null
          : nullIfNeedsParams(this.sharding.target(text, params, this.searchPath()));
      }
      default:
        return null;
    }
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
