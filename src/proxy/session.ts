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
import { performance } from 'node:perf_hooks';
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
import type { MessageClass, SessionView, Topology } from './session/route.js';
import { ServerHolder } from './session/server-holder.js';
import type { HolderClient } from './session/server-holder.js';
import type { ServerLeg } from './session/server-leg.js';
import { ownSqlNames } from './session/server-prep.js';
import { DEFAULT_ANALYZER } from './session/text-facts.js';
import { ShardSteps } from './session/shard-steps.js';
import { onClientReadyForQuery } from './session/tx-events.js';
import { endsWithReadyForQuery, pendingQuery } from './session/pending.js';
import { encodeFrontendMessage } from '../protocol/frontend-messages.js';
import type { ShardSession } from './session/shard-steps.js';

export type { SessionOptions } from './session/context.js';
export { protocolStatementName } from './session/statement-names.js';

const TRACE = process.env.PGSCALE_TRACE === '1';
const FLUSH = encodeFrontendMessage({ name: 'Flush' });

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

export class Session implements HolderClient, LocalContext, FactsContext, SessionView, ShardSession {
  readonly record: ClientRecord;
  // The transaction's state, the reply sink and the server side are made on first use: a client
  // that has not sent a query yet keeps none of them (~375 bytes per idle client).
  private txState: TxState | null = null;
  readonly analyzer: Analyzer;
  private routed: { replica: number; primary: number } | null = null;
  private tallies: { queries: number; xacts: number; waitUs: number } | null = null;
  lastActivity = now();
  private batch: OutputBatch | null = null;
  closed = false;
  /** The session's place in the cluster's topology (its database's group). */
  private readonly topology: Topology;
  private holder: ServerHolder | null = null;
  /** The client's messages not forwarded yet (the head is the next one). */
  inbox: TypedFrame[] = [];
  /** Waiting for the LISTEN fan-out before answering: later messages wait in order. */
  private blocked = false;
  /**
   * The statement counters' clock: when the client's statements started running (0: none runs),
   * and whether a statement ran since the transaction status was last seen idle (settle() then
   * counts a transaction).
   */
  private busySince = 0;
  private ranInTx = false;
  /** The Query frame decoded last and its decoding: several steps look at each Query. */
  private queryFrame: TypedFrame | null = null;
  private queryDecoded: ReturnType<typeof decodeQuery> | null = null;
  /** Sharding: where each message's shards are (sessions of sharded databases only). */
  private readonly shard: ShardSteps | null;

  constructor(
    private readonly host: SessionHost,
    readonly opts: SessionOptions,
  ) {
    this.analyzer = opts.analyzer ?? DEFAULT_ANALYZER;
    this.topology = topologyOf(opts.group ?? '');
    this.shard = opts.sharding ? new ShardSteps(this, opts.sharding) : null;
    this.record = new ClientRecord(opts.startupSettings, opts.startupProxySettings, opts.mode === 'session');
  }

  // ------------------------------------------------------------------ what others read

  /** The running transaction's state (made on first use). */
  get tx(): TxState {
    return (this.txState ??= new TxState());
  }
  /** The reply sink: what the client is to receive, written at the end of each batch. */
  get sink(): OutputBatch {
    return (this.batch ??= new OutputBatch());
  }
  /** The server side: the transaction's legs, attaching and giving back. */
  private get hold(): ServerHolder {
    return (this.holder ??= new ServerHolder(this, this.host));
  }
  /** Reads served by replicas / by the primary, for SHOW CLIENTS (made on first use). */
  get routing(): { replica: number; primary: number } {
    return (this.routed ??= { replica: 0, primary: 0 });
  }
  /** Bytes and counts for SHOW CLIENTS / STATS (made on first use). */
  get counters(): { queries: number; xacts: number; waitUs: number } {
    return (this.tallies ??= { queries: 0, xacts: 0, waitUs: 0 });
  }
  get txStatus(): TransactionStatus {
    return this.txState?.status ?? 'I';
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
    return this.holder?.leg?.server ?? null;
  }
  /** This session calls `host.inputFlushed()` (a getter: no field per client). */
  get reportsInputFlushed(): boolean {
    return true;
  }
  get pool(): Pool {
    return this.opts.pool;
  }
  get state(): 'active' | 'waiting' | 'idle' {
    const h = this.holder;
    return h === null ? 'idle' : h.acquiring ? 'waiting' : h.leg ? 'active' : 'idle';
  }
  get subscriber(): this {
    return this;
  }

