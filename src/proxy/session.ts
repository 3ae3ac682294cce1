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
import { readyForQueryStatus } from '../protocol/backend-messages.js';
import type { TransactionStatus } from '../protocol/backend-messages.js';
import { buildErrorResponse } from '../protocol/error-response.js';
import { SqlState } from '../protocol/sqlstate.js';
import { stateCheckFinding } from './backend/state-check.js';
import type { ServerConn } from './backend/server-conn.js';
import { ServerLoginError } from './backend/server-conn.js';
import type { Keeper, Pool } from './backend/pool.js';
import { OutputBatch } from './batch.js';
import { ReadPause } from './frontend/read-pause.js';
import { LARGE_MESSAGE_BYTES } from './frontend/message-budget.js';
import { now } from './types.js';
import type { ClientId } from './types.js';
import type { Consistency, ReadRouter, ReplicaTarget } from './read-router.js';
import { CONSISTENCY_LEVELS } from './read-router.js';
import { sessionEncoding, unsafeEncodingFatal, unsafeEncodingStatus } from './client-encoding.js';
import { ClientRecord } from './session/client-record.js';
import { TxState } from './session/context.js';
import type { ForwardContext, SessionOptions } from './session/context.js';
import { forwardQuery } from './session/forward-query.js';
import { forwardMessage } from './session/forward-extended.js';
import { answerLocally } from './session/local-answers.js';
import type { LocalContext } from './session/local-answers.js';
import { endsWithReadyForQuery } from './session/pending.js';
import type { PendingQuery, SqlOp } from './session/pending.js';
import { attachRole, needsSwitch, planRoute, topologyOf } from './session/route.js';
import { pickReadTarget } from './session/read-target.js';
import { onClientReadyForQuery, onCommandComplete } from './session/tx-events.js';
import type { SessionView } from './session/route.js';
import { classFacts, messageClass, messageFacts } from './session/message-facts.js';
import type { FactsContext } from './session/message-facts.js';
import { ServerLeg } from './session/server-leg.js';
import type { LegEvents } from './session/server-leg.js';
import {
  ownSqlNames,
  sendCommitCapture,
  sendStateCheck,
  syncSettings,
  undoSqlOps,
} from './session/server-prep.js';
import { DEFAULT_ANALYZER } from './session/text-facts.js';
import type { Analyzer } from '../sql/analyze.js';

export type { SessionOptions } from './session/context.js';
export { protocolStatementName } from './session/statement-names.js';

const TRACE = process.env.PGSCALE_TRACE === '1';

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

export class Session implements Keeper, LegEvents, LocalContext, FactsContext, SessionView {
  readonly record: ClientRecord;
  readonly tx = new TxState();
  readonly analyzer: Analyzer;
  /** Reads served by replicas / by the primary, for SHOW CLIENTS. */
  readonly routing = { replica: 0, primary: 0 };
  /** Bytes and counts for SHOW CLIENTS / STATS. */
  readonly counters = { queries: 0, xacts: 0, waitUs: 0 };
  lastActivity = now();
  /** The transaction's legs by group (one, until sharding); unbound legs are kept for reuse. */
  private legs: Map<string, ServerLeg> | null = null;
  /** The leg the client's messages go to now (bound to a server), or null. */
  private leg: ServerLeg | null = null;
  private inbox: TypedFrame[] = [];
  private acquiring = false;
  /** Waiting for the LISTEN fan-out before answering: later messages wait in order. */
  private blocked = false;
  private closed = false;
  /** The reply sink: what the client is to receive, written at the end of each batch. */
  private readonly out = new OutputBatch();
  /** Client reads paused while waiting for a server. */
  private paused = false;
  /** Holding on to the connection after user code, unchecked, until the client or the pool needs it. */
  private keeping = false;
  /** The running check was asked for by the pool (someone waits): release after it, if clean. */
  private handingOver = false;
  private checkSentAt = 0;
  /** A write is waiting while the replica finishes earlier reads; then the primary takes over. */
  private switching = false;
  /** The Query frame decoded last and its decoding: several steps look at each Query. */
  private queryFrame: TypedFrame | null = null;
  private queryDecoded: ReturnType<typeof decodeQuery> | null = null;

