/**
 * A client's session after authentication: the transaction-pooling engine. Each client message is
 * analysed once (its facts: class, proxy-answerable or not), routed by the pure planRoute
 * (session/route.ts) to a local answer or to a server of a group in a role, and translated onto a
 * server leg (session/server-leg.ts, session/forward-*.ts); the legs' replies reach the client
 * through a reply sink. The connection goes back to the pool at ReadyForQuery with status idle once
 * every response the client waits for has come (never mid-pipeline, never inside a transaction or a
 * COPY). What drivers must not notice is kept per client in its record (session/client-record.ts):
 *
 * - named prepared statements (protocol and SQL) get server-side names derived from their text, are
 *   re-prepared on a connection that lacks them, and a Parse the connection already holds is
 *   answered with a synthetic ParseComplete;
 * - SET/RESET of session parameters (and the start-up parameters) are replayed on whichever
 *   connection the client gets, so no client ever sees another's settings; RESET restores the
 *   client's start-up values (reset-rewrite.ts);
 * - state that cannot be replayed (SET ROLE, temporary tables, session advisory locks, WITH HOLD
 *   cursors, LISTEN outside the fan-out) pins the connection to the client for the rest of the
 *   session, and it is reset with DISCARD ALL before anyone else uses it; what the proxy cannot see
 *   (user code) is checked on the server before the connection changes hands.
 */
import type { Socket } from 'node:net';
import type { TypedFrame } from '../protocol/framer.js';
import { decodeQuery } from '../protocol/frontend-messages.js';
import type { TransactionStatus } from '../protocol/backend-messages.js';
import type { ServerConn } from './backend/server-conn.js';
import type { Pool } from './backend/pool.js';
import { OutputBatch } from './batch.js';
import { LARGE_MESSAGE_BYTES } from './frontend/message-budget.js';
import { ReadPause } from './frontend/read-pause.js';
import { now, readTime } from './types.js';
import type { ClientId } from './types.js';
import type { Consistency, ReadRouter } from './read-router.js';
import { CONSISTENCY_LEVELS } from './read-router.js';
import { sessionEncoding } from './client-encoding.js';
import type { Analyzer } from '../sql/analyze.js';
import { ClientRecord } from './session/client-record.js';
import { TxState } from './session/context.js';
import type { SessionOptions } from './session/context.js';
import { forwardQuery } from './session/forward-query.js';
import { forwardMessage } from './session/forward-extended.js';
import { answerLocally } from './session/local-answers.js';
import type { LocalContext } from './session/local-answers.js';
import { classFacts, messageClass, messageFacts } from './session/message-facts.js';
import type { FactsContext } from './session/message-facts.js';
import { pickReadTarget } from './session/read-target.js';
import { attachRole, needsSwitch, planRoute, topologyOf } from './session/route.js';
import type { SessionView, Topology } from './session/route.js';
import { ServerHolder } from './session/server-holder.js';
import type { HolderClient } from './session/server-holder.js';
import type { ServerLeg } from './session/server-leg.js';
import { ownSqlNames } from './session/server-prep.js';
import { DEFAULT_ANALYZER } from './session/text-facts.js';
import { bindAfter, bindParams, boundText } from './session/shard-target.js';
import type { SessionSharding, ShardTarget } from './session/shard-target.js';
import { buildErrorResponse } from '../protocol/error-response.js';
import { SqlState } from '../protocol/sqlstate.js';
import { TypedMessage } from '../protocol/framer.js';
import { decodeParse, encodeFrontendMessage } from '../protocol/frontend-messages.js';
import { commandComplete, readyForQuery } from './rewrite.js';
import { endsWithReadyForQuery, ownQuery } from './session/pending.js';

export type { SessionOptions } from './session/context.js';
export { protocolStatementName } from './session/statement-names.js';

const TRACE = process.env.PGSCALE_TRACE === '1';

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

const PINNED_GROUP =
  'this session keeps one server connection (session pooling, or session state such as temporary tables): statements on shards of other groups need transaction pooling';
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

export interface SessionHost {
  readonly id: ClientId;
  readonly socket: Socket;
  /** Closes the client connection after sending `fatal` (an ErrorResponse), if given. */
  terminate(fatal?: Buffer): void;
  /** Stops reading the client for a reason; it is read again when no reason is left. */
  pauseReading(reason: ReadPause): void;
  resumeReading(reason: ReadPause): void;
  /** Every message given to the session so far has left the process (their memory budget ends). */
  inputFlushed(): void;
}