  // ------------------------------------------------------------------ SessionView (route.ts)

  get attached(): 'primary' | 'replica' | null {
    const leg = this.holder?.leg ?? null;
    return leg === null ? null : leg.replica ? 'replica' : 'primary';
  }
  get idle(): boolean {
    const leg = this.holder?.leg ?? null;
    return leg === null || leg.idle;
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
    // Every statement counts once, here, whatever path runs it (one group, several, answered by
    // the proxy): a Query message or an Execute.
    let statements = 0;
    for (const f of frames) if (f.type === 'Q' || f.type === 'E') statements++;
    if (statements > 0) this.countStatements(statements);
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
      const shard = this.shard;
      if (shard !== null && shard.copyStep(f)) continue;
      if (shard?.skipToSync) {
        shard.skip(f);
        continue;
      }
      const facts = messageFacts(this, f, hold.leg === null);
      const route = planRoute(facts, this, this.topology);
      if (route.kind === 'local') {
        this.inbox.shift();
        const q = f.type === 'Q' ? this.queryOf(f) : null;
        answerLocally(this, route.answer, f, q?.ok ? q.value.query : '', facts.serverName, facts.cls);
        continue;
      }
      if (shard !== null) {
        const step = shard.step(f);
        if (step === 'next') continue;
        if (step === 'wait') {
          // Waiting for the leg to finish (not for more input): drained again when it has.
          if (hold.leg !== null && !hold.leg.idle) {
            hold.drainWhenIdle();
            // In an extended-protocol pipeline not synced yet the server keeps its replies until
            // a Sync or Flush: a Flush (no reply of its own) sends them.
            if (!endsWithReadyForQuery(hold.leg.pending)) hold.leg.send(FLUSH);
          }
          break;
        }
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
      shard?.beforeForward(leg);
      // A large message is not kept for a replay: its memory must end once it is forwarded.
      if (leg.replay !== null) {
        if (f.bytes.length > LARGE_MESSAGE_BYTES) leg.replay = null;
        else leg.replay.push(f);
      }
      // A write on the primary: learn the commit position before releasing, even when the
      // connection was attached for something else. Reads that the primary serves need none.
      if (facts.cls === 'write') {
        this.tx.wrote = true;
        leg.wrote = true;
      }
      if (
        !this.tx.needLsn &&
        !leg.replica &&
        facts.cls === 'write' &&
        (leg.group === this.topology.group ? this.capturesCommits() : this.capturesGroupCommits(leg.group))
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

  forward(leg: ServerLeg, f: TypedFrame): void {
    if (this.record.pinned && !this.record.sqlOwnNames) ownSqlNames(this.record, leg);
    if (f.type === 'Q') forwardQuery(this, leg, f, this.queryOf(f));
    else forwardMessage(this, leg, f);
  }

  // ------------------------------------------------------------------ ForwardContext, LocalContext

  classOf(f: TypedFrame): MessageClass {
    return messageClass(this, f);
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

  // ------------------------------------------------------------------ ShardSession (shard-steps.ts)

  /** The leg the client's messages go to now, or null. */
  get leg(): ServerLeg | null {
    return this.hold.leg;
  }
  get homeGroup(): string {
    return this.topology.group;
  }
  switchServer(outsideTx: boolean): boolean {
    return this.hold.switchToPrimary(outsideTx);
  }
  holdClient(): void {
    this.host.pauseReading(ReadPause.serverBusy);
  }
  releaseClient(): void {
    this.host.resumeReading(ReadPause.serverBusy);
  }
  end(fatal: Buffer): void {
    this.inbox = [];
    this.flushClient();
    this.close();
    this.host.terminate(fatal);
  }
  get multiGroup(): boolean {
    return this.holder?.multiGroup ?? false;
  }
  park(): void {
    this.hold.groups.park();
  }
  unpark(group: string): boolean {
    return this.hold.groups.unpark(group);
  }
  txLegs(): ServerLeg[] {
    return this.hold.groups.txLegs();
  }
  beginEnding(): void {
    this.hold.groups.ending = true;
    for (const l of this.hold.groups.txLegs()) l.quiet = true;
    this.tx.commitInFlight = true;
  }
  endedOnGroups(committed: boolean): void {
    const hold = this.hold;
    const tx = this.tx;
    const legs = hold.groups.txLegs();
    // What the proxy cannot follow on each server (SETs that ran on one group of several, user
    // code): every server is reset before anyone else gets it.
    if (tx.settings.length > 0 || tx.checkCause !== null || tx.seqDirty)
      for (const l of legs) if (l.server) l.server.needsReset = true;
    tx.checkCause = null;
    tx.seqDirty = false;
    if (!committed) tx.rolledBack = true;
    const leg = legs[0];
    if (leg !== undefined) onClientReadyForQuery(this, leg, 'I', pendingQuery(false, true));
    else tx.status = 'I';
    tx.commitInFlight = false;
    tx.needLsn = false;
    tx.wrote = false;
    tx.localSet = false;
    hold.groups.endedAll();
  }

  // ------------------------------------------------------------------ attaching a server

  private attach(): void {
    const hold = this.hold;
    if (hold.acquiring || this.closed) return;
    hold.acquiring = true;
    const t0 = readTime();
    const group = this.shard?.attachGroup ?? this.topology.group;
    if (group !== this.topology.group && this.opts.sharding) {
      // A statement's shards live on another group: its primary, or for reads one of its replicas
      // at the client's consistency level, by that group's own commit positions.
      const pool = this.opts.sharding.poolOf(group);
      const reads =
        this.record.pinned || this.shard!.beginHeld ? null : (this.opts.groupReads?.(group) ?? null);
      if (reads === null || this.attachRoleFor() !== 'replica')
        return hold.acquireFrom(pool, null, t0, group, pool);
      const wrote = { wroteLsn: this.record.groupLsns?.get(group) ?? null };
      pickReadTarget(reads.router, reads.horizon, this.consistency, wrote, pool, (p, replica) =>
        hold.acquireFrom(p, replica, t0, group, pool),
      );
      return;
    }
    const router = this.router;
    // A deferred BEGIN: the transaction block runs on the primary, as it would have from its BEGIN.
    if (!router || this.shard?.beginHeld || this.attachRoleFor() !== 'replica')
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

  /** capturesCommits for a write on another group (sharding): when that group's reads may go to its replicas. */
  private capturesGroupCommits(group: string): boolean {
    if ((this.opts.groupReads?.(group) ?? null) === null) return false;
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
    if (this.holder?.leg?.busy) return;
    this.host.inputFlushed();
  }

  private countStatements(n: number): void {
    const c = this.counters;
    c.queries += n;
    this.opts.pool.stats.queries += n;
    this.ranInTx = true;
    if (this.busySince === 0) this.busySince = this.lastActivity;
  }

  /**
   * Once the client's statements are all answered (nothing queued, nothing running): the time
   * from their arrival to their last reply goes to the query-time counter (waits for a server
   * connection included: on several groups they overlap), and a transaction is counted when the
   * status is idle again after a statement.
   */
  private settle(): void {
    if (this.busySince === 0 || this.inbox.length > 0 || this.blocked || this.holder?.acquiring || !this.idle)
      return;
    const c = this.counters;
    const stats = this.opts.pool.stats;
    // The clock, not readTime(): answers from several groups arrive on the proxy's own
    // connections, whose reads do not move the cached time.
    stats.queryTimeUs += Math.round((performance.now() - this.busySince) * 1000);
    this.busySince = 0;
    if (this.ranInTx && this.txStatus === 'I') {
      this.ranInTx = false;
      c.xacts++;
      stats.xacts++;
    }
  }

  flushClient(): void {
    this.settle();
    const sink = this.batch;
    if (sink === null) return;
    if (this.closed) sink.clear();
    if (sink.empty) return;
    const s = this.holder?.leg?.server;
    if (!sink.flush(this.host.socket) && s) {
      // The client reads slower than the server sends: stop reading the server (backpressure).
      s.socket.pause();
      this.host.socket.once('drain', () => s.socket.resume());
    }
  }

  /** The server connections running this client's work now (every leg of the query), for cancel requests. */
  cancelTargets(): ServerConn[] {
    return this.holder?.cancelTargets() ?? [];
  }

  /** Client gone: give the connection back in a clean state (the pool rolls back or resets). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.shard?.close();
    if (this.opts.listeners) for (const ch of this.record.channels) this.opts.listeners.unsubscribe(ch, this);
    this.inbox = [];
    this.batch?.clear();
    this.holder?.close();
  }
}