  constructor(
    private readonly host: SessionHost,
    readonly opts: SessionOptions,
  ) {
    this.analyzer = opts.analyzer ?? DEFAULT_ANALYZER;
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
    return this.leg?.server ?? null;
  }
  /** This session calls `host.inputFlushed()` (a getter: no field per client). */
  get reportsInputFlushed(): boolean {
    return true;
  }
  get pool(): Pool {
    return this.opts.pool;
  }
  get state(): 'active' | 'waiting' | 'idle' {
    return this.acquiring ? 'waiting' : this.leg ? 'active' : 'idle';
  }
  get subscriber(): this {
    return this;
  }

  // ------------------------------------------------------------------ SessionView (route.ts)

  get attached(): 'primary' | 'replica' | null {
    return this.leg === null ? null : this.leg.replica ? 'replica' : 'primary';
  }
  get idle(): boolean {
    return this.leg === null || this.leg.idle;
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
    this.lastActivity = now();
    this.inbox.push(...frames);
    if (this.acquiring) this.pauseClient();
    this.drain();
  }

  private drain(): void {
    if (this.keeping && this.inbox.length > 0) {
      this.stopKeeping();
      const leg = this.leg;
      if (
        leg &&
        this.tx.status === 'I' &&
        leg.idle &&
        !this.tx.seqDirty &&
        (leg.replica ? this.router !== null : this.attachRoleFor() === 'replica')
      ) {
        // Kept after user code (or while the hidden-code registry loads), and the next work must
        // be routed again: on a replica, each read needs the replica its consistency level asks
        // for (a kept replica may be behind the client's or the proxy's last commit); on the
        // primary, a read a replica can serve must not lose read scaling. Checked (as for a
        // hand-over), released, then routed. Not with sequence state (seqDirty): currval must
        // find it, so the client stays.
        this.switching = true;
        if (this.tx.checkCause === null) this.releaseServer();
        else return this.checkState(leg);
      }
    }
    // While the connection is being checked to be handed over, what the client sends next waits:
    // sent behind the check, it would keep the connection from the client it was checked for.
    while (this.inbox.length > 0 && !this.closed && !this.blocked && !this.handingOver) {
      const f = this.inbox[0]!;
      if (f.type === 'X') {
        this.inbox = [];
        this.flushClient();
        this.close();
        // PostgreSQL closes the connection on Terminate; a client left open would keep its slot.
        this.host.terminate();
        return;
      }
      const facts = messageFacts(this, f, this.leg === null);
      const route = planRoute(facts, this, topologyOf(this.opts.group ?? ''));
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
      const leg = this.leg;
      if (!leg) {
        this.attach();
        this.flushClient();
        return;
      }
      if (needsSwitch(route, this)) {
        // A write behind reads on a replica: let the replica finish, then move to the primary.
        this.switching = true;
        if (leg.idle && this.tx.status === 'I' && this.tx.checkCause === null) this.releaseServer();
        else {
          if (leg.idle && this.tx.status === 'I') this.checkState(leg);
          break;
        }
        continue;
      }
      this.inbox.shift();
      // A large message is not kept for a replay: its memory must end once it is forwarded.
      if (leg.replay !== null) {
        if (f.bytes.length > LARGE_MESSAGE_BYTES) leg.replay = null;
        else leg.replay.push(f);
      }
      // A write on the primary: learn the commit position before releasing, even when the
      // connection was attached for something else. Reads that the primary serves need none.
      if (!this.tx.needLsn && !leg.replica && facts.cls === 'write' && this.capturesCommits())
        this.tx.needLsn = true;
      this.forward(leg, f);
    }
    // Do not keep the last Query (and the chunk it views) alive while the client idles.
    this.queryFrame = null;
    this.queryDecoded = null;
    this.flushServer();
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
    if (this.leg?.server) this.leg.server.needsReset = true;
  }

  terminate(fatal: Buffer): void {
    this.host.terminate(fatal);
  }

  replyInOrder(bytes: Buffer): void {
    if (this.leg && !this.leg.idle) this.leg.expect({ k: 'synthetic', bytes });
    else this.out.add(bytes);
  }