export class Session implements HolderClient, LocalContext, FactsContext, SessionView {
  readonly record: ClientRecord;
  readonly tx = new TxState();
  readonly analyzer: Analyzer;
  /** Reads served by replicas / by the primary, for SHOW CLIENTS. */
  readonly routing = { replica: 0, primary: 0 };
  /** Bytes and counts for SHOW CLIENTS / STATS. */
  readonly counters = { queries: 0, xacts: 0, waitUs: 0 };
  lastActivity = now();
  /** The reply sink: what the client is to receive, written at the end of each batch. */
  readonly sink = new OutputBatch();
  closed = false;
  /** The session's place in the cluster's topology (its database's group). */
  private readonly topology: Topology;
  /** The server side: the transaction's legs, attaching and giving back. */
  private readonly hold: ServerHolder;
  private inbox: TypedFrame[] = [];
  /** Waiting for the LISTEN fan-out before answering: later messages wait in order. */
  private blocked = false;
  /** The Query frame decoded last and its decoding: several steps look at each Query. */
  private queryFrame: TypedFrame | null = null;
  private queryDecoded: ReturnType<typeof decodeQuery> | null = null;
  /** Sharding: the group the next attachment goes to (the database's own group unless a statement says). */
  private attachGroup: string;
  /** Sharding: the text of the client's unnamed statement (a Bind of it is routed by it). */
  private unnamedText: string | null = null;
  /** An extended-protocol message was refused here: the rest up to Sync is skipped, as PostgreSQL does. */
  private skipToSync = false;
  /**
   * Sharding: a BEGIN answered by the proxy and not sent yet. The transaction's group is known only
   * at its first statement that touches shards; BEGIN goes there first, then that statement.
   */
  private deferredBegin: string | null = null;
  /** The deferred transaction failed here (a refused statement): only its end is accepted. */
  private deferredFailed = false;

  constructor(
    private readonly host: SessionHost,
    readonly opts: SessionOptions,
  ) {
    this.analyzer = opts.analyzer ?? DEFAULT_ANALYZER;
    this.hold = new ServerHolder(this, host);
    this.topology = topologyOf(opts.group ?? '');
    this.attachGroup = opts.group ?? '';
    this.record = new ClientRecord(opts.startupSettings, opts.startupProxySettings, opts.mode === 'session');
  }

  // ------------------------------------------------------------------ what others read

  get txStatus(): TransactionStatus {
    return this.tx.status;
  }
  get pinned(): boolean {
    return this.record.pinned;
  }
  get pinReason(): string | null {
    return this.record.pinReason;
  }
  get channels(): ReadonlySet<string> {
    return this.record.channels;
  }
  /** The server connection the client's messages go to now. */
  get server(): ServerConn | null {
    return this.hold.leg?.server ?? null;
  }
  /** This session calls `host.inputFlushed()` (a getter: no field per client). */
  get reportsInputFlushed(): boolean {
    return true;
  }
  get pool(): Pool {
    return this.opts.pool;
  }
  get state(): 'active' | 'waiting' | 'idle' {
    return this.hold.acquiring ? 'waiting' : this.hold.leg ? 'active' : 'idle';
  }
  get subscriber(): this {
    return this;
  }

  // ------------------------------------------------------------------ SessionView (route.ts)

  get attached(): 'primary' | 'replica' | null {
    const leg = this.hold.leg;
    return leg === null ? null : leg.replica ? 'replica' : 'primary';
  }
  get idle(): boolean {
    return this.hold.leg === null || this.hold.leg.idle;
  }
  get fanOut(): boolean {
    return this.opts.listeners !== null;
  }
  get utf8(): boolean {
    return sessionEncoding(this.tx.settings, this.record.settings, this.opts.startupSettings) === '';
  }
  get readScaling(): boolean {
    return this.router !== null;
  }
  get consistency(): Consistency {
    const v = this.record.proxySettings.get('pgscale.consistency') as Consistency | undefined;
    return v !== undefined && CONSISTENCY_LEVELS.includes(v)
      ? v
      : (this.opts.consistency ?? 'read-your-writes');
  }

  private get router(): ReadRouter | null {
    return this.record.pinned ? null : (this.opts.router ?? null);
  }

  // ------------------------------------------------------------------ client → server

  onClientFrames(frames: TypedFrame[]): void {
    if (TRACE) process.stderr.write(`C${this.host.id}> ${frames.map((f) => f.type).join('')}\n`);
    this.lastActivity = readTime();
    // The framer's array is ours to keep: no copy when nothing waits (the usual case).
    if (this.inbox.length === 0) this.inbox = frames;
    else for (const f of frames) this.inbox.push(f);
    if (this.hold.acquiring) this.hold.pauseClient();
    this.drain();
  }

  drain(): void {
    const hold = this.hold;
    if (hold.keeping && this.inbox.length > 0) {
      // Kept after user code (or while the hidden-code registry loads), and the next work may need
      // routing again (a read and its consistency level): see ServerHolder.resumeKept.
      if (hold.resumeKept(() => this.attachRoleFor() === 'replica', this.router !== null)) return;
    }
    // While the connection is being checked to be handed over, what the client sends next waits:
    // sent behind the check, it would keep the connection from the client it was checked for.
    while (this.inbox.length > 0 && !this.closed && !this.blocked && !hold.handingOver) {
      const f = this.inbox[0]!;
      if (f.type === 'X') {
        this.inbox = [];
        this.flushClient();
        this.close();
        // PostgreSQL closes the connection on Terminate; a client left open would keep its slot.
        this.host.terminate();
        return;
      }
      if (this.skipToSync) {
        this.inbox.shift();
        if (f.type === 'S') {
          this.skipToSync = false;
          this.replyInOrder(readyForQuery(this.tx.status));
        }
        continue;
      }
      const facts = messageFacts(this, f, hold.leg === null);
      const route = planRoute(facts, this, this.topology);
      if (route.kind === 'local') {
        this.inbox.shift();
        const q = f.type === 'Q' ? this.queryOf(f) : null;
        answerLocally(
          this,
          route.answer,
          f,
          q?.ok ? q.value.query : '',
          facts.serverName,
          facts.cls === 'read',
        );
        continue;
      }
      const sharding = this.opts.sharding;
      if (sharding?.active) {
        const step = this.shardStep(f, sharding);
        if (step === 'next') continue;
        if (step === 'wait') break;
      }
      const leg = hold.leg;
      if (!leg) {
        this.attach();
        this.flushClient();
        return;
      }
      if (needsSwitch(route, this)) {
        // A write behind reads on a replica: let the replica finish, then move to the primary.
        if (hold.switchToPrimary()) continue;
        break;
      }
      this.inbox.shift();
      if (this.deferredBegin !== null) {
        // The transaction's first statement: its BEGIN goes first (its reply was given already).
        leg.send(encodeFrontendMessage({ name: 'Query', query: this.deferredBegin }));
        leg.expect(ownQuery());
        this.deferredBegin = null;
      }
      // A large message is not kept for a replay: its memory must end once it is forwarded.
      if (leg.replay !== null) {
        if (f.bytes.length > LARGE_MESSAGE_BYTES) leg.replay = null;
        else leg.replay.push(f);
      }
      // A write on the primary: learn the commit position before releasing, even when the
      // connection was attached for something else. Reads that the primary serves need none.
      if (
        !this.tx.needLsn &&
        !leg.replica &&
        facts.cls === 'write' &&
        leg.group === this.topology.group &&
        this.capturesCommits()
      )
        this.tx.needLsn = true;
      this.forward(leg, f);
    }
    // An empty inbox keeps no backing store (~190 bytes per idle client; length = 0 frees it).
    if (this.inbox.length === 0) this.inbox.length = 0;
    // Do not keep the last Query (and the chunk it views) alive while the client idles.
    this.queryFrame = null;
    this.queryDecoded = null;
    hold.flush();
    this.flushClient();
  }

  /** The role to attach for what the client has queued (route.ts attachRole). */
  private attachRoleFor(): 'primary' | 'replica' {
    if (!this.readScaling) return 'primary';
    return attachRole(
      this.inbox.map((f) => classFacts(this, f)),
      this,
    );
  }