  waitFor(answer: Promise<Buffer[]>): void {
    this.blocked = true;
    this.host.pauseReading(ReadPause.listen);
    void answer.then((bytes) => {
      this.blocked = false;
      if (this.closed) return;
      this.host.resumeReading(ReadPause.listen);
      for (const b of bytes) this.out.add(b);
      this.drain();
      this.flushClient();
    });
  }

  /** A notification from the fan-out connection. */
  deliverNotification(bytes: Buffer): void {
    this.out.add(bytes);
    if (this.leg === null || this.leg.idle) this.flushClient();
  }

  // ------------------------------------------------------------------ attaching a server

  private attach(): void {
    if (this.acquiring || this.closed) return;
    this.acquiring = true;
    const t0 = now();
    const router = this.router;
    if (!router || this.attachRoleFor() !== 'replica') return this.acquireFrom(this.opts.pool, null, t0);
    const horizon = this.opts.horizon ?? null;
    pickReadTarget(router, horizon, this.consistency, this.record, this.opts.pool, (pool, replica) =>
      this.acquireFrom(pool, replica, t0),
    );
  }

  /**
   * Stops reading the client while it waits for a server (its messages queue in the kernel).
   * Called only once the client sends more while waiting: most clients send one request and wait
   * for its reply, and pausing and resuming a socket costs a nextTick and two events per wait.
   */
  private pauseClient(): void {
    if (this.paused) return;
    this.paused = true;
    this.host.pauseReading(ReadPause.waitingForServer);
  }

  private acquireFrom(pool: Pool, replica: ReplicaTarget | null, t0: number): void {
    const ready = pool.tryAcquire();
    if (ready) return this.onAcquired(pool, replica, t0, ready);
    pool.acquireThen(
      (server) => this.onAcquired(pool, replica, t0, server),
      (e: unknown) => {
        if (replica && !this.closed) {
          // The replica cannot take a connection: the primary serves the read.
          replica.monitor.healthy = false;
          this.acquireFrom(this.opts.pool, null, t0);
          return;
        }
        this.acquiring = false;
        const fatal =
          e instanceof ServerLoginError
            ? e.errorResponse
            : buildErrorResponse('FATAL', SqlState.CONNECTION_FAILURE, 'could not get a server connection');
        this.host.terminate(fatal);
      },
    );
  }