  /** decodeQuery, once per frame (the text is decoded and UTF-8-checked only once). */
  queryOf(f: TypedFrame): ReturnType<typeof decodeQuery> {
    if (this.queryFrame !== f || this.queryDecoded === null) {
      this.queryFrame = f;
      this.queryDecoded = decodeQuery(f.payload);
    }
    return this.queryDecoded;
  }

  private forward(leg: ServerLeg, f: TypedFrame): void {
    if (this.record.pinned && !this.record.sqlOwnNames) ownSqlNames(this.record, leg);
    if (f.type === 'Q') forwardQuery(this, leg, f, this.queryOf(f));
    else forwardMessage(this, leg, f);
  }

  // ------------------------------------------------------------------ ForwardContext, LocalContext

  isRead(f: TypedFrame): boolean {
    return messageClass(this, f) === 'read';
  }

  pin(reason: string): void {
    this.record.pin(reason);
    const s = this.hold.leg?.server;
    if (s) s.needsReset = true;
  }

  terminate(fatal: Buffer): void {
    this.host.terminate(fatal);
  }

  replyInOrder(bytes: Buffer): void {
    const leg = this.hold.leg;
    if (leg && !leg.idle) leg.expect({ k: 'synthetic', bytes });
    else this.sink.add(bytes);
  }

  waitFor(answer: Promise<Buffer[]>): void {
    this.blocked = true;
    this.host.pauseReading(ReadPause.listen);
    void answer.then((bytes) => {
      this.blocked = false;
      if (this.closed) return;
      this.host.resumeReading(ReadPause.listen);
      for (const b of bytes) this.sink.add(b);
      this.drain();
      this.flushClient();
    });
  }

  /** A notification from the fan-out connection. */
  deliverNotification(bytes: Buffer): void {
    this.sink.add(bytes);
    if (this.idle) this.flushClient();
  }

  // ------------------------------------------------------------------ sharding

  /**
   * Routes message `f` (the inbox's head) by its shards: 'go' forwards it (this.attachGroup says
   * where a new attachment goes), 'next' means it was answered or the server given back (loop on),
   * 'wait' that it waits (for the leg to finish, or for the Bind that follows a Parse).
   */
  private shardStep(f: TypedFrame, sharding: SessionSharding): 'go' | 'next' | 'wait' {
    const held = this.hold.leg;
    if (
      f.type === 'Q' &&
      (held === null || (held.idle && (this.tx.status === 'I' || this.deferredBegin !== null)))
    ) {
      const q = this.queryOf(f);
      if (q.ok && this.deferTransactionControl(q.value.query)) return 'next';
    }
    if (f.type === 'Q') {
      const q = this.queryOf(f);
      const call = q.ok ? sharding.api(q.value.query) : null;
      if (call !== null) {
        const leg = this.hold.leg;
        if (this.tx.status !== 'I' || (leg !== null && !leg.idle)) {
          call.catch(() => {}); // not run: see DatabaseSharding.api
          return this.refuse(f, SqlState.ACTIVE_SQL_TRANSACTION, API_IN_TX);
        }
        this.inbox.shift();
        this.waitFor(call);
        return 'next';
      }
    }
    const t = this.shardTargetOf(f, sharding);
    if (t === 'wait') return 'wait';
    const hold = this.hold;
    const leg = hold.leg;
    const home = this.topology.group;
    if (t !== null && t.kind === 'refuse') return this.refuse(f, t.sqlstate, t.message);
    if (this.deferredBegin !== null && t === null && !DATA_FREE.has(f.type)) {
      // Nothing to place the transaction by yet: look further along what the client has sent.
      const ahead = this.placeAhead(sharding);
      if (ahead !== null) {
        this.attachGroup = ahead;
        if (leg === null) return 'go';
      }
    }
    const want = t === null || t.kind === 'any' ? null : t.kind === 'group' ? t.group : home;
    if (leg === null) {
      // A pinned session (session pooling, session state) keeps one connection: its database's own.
      this.attachGroup = this.record.pinned ? home : (want ?? home);
      if (want === null || want === this.attachGroup) return 'go';
    } else if (want === null || leg.group === want) return 'go';
    if (leg === null || this.record.pinned) {
      return this.refuse(f, SqlState.FEATURE_NOT_SUPPORTED, PINNED_GROUP);
    }
    if (!leg.idle && !endsWithReadyForQuery(leg.pending)) {
      // An extended-protocol pipeline with no Sync yet is one implicit transaction on one server.
      return this.refuse(f, SqlState.FEATURE_NOT_SUPPORTED, CROSS_GROUP);
    }
    // A held-back BEGIN has not reached the server: it holds no transaction yet.
    const outsideTx = this.tx.status === 'I' || this.deferredBegin !== null;
    if (!outsideTx) {
      if (!leg.idle) return 'wait';
      return this.refuse(f, SqlState.FEATURE_NOT_SUPPORTED, CROSS_GROUP);
    }
    // Between transactions: the next one goes to the other group once this server is given back.
    this.attachGroup = want;
    return hold.switchToPrimary(outsideTx) ? 'next' : 'wait';
  }

  /**
   * BEGIN with no server attached is answered here and sent later, with the transaction's first
   * statement, to that statement's group; COMMIT or ROLLBACK of a transaction that never reached a
   * server is answered here too. True when `sql` was one of those.
   */
  private deferTransactionControl(sql: string): boolean {
    const tx = this.tx;
    if (this.deferredBegin === null) {
      if (tx.status !== 'I' || !BEGIN_ONLY.test(sql)) return false;
      this.inbox.shift();
      this.deferredBegin = sql;
      tx.status = 'T';
      this.replyInOrder(commandComplete('BEGIN'));
      this.replyInOrder(readyForQuery('T'));
      return true;
    }
    const end = TX_END.exec(sql);
    if (end === null) {
      if (!this.deferredFailed) return false;
      this.inbox.shift();
      this.replyInOrder(buildErrorResponse('ERROR', SqlState.IN_FAILED_SQL_TRANSACTION, ABORTED));
      this.replyInOrder(readyForQuery('E'));
      return true;
    }
    this.inbox.shift();
    const commit = /^(commit|end)$/i.test(end[1]!) && !this.deferredFailed;
    this.deferredBegin = null;
    this.deferredFailed = false;
    tx.status = 'I';
    this.replyInOrder(commandComplete(commit ? 'COMMIT' : 'ROLLBACK'));
    this.replyInOrder(readyForQuery('I'));
    return true;
  }

  /** The group of the first message queued that names one (a pipeline's first statement on shards). */
  private placeAhead(sharding: SessionSharding): string | null {
    for (let i = 1; i < this.inbox.length; i++) {
      const g = this.inbox[i]!;
      if (g.type !== 'Q' && g.type !== 'P' && g.type !== 'B') continue;
      const t = this.shardTargetAt(g, sharding, i);
      if (t === 'wait' || t === null) continue;
      if (t.kind === 'group') return t.group;
      if (t.kind === 'home') return this.topology.group;
      return null;
    }
    return null;
  }

  /** Where message `f` must run by its shards; null: anywhere (no preference); 'wait': more input first. */
  private shardTargetOf(f: TypedFrame, sharding: SessionSharding): ShardTarget | null | 'wait' {
    return this.shardTargetAt(f, sharding, 0);
  }