  private onAcquired(pool: Pool, replica: ReplicaTarget | null, t0: number, server: ServerConn): void {
    this.acquiring = false;
    this.counters.waitUs += Math.round((now() - t0) * 1000);
    if (this.closed) {
      pool.release(server);
      return;
    }
    const group = this.opts.group ?? '';
    const legs = (this.legs ??= new Map<string, ServerLeg>());
    let leg = legs.get(group);
    if (leg === undefined) {
      leg = new ServerLeg(this, this.out, this.opts.pool, this.opts.horizon ?? null);
      legs.set(group, leg);
    }
    leg.bind(server, pool, replica, now());
    this.leg = leg;
    this.switching = false;
    if (replica) {
      // A replay forwards the same PREPAREs again: they must not meet the records they made.
      const r = this.record;
      leg.replayRecord = {
        sqlStatements: r.sqlStatements.size === 0 ? r.sqlStatements : new Map(r.sqlStatements),
        sqlOwnNames: r.sqlOwnNames,
      };
      replica.outstanding++;
      replica.readsServed++;
      this.routing.replica++;
    } else {
      this.routing.primary++;
    }
    server.setHandler(leg.onFramesBound);
    server.setLostHandler(() => this.onServerLost(leg, server));
    syncSettings(this.record, leg);
    if (this.paused) {
      this.paused = false;
      this.host.resumeReading(ReadPause.waitingForServer);
    }
    this.drain();
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

  private flushServer(): void {
    const leg = this.leg;
    if (!leg || leg.flush()) return this.reportFlushed();
    // The server reads slower than the client writes: stop reading the client until it drains.
    this.host.pauseReading(ReadPause.serverBusy);
    leg.server!.socket.once('drain', () => {
      this.host.resumeReading(ReadPause.serverBusy);
      if (!this.closed) this.reportFlushed();
    });
  }

  /** Tells the client connection when what it gave us has left the process (message budget). */
  private reportFlushed(): void {
    if (this.inbox.length > 0 || this.blocked) return;
    if (this.leg?.busy) return;
    this.host.inputFlushed();
  }

  private flushClient(): void {
    if (this.closed) this.out.clear();
    if (this.out.empty) return;
    const s = this.leg?.server;
    if (!this.out.flush(this.host.socket) && s) {
      // The client reads slower than the server sends: stop reading the server (backpressure).
      s.socket.pause();
      this.host.socket.once('drain', () => s.socket.resume());
    }
  }

  // ------------------------------------------------------------------ LegEvents (server → client)

  unsafeEncoding(_leg: ServerLeg, payload: Buffer): void {
    // Set behind the classifier's back (set_config, a function): nothing after it can be analysed
    // safely, so the session ends (its server connection is dropped, not reused).
    this.flushClient();
    this.host.terminate(unsafeEncodingFatal(unsafeEncodingStatus(payload)!));
  }

  serverGoingAway(leg: ServerLeg): boolean {
    return this.retryElsewhere(leg);
  }

  framesDone(): void {
    this.flushClient();
  }

  commitPosition(lsn: bigint): void {
    const r = this.record;
    if (r.wroteLsn === null || lsn > r.wroteLsn) r.wroteLsn = lsn;
  }

  sqlStatementsFailed(leg: ServerLeg, ops: readonly SqlOp[], failedAt: number): void {
    undoSqlOps(this.record, leg, ops, failedAt);
  }

  commandComplete(leg: ServerLeg, f: TypedFrame): void {
    onCommandComplete(this, leg, f);
  }

  readyForQuery(leg: ServerLeg, f: TypedFrame, query: PendingQuery | null): void {
    const status = readyForQueryStatus(f.bytes);
    if (status === null) return;
    this.tx.commitInFlight = false;
    if (query?.swallow) return this.afterOwnQuery(leg, query, status);
    onClientReadyForQuery(this, leg, status, query);
    leg.emitSynthetic();
    this.maybeRelease(status);
  }

  /** ReadyForQuery after one of the proxy's own queries (settings, commit position, state check). */
  private afterOwnQuery(leg: ServerLeg, query: PendingQuery, status: TransactionStatus): void {
    const c = query.check;
    if (c && leg.server) {
      const found = c.discardOnly
        ? null
        : stateCheckFinding(c.rows, leg.server.target.user, c.tracked, query.failed);
      if (found !== null) {
        this.pin(`session state left by ${c.cause}: ${found}`);
        // The connection stays with this client: whoever waits needs another keeper's.
        this.handingOver = false;
        (leg.pool ?? this.opts.pool).returned(this);
      }
    }
    leg.emitSynthetic();
    const handOver = c !== undefined && this.handingOver;
    if (handOver && !c.discardOnly) (leg.pool ?? this.opts.pool).noteCheck(now() - this.checkSentAt);
    this.maybeRelease(status);
    // Asked back while the client had already sent more: it queues for a connection again.
    if (c && (this.switching || handOver) && leg.idle) this.drain();
  }

  // ------------------------------------------------------------------ giving the server back

  /** Gives the connection back when the client waits for nothing more and holds no transaction. */
  private maybeRelease(status: TransactionStatus): void {
    const leg = this.leg;
    const s = leg?.server;
    if (!leg || !s) return;
    const tx = this.tx;
    if (this.closed) {
      // The client left while the proxy's own queries ran (see close()).
      if (!leg.idle) return;
      if (this.record.pinned || tx.checkCause !== null || status !== 'I') s.needsReset = true;
      else if (tx.seqDirty) s.needsSequenceReset = true;
      return this.releaseServer();
    }
    if (tx.needLsn && status === 'I' && leg.idle && !leg.copyIn) {
      // After a write transaction, before anything else (the client may have sent more already,
      // and a pinned client keeps its connection): the commit position, for read-your-writes and
      // for the commit horizon.
      tx.needLsn = false;
      sendCommitCapture(this.record, leg, this.opts.horizon ?? null);
      this.flushServer();
      return;
    }
    if (this.record.pinned || status !== 'I' || !leg.idle || leg.copyIn) return;
    // A client that has sent more keeps its connection, unless it is being handed over.
    if (this.inbox.length > 0 && !this.switching && !this.handingOver) return;
    if (tx.checkCause !== null || tx.seqDirty) {
      if (this.switching) this.checkState(leg);
      else {
        // Checking costs the server more than most transactions (pg_settings): keep the
        // connection instead, and check only when another client needs it and this client's
        // slice is over (giveBack, KEEP_SLICE_FACTOR).
        this.keeping = true;
        (leg.pool ?? this.opts.pool).keep(this);
      }
      return;
    }
    const handedOver = this.handingOver;
    this.releaseServer();
    // Handed over with more from the client waiting: it queues for a connection again.
    if (this.switching || (handedOver && this.inbox.length > 0)) this.drain();
  }

  /** Until when this client may keep its connection although others wait (pool.reclaim). */
  get keptUntil(): number {
    const leg = this.leg;
    return (leg?.attachedAt ?? 0) + (leg?.pool ?? this.opts.pool).keepSliceMs;
  }

  /** Pool → keeper: someone waits for a connection; check this one and give it back if clean. */
  giveBack(): boolean {
    if (!this.keeping) return false;
    this.keeping = false;
    const leg = this.leg;
    if (!leg?.server || this.closed || this.record.pinned || !leg.idle || this.tx.status !== 'I')
      return false;
    this.handingOver = true;
    this.checkSentAt = now();
    this.checkState(leg);
    return true;
  }

  /** The pool no longer counts on this client's check to serve someone who waits. */
  private endHandOver(): void {
    if (!this.handingOver) return;
    this.handingOver = false;
    (this.leg?.pool ?? this.opts.pool).returned(this);
  }

  private stopKeeping(): void {
    if (!this.keeping) return;
    this.keeping = false;
    (this.leg?.pool ?? this.opts.pool).unkeep(this);
  }

  /** The session-state check (or only DISCARD SEQUENCES) before the connection changes hands. */
  private checkState(leg: ServerLeg): void {
    const cause = this.tx.checkCause;
    this.tx.checkCause = null;
    this.tx.seqDirty = false;
    sendStateCheck(this.record, leg, cause);
    this.flushServer();
  }

  private releaseServer(): void {
    const leg = this.leg;
    const s = leg?.server;
    if (!leg || !s) return;
    this.opts.pool.stats.xactTimeUs += Math.round((now() - leg.attachedAt) * 1000);
    const pool = leg.pool ?? this.opts.pool;
    if (leg.replica) leg.replica.outstanding--;
    this.detach(leg, s);
    pool.release(s);
  }

  private detach(leg: ServerLeg, s: ServerConn): void {
    this.stopKeeping();
    this.endHandOver();
    this.tx.seqDirty = false;
    const r = this.record;
    if (r.unnamedFrame !== null) {
      // Parsed and not bound: the client may Describe or Bind it in its next round trip.
      const b = r.unnamedFrame.bytes;
      r.unnamedSaved = b.length <= LARGE_MESSAGE_BYTES ? Buffer.from(b) : null;
      r.unnamedFrame = null;
    }
    this.flushServer();
    this.unbind(leg, s);
  }

  private unbind(leg: ServerLeg, s: ServerConn): void {
    s.setHandler(null);
    s.setLostHandler(null);
    leg.unbind();
    if (this.leg === leg) this.leg = null;
  }

  /**
   * A replica went away (shutdown, crash) before this client got any reply: nothing it did there
   * can have had an effect, since reads are all that go to replicas, so the same messages are
   * replayed on another server and the client never notices.
   */
  private retryElsewhere(leg: ServerLeg): boolean {
    const replica = leg.replica;
    const s = leg.server;
    if (!s || !replica || leg.replied || leg.replay === null || this.tx.status !== 'I' || this.closed)
      return false;
    replica.monitor.healthy = false; // out of the read set until its next good check
    replica.outstanding--;
    const frames = leg.replay;
    if (leg.replayRecord) {
      this.record.sqlStatements = leg.replayRecord.sqlStatements;
      this.record.sqlOwnNames = leg.replayRecord.sqlOwnNames;
    }
    leg.clear();
    this.unbind(leg, s);
    s.destroy();
    this.inbox.unshift(...frames);
    this.drain();
    return true;
  }

  private onServerLost(leg: ServerLeg, s: ServerConn): void {
    if (leg.server !== s) return;
    if (this.closed) {
      // Lost while finishing what a departed client left in flight: the pool forgets it.
      leg.abandonCaptures();
      return this.releaseServer();
    }
    this.tx.seqDirty = false; // its sequence state is gone with it
    if (this.switching && leg.onlyCheckPending) {
      // Lost while only the proxy's check before a switch ran (drain): none of the client's work
      // was sent there, so it is routed again as if the connection had been given back.
      this.endHandOver();
      if (leg.replica) {
        leg.replica.outstanding--;
        leg.replica.monitor.healthy = false;
      }
      leg.clear();
      this.unbind(leg, s);
      return this.drain();
    }
    if (this.keeping && leg.idle) {
      // Kept while idle: nothing was in flight, so the client need not notice.
      this.stopKeeping();
      if (leg.replica) leg.replica.outstanding--;
      this.unbind(leg, s);
      return;
    }
    this.endHandOver();
    if (this.retryElsewhere(leg)) return;
    leg.abandonCaptures();
    if (leg.replica) leg.replica.outstanding--;
    leg.clear();
    this.unbind(leg, s);
    this.flushClient();
    // Whatever was in flight is lost; the client must learn it rather than wait forever.
    this.host.terminate(
      buildErrorResponse(
        'FATAL',
        SqlState.ADMIN_SHUTDOWN,
        'server connection lost: the transaction or statement in progress was not completed',
      ),
    );
  }

  /** The server connections running this client's work now (every leg of the query), for cancel requests. */
  cancelTargets(): ServerConn[] {
    // A COMMIT is never cancelled: all a cancel can do to it is end its wait for a synchronous
    // standby, and the client would then see success for a commit a failover may lose.
    if (this.tx.commitInFlight || this.legs === null) return [];
    const out: ServerConn[] = [];
    for (const leg of this.legs.values()) if (leg.server && !leg.idle) out.push(leg.server);
    return out;
  }

  /** Client gone: give the connection back in a clean state (the pool rolls back or resets). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.opts.listeners) for (const ch of this.record.channels) this.opts.listeners.unsubscribe(ch, this);
    const leg = this.leg;
    this.stopKeeping();
    this.inbox = [];
    this.out.clear();
    const s = leg?.server;
    if (!leg || !s) return;
    if (!leg.copyIn && !leg.idle && endsWithReadyForQuery(leg.pending)) {
      // Requests are in flight (the client's own, Terminate pipelined behind them, or the proxy's
      // state check or WAL position): let them finish, as PostgreSQL would run them had the client
      // been connected to it directly; their replies go nowhere (flushClient), and maybeRelease
      // gives the connection back at the last ReadyForQuery (rolled back or reset if need be).
      // Dropping the connection instead would cost the pool a server (issue #12 item 5).
      this.flushServer();
      return;
    }
    this.endHandOver();
    const pool = leg.pool ?? this.opts.pool;
    if (leg.replica) leg.replica.outstanding--;
    const midReply = !leg.idle || leg.copyIn;
    if (midReply) leg.abandonCaptures();
    leg.clear();
    this.unbind(leg, s);
    if (midReply) {
      // Mid-COPY, or an extended-protocol batch without its Sync (a Sync would commit what the
      // client never finished): the reply stream cannot be resynchronised; drop the connection.
      s.destroy();
      pool.release(s);
      return;
    }
    // Leaving right after something unchecked ran (Terminate pipelined behind it): reset it.
    if (this.record.pinned || this.tx.checkCause !== null) s.needsReset = true;
    else if (this.tx.seqDirty) s.needsSequenceReset = true;
    pool.release(s);
  }
}

export type { ForwardContext };