  /** shardTargetOf for the message at `at` in the inbox. */
  private shardTargetAt(f: TypedFrame, sharding: SessionSharding, at: number): ShardTarget | null | 'wait' {
    switch (f.type) {
      case 'Q': {
        const q = this.queryOf(f);
        return q.ok ? sharding.target(q.value.query, NO_PARAMS) : null;
      }
      case 'P': {
        const p = at === 0 ? this.record.parseOf(f, this.analyzer) : decodeParse(f.payload);
        if (!p.ok) return null;
        const { statement, query } = p.value;
        if (statement === '' && at === 0) this.unnamedText = query;
        const t = sharding.target(query, null);
        if (t.kind !== 'needs-params') return t;
        // Its shards depend on its parameters: route it with the Bind that follows. Without one
        // in this batch it may go anywhere (a Describe round); a Bind later re-prepares it where
        // its shards are. Until a Sync or Flush shows the batch is complete, wait for more.
        const b = bindAfter(this.inbox, at + 1, statement);
        if (b !== null) {
          const params = bindParams(b);
          return params === null ? null : nullIfNeedsParams(sharding.target(query, params));
        }
        for (let i = at + 1; i < this.inbox.length; i++) {
          const type = this.inbox[i]!.type;
          if (type === 'S' || type === 'H' || type === 'Q') return null;
        }
        return 'wait';
      }
      case 'B': {
        const text = boundText(this.record, f, this.unnamedText);
        if (text === null) return null;
        const params = bindParams(f);
        return params === null ? null : nullIfNeedsParams(sharding.target(text, params));
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
  private refuse(f: TypedFrame, sqlstate: string, message: string): 'next' | 'wait' {
    const leg = this.hold.leg;
    if (this.deferredBegin !== null && (leg === null || leg.idle)) {
      // The deferred transaction fails as PostgreSQL's would: only its end is accepted now.
      this.deferredFailed = true;
      this.tx.status = 'E';
      this.inbox.shift();
      this.replyInOrder(buildErrorResponse('ERROR', sqlstate, message));
      if (f.type === 'Q') this.replyInOrder(readyForQuery('E'));
      else this.skipToSync = true;
      return 'next';
    }
    const inTx = leg !== null && (this.tx.status !== 'I' || !leg.idle);
    if (f.type === 'Q' && inTx) {
      if (!leg.idle) return 'wait';
      this.inbox.shift();
      const raise = TypedMessage.of(
        encodeFrontendMessage({ name: 'Query', query: raiseSql(sqlstate, message) }),
      );
      this.forward(leg, raise);
      return 'next';
    }
    if (inTx) {
      this.inbox = [];
      this.flushClient();
      this.close();
      this.host.terminate(buildErrorResponse('FATAL', sqlstate, message));
      return 'wait';
    }
    this.inbox.shift();
    this.replyInOrder(buildErrorResponse('ERROR', sqlstate, message));
    if (f.type === 'Q') this.replyInOrder(readyForQuery(this.tx.status));
    else this.skipToSync = true;
    return 'next';
  }

  // ------------------------------------------------------------------ attaching a server

  private attach(): void {
    const hold = this.hold;
    if (hold.acquiring || this.closed) return;
    hold.acquiring = true;
    const t0 = readTime();
    const group = this.attachGroup;
    if (group !== this.topology.group && this.opts.sharding) {
      // A statement's shards live on another group: its primary (reads on its replicas: later).
      const pool = this.opts.sharding.poolOf(group);
      return hold.acquireFrom(pool, null, t0, group, pool);
    }
    const router = this.router;
    // A deferred BEGIN: the transaction block runs on the primary, as it would have from its BEGIN.
    if (!router || this.deferredBegin !== null || this.attachRoleFor() !== 'replica')
      return hold.acquireFrom(this.opts.pool, null, t0);
    const horizon = this.opts.horizon ?? null;
    pickReadTarget(router, horizon, this.consistency, this.record, this.opts.pool, (pool, replica) =>
      hold.acquireFrom(pool, replica, t0),
    );
  }

  /**
   * Whether the WAL position after this client's write transactions is learnt: for its own later
   * reads (read-your-writes and up) and for the proxy's commit horizon (causal reads of every
   * client). A client at eventual skips it, unless the proxy's level is causal.
   */
  private capturesCommits(): boolean {
    if (this.router === null && !this.opts.horizon) return false;
    return this.consistency !== 'eventual' || this.opts.consistency === 'causal';
  }

  // ------------------------------------------------------------------ HolderClient

  get hasInput(): boolean {
    return this.inbox.length > 0;
  }

  takeBack(frames: TypedFrame[]): void {
    this.inbox.unshift(...frames);
  }

  /** Tells the client connection when what it gave us has left the process (message budget). */
  reportFlushed(): void {
    if (this.inbox.length > 0 || this.blocked) return;
    if (this.hold.leg?.busy) return;
    this.host.inputFlushed();
  }

  flushClient(): void {
    if (this.closed) this.sink.clear();
    if (this.sink.empty) return;
    const s = this.hold.leg?.server;
    if (!this.sink.flush(this.host.socket) && s) {
      // The client reads slower than the server sends: stop reading the server (backpressure).
      s.socket.pause();
      this.host.socket.once('drain', () => s.socket.resume());
    }
  }

  /** The server connections running this client's work now (every leg of the query), for cancel requests. */
  cancelTargets(): ServerConn[] {
    return this.hold.cancelTargets();
  }

  /** Client gone: give the connection back in a clean state (the pool rolls back or resets). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.opts.listeners) for (const ch of this.record.channels) this.opts.listeners.unsubscribe(ch, this);
    this.inbox = [];
    this.sink.clear();
    this.hold.close();
  }
}
