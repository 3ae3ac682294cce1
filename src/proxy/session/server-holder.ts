/**
 * The server side of a session: the legs its transaction holds (one per group, reused across
 * attachments), getting a server from a pool, and giving it back once the client waits for nothing
 * more — or keeping it after user code until someone else needs it, checking its session state
 * first (backend/state-check.ts), or replaying on another server what a replica that went away
 * never answered. It hears the legs' events (LegEvents) and tells the client side only through
 * HolderClient: drain, take messages back, flush.
 */
import type { TypedFrame } from '../../protocol/framer.js';
import { readyForQueryStatus } from '../../protocol/backend-messages.js';
import type { TransactionStatus } from '../../protocol/backend-messages.js';
import { buildErrorResponse } from '../../protocol/error-response.js';
import { SqlState } from '../../protocol/sqlstate.js';
import type { Keeper, Pool } from '../backend/pool.js';
import type { ServerConn } from '../backend/server-conn.js';
import { ServerLoginError } from '../backend/server-conn.js';
import { stateCheckFinding } from '../backend/state-check.js';
import { unsafeEncodingFatal, unsafeEncodingStatus } from '../client-encoding.js';
import { LARGE_MESSAGE_BYTES } from '../frontend/message-budget.js';
import { ReadPause } from '../frontend/read-pause.js';
import type { ReplicaTarget } from '../read-router.js';
import { now, readTime } from '../types.js';
import { endsWithReadyForQuery } from './pending.js';
import type { PendingQuery, SqlOp } from './pending.js';
import { ServerLeg } from './server-leg.js';
import { LegSet } from './leg-set.js';
import type { LegEvents } from './server-leg.js';
import { sendCommitCapture, sendStateCheck, syncSettings, undoSqlOps } from './server-prep.js';
import { GroupParts, LOST_RESULT } from './group-parts.js';
import { onClientReadyForQuery, onCommandComplete } from './tx-events.js';

import type { HolderClient, ReadControl } from './holder-client.js';

export type { HolderClient, ReadControl } from './holder-client.js';

export class ServerHolder implements Keeper, LegEvents {
  /** The leg the client's messages go to now (bound to a server), or null. */
  leg: ServerLeg | null = null;
  acquiring = false;
  /** A write is waiting while the replica finishes earlier reads; then the primary takes over. */
  switching = false;
  /** Holding on to the connection after user code, unchecked, until the client or the pool needs it. */
  keeping = false;
  /** The running check was asked for by the pool (someone waits): release after it, if clean. */
  handingOver = false;
  /** The client's next message waits for the leg to finish what it runs (sharding): drain then. */
  private drainOnIdle = false;
  /** The transaction's legs by group (one, until sharding); unbound legs are kept for reuse. */
  private legs: LegSet | null = null;
  /** A transaction on several groups (sharding, group-parts.ts), made on first use. */
  private parts: GroupParts | null = null;
  /** The group and home pool of the attachment under way (acquireFrom), for the leg it binds. */
  private group = '';
  private home: Pool | null = null;
  private checkSentAt = 0;
  /** Client reads paused while waiting for a server. */
  private paused = false;

  constructor(
    private readonly client: HolderClient,
    private readonly host: ReadControl,
  ) {}

  // ------------------------------------------------------------------ attaching

  /**
   * Stops reading the client while it waits for a server (its messages queue in the kernel).
   * Called only once the client sends more while waiting: most clients send one request and wait
   * for its reply, and pausing and resuming a socket costs a nextTick and two events per wait.
   */
  pauseClient(): void {
    if (this.paused) return;
    this.paused = true;
    this.host.pauseReading(ReadPause.waitingForServer);
  }

  /**
   * Gets a server of `pool` for the client. `group` names the leg (the database's own group, or
   * under sharding the group a statement's shards live on); `home` is that group's primary pool
   * (statistics, the statements its servers know, the fallback of a failing replica).
   */
  acquireFrom(
    pool: Pool,
    replica: ReplicaTarget | null,
    t0: number,
    group = this.client.opts.group ?? '',
    home: Pool = this.client.opts.pool,
  ): void {
    this.group = group;
    this.home = home;
    const ready = pool.tryAcquire();
    if (ready) return this.onAcquired(pool, replica, t0, ready);
    pool.acquireThen(
      (server) => this.onAcquired(pool, replica, t0, server),
      (e: unknown) => {
        if (replica && !this.client.closed) {
          // The replica cannot take a connection: the primary serves the read.
          replica.monitor.healthy = false;
          this.acquireFrom(home, null, t0, group, home);
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
    const c = this.client;
    this.acquiring = false;
    c.counters.waitUs += Math.round((readTime() - t0) * 1000);
    if (c.closed) {
      pool.release(server);
      return;
    }
    const leg = (this.legs ??= new LegSet()).legFor(this.group, this);
    leg.bind(server, pool, replica, readTime());
    this.leg = leg;
    this.switching = false;
    if (replica) {
      // A replay forwards the same PREPAREs again: they must not meet the records they made.
      const r = c.record;
      leg.replayRecord = {
        sqlStatements: r.sqlStatements.size === 0 ? r.sqlStatements : new Map(r.sqlStatements),
        sqlOwnNames: r.sqlOwnNames,
      };
      replica.outstanding++;
      replica.readsServed++;
      c.routing.replica++;
    } else {
      c.routing.primary++;
    }
    server.setHandler(leg.onFramesBound);
    server.setLostHandler(leg.onLostBound);
    syncSettings(c.record, leg);
    if (this.paused) {
      this.paused = false;
      this.host.resumeReading(ReadPause.waitingForServer);
    }
    c.drain();
  }

  /** Writes what is queued for the server; pauses the client while the server's socket is full. */
  flush(): void {
    const leg = this.leg;
    if (!leg || leg.flush()) return this.client.reportFlushed();
    // The server reads slower than the client writes: stop reading the client until it drains.
    this.host.pauseReading(ReadPause.serverBusy);
    leg.server!.socket.once('drain', () => {
      this.host.resumeReading(ReadPause.serverBusy);
      if (!this.client.closed) this.client.reportFlushed();
    });
  }

  // ------------------------------------------------------------------ moving elsewhere

  /**
   * The client sends more while its connection is kept after user code: when its next work must
   * be routed again (a read, a replica at the consistency it asks for), the connection is checked,
   * released, then routed. True when the client's messages must wait for the check.
   */
  resumeKept(wantsReplica: () => boolean, readScaling: boolean): boolean {
    this.stopKeeping();
    const leg = this.leg;
    const tx = this.client.tx;
    if (!leg || tx.status !== 'I' || !leg.idle || tx.seqDirty) return false;
    if (!(leg.replica ? readScaling : wantsReplica())) return false;
    this.switching = true;
    if (tx.checkCause === null) {
      this.releaseServer();
      return false;
    }
    this.checkState(leg);
    return true;
  }

  /**
   * The next work goes elsewhere (a write behind reads on a replica, or under sharding another
   * group): true if the server was released now; false to wait for it to finish (or be checked).
   * `outsideTx`: the server holds no transaction (under sharding, a BEGIN may be held back).
   */
  switchToPrimary(outsideTx = this.client.tx.status === 'I'): boolean {
    const leg = this.leg!;
    const tx = this.client.tx;
    this.switching = true;
    if (leg.idle && outsideTx && tx.checkCause === null) {
      this.releaseServer();
      return true;
    }
    if (leg.idle && outsideTx) this.checkState(leg);
    return false;
  }

  // ------------------------------------------------------------------ several groups

  /** A transaction on several groups: its parts on other groups than the current leg's. */
  get groups(): GroupParts {
    return (this.parts ??= new GroupParts(this));
  }

  /** The transaction holds parts on other groups than the current leg's. */
  get multiGroup(): boolean {
    return this.parts?.any ?? false;
  }

  private get ending(): boolean {
    return this.parts?.ending ?? false;
  }

  /** The current leg steps aside (GroupParts parked it). */
  park(): void {
    this.leg = null;
  }

  /** The current leg becomes `leg` (a parked one): the client's settings are brought to it. */
  resumeLeg(leg: ServerLeg): void {
    this.leg = leg;
    syncSettings(this.client.record, leg);
  }

  /** Ends the client's connection with `fatal` (what it was sent is flushed first). */
  endClient(fatal: Buffer): void {
    this.client.flushClient();
    this.host.terminate(fatal);
  }

  // ------------------------------------------------------------------ LegEvents

  unsafeEncoding(_leg: ServerLeg, payload: Buffer): void {
    // Set behind the classifier's back (set_config, a function): nothing after it can be analysed
    // safely, so the session ends (its server connection is dropped, not reused).
    this.client.flushClient();
    this.host.terminate(unsafeEncodingFatal(unsafeEncodingStatus(payload)!));
  }

  serverGoingAway(leg: ServerLeg): boolean {
    return this.retryElsewhere(leg);
  }

  framesDone(): void {
    this.client.flushClient();
    // Idle without a ReadyForQuery (an extended-protocol pipeline answered up to its last
    // Execute, its Sync not sent yet): a message waiting for the leg goes on now.
    this.resumeIfIdle();
  }

  commitPosition(leg: ServerLeg, lsn: bigint): void {
    const r = this.client.record;
    if (leg.group === (this.client.opts.group ?? '')) {
      if (r.wroteLsn === null || lsn > r.wroteLsn) r.wroteLsn = lsn;
      return;
    }
    // Another group's WAL: positions of different servers are not comparable.
    const lsns = (r.groupLsns ??= new Map<string, bigint>());
    const had = lsns.get(leg.group);
    if (had === undefined || lsn > had) lsns.set(leg.group, lsn);
  }

  sqlStatementsFailed(leg: ServerLeg, ops: readonly SqlOp[], failedAt: number): void {
    undoSqlOps(this.client.record, leg, ops, failedAt);
  }

  commandComplete(leg: ServerLeg, f: TypedFrame): void {
    onCommandComplete(this.client, leg, f);
  }

  readyForQuery(leg: ServerLeg, f: TypedFrame, query: PendingQuery | null): void {
    const status = readyForQueryStatus(f.chunk, f.start, f.end);
    if (status === null) return;
    this.client.tx.commitInFlight = false;
    if (query?.done !== undefined || (this.ending && query?.swallow)) {
      // The end of a transaction on several groups: its own queries' outcomes go to multi-group.ts.
      leg.emitSynthetic();
      return;
    }
    if (query?.swallow) return this.afterOwnQuery(leg, query, status);
    if (status === 'I' && this.multiGroup) return this.parts!.endedOnOneGroup(leg);
    onClientReadyForQuery(this.client, leg, status, query);
    leg.emitSynthetic();
    this.maybeRelease(status);
    this.resumeIfIdle();
  }

  /** Calls the client's drain once the leg has nothing running (or is given back). */
  drainWhenIdle(): void {
    this.drainOnIdle = true;
  }

  private resumeIfIdle(): void {
    if (!this.drainOnIdle || (this.leg !== null && !this.leg.idle)) return;
    this.drainOnIdle = false;
    if (!this.client.closed) this.client.drain();
  }

  /** ReadyForQuery after one of the proxy's own queries (settings, commit position, state check). */
  private afterOwnQuery(leg: ServerLeg, query: PendingQuery, status: TransactionStatus): void {
    const c = query.check;
    if (c && leg.server) {
      const found = c.discardOnly
        ? null
        : stateCheckFinding(c.rows, leg.server.target.user, c.tracked, query.failed);
      if (found !== null) {
        this.client.pin(`session state left by ${c.cause}: ${found}`);
        // The connection stays with this client: whoever waits needs another keeper's.
        this.handingOver = false;
        this.poolOf(leg).returned(this);
      }
    }
    leg.emitSynthetic();
    const handOver = c !== undefined && this.handingOver;
    if (handOver && !c.discardOnly) this.poolOf(leg).noteCheck(now() - this.checkSentAt);
    this.maybeRelease(status);
    // Asked back while the client had already sent more: it queues for a connection again.
    if (c && (this.switching || handOver) && leg.idle) this.client.drain();
    else this.resumeIfIdle();
  }

  poolOf(leg: ServerLeg | null): Pool {
    return leg?.pool ?? this.client.opts.pool;
  }

  // ------------------------------------------------------------------ giving the server back

  /** Gives the connection back when the client waits for nothing more and holds no transaction. */
  private maybeRelease(status: TransactionStatus): void {
    const leg = this.leg;
    const s = leg?.server;
    if (!leg || !s) return;
    const { tx, record } = this.client;
    if (this.client.closed) {
      // The client left while the proxy's own queries ran (see close()).
      if (!leg.idle) return;
      if (record.pinned || tx.checkCause !== null || status !== 'I') s.needsReset = true;
      else if (tx.seqDirty) s.needsSequenceReset = true;
      return this.releaseServer();
    }
    if (tx.needLsn && status === 'I' && leg.idle && !leg.copyIn) {
      // After a write transaction, before anything else (the client may have sent more already,
      // and a pinned client keeps its connection): the commit position, for read-your-writes and
      // for the commit horizon.
      tx.needLsn = false;
      sendCommitCapture(record, leg, leg.horizon);
      this.flush();
      return;
    }
    if (record.pinned || status !== 'I' || !leg.idle || leg.copyIn) return;
    // A client that has sent more keeps its connection, unless it is being handed over.
    if (this.client.hasInput && !this.switching && !this.handingOver) return;
    if (tx.checkCause !== null || tx.seqDirty) {
      if (this.switching) this.checkState(leg);
      else {
        // Checking costs the server more than most transactions (pg_settings): keep the
        // connection instead, and check only when another client needs it and this client's
        // slice is over (giveBack, KEEP_SLICE_FACTOR).
        this.keeping = true;
        this.poolOf(leg).keep(this);
      }
      return;
    }
    const handedOver = this.handingOver;
    this.releaseServer();
    // Handed over with more from the client waiting: it queues for a connection again.
    if (this.switching || (handedOver && this.client.hasInput)) this.client.drain();
  }

  /** Until when this client may keep its connection although others wait (pool.reclaim). */
  get keptUntil(): number {
    return (this.leg?.attachedAt ?? 0) + this.poolOf(this.leg).keepSliceMs;
  }

  /** Pool → keeper: someone waits for a connection; check this one and give it back if clean. */
  giveBack(): boolean {
    if (!this.keeping) return false;
    this.keeping = false;
    const leg = this.leg;
    const c = this.client;
    if (!leg?.server || c.closed || c.record.pinned || !leg.idle || c.tx.status !== 'I') return false;
    this.handingOver = true;
    this.checkSentAt = now();
    this.checkState(leg);
    return true;
  }

  /** The pool no longer counts on this client's check to serve someone who waits. */
  private endHandOver(): void {
    if (!this.handingOver) return;
    this.handingOver = false;
    this.poolOf(this.leg).returned(this);
  }

  stopKeeping(): void {
    if (!this.keeping) return;
    this.keeping = false;
    this.poolOf(this.leg).unkeep(this);
  }

  /** The session-state check (or only DISCARD SEQUENCES) before the connection changes hands. */
  private checkState(leg: ServerLeg): void {
    const tx = this.client.tx;
    const cause = tx.checkCause;
    tx.checkCause = null;
    tx.seqDirty = false;
    sendStateCheck(this.client.record, leg, cause);
    this.flush();
  }

  releaseServer(): void {
    const leg = this.leg;
    const s = leg?.server;
    if (!leg || !s) return;
    this.client.opts.pool.stats.xactTimeUs += Math.round((readTime() - leg.attachedAt) * 1000);
    const pool = this.poolOf(leg);
    if (leg.replica) leg.replica.outstanding--;
    this.stopKeeping();
    this.endHandOver();
    this.client.tx.seqDirty = false;
    const r = this.client.record;
    if (r.unnamedFrame !== null) {
      // Parsed and not bound: the client may Describe or Bind it in its next round trip.
      const b = r.unnamedFrame.bytes;
      r.unnamedSaved = b.length <= LARGE_MESSAGE_BYTES ? Buffer.from(b) : null;
      r.unnamedFrame = null;
    }
    this.flush();
    this.unbind(leg, s);
    pool.release(s);
  }

  unbind(leg: ServerLeg, s: ServerConn): void {
    s.setHandler(null);
    s.setLostHandler(null);
    leg.unbind();
    if (this.leg === leg) this.leg = null;
    this.parts?.forget(leg);
  }

  /**
   * A replica went away (shutdown, crash) before this client got any reply: nothing it did there
   * can have had an effect, since reads are all that go to replicas, so the same messages are
   * replayed on another server and the client never notices.
   */
  private retryElsewhere(leg: ServerLeg): boolean {
    const replica = leg.replica;
    const s = leg.server;
    const c = this.client;
    if (!s || !replica || !leg.unanswered || leg.replay === null || c.tx.status !== 'I' || c.closed)
      return false;
    leg.retract();
    replica.monitor.healthy = false; // out of the read set until its next good check
    replica.outstanding--;
    const frames = leg.replay;
    if (leg.replayRecord) {
      c.record.sqlStatements = leg.replayRecord.sqlStatements;
      c.record.sqlOwnNames = leg.replayRecord.sqlOwnNames;
    }
    leg.clear();
    this.unbind(leg, s);
    s.destroy();
    c.takeBack(frames);
    c.drain();
    return true;
  }

  serverLost(leg: ServerLeg, s: ServerConn): void {
    if (leg.server !== s) return;
    if (this.ending) {
      // Lost while a transaction on several groups ends: the proxy's queries there fail, and
      // the end (multi-group.ts) answers the client.
      const waiting = leg.pending;
      leg.clear();
      this.unbind(leg, s);
      for (const p of waiting) if (p.k === 'query' && p.done !== undefined) p.done(LOST_RESULT);
      return;
    }
    if (this.client.closed) {
      // Lost while finishing what a departed client left in flight: the pool forgets it.
      leg.abandonCaptures();
      return this.releaseServer();
    }
    this.client.tx.seqDirty = false; // its sequence state is gone with it
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
      return this.client.drain();
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
    this.client.flushClient();
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
    return this.client.tx.commitInFlight || this.legs === null ? [] : this.legs.busyServers();
  }

  /** A new leg of this client's (LegSet). */
  makeLeg(): ServerLeg {
    const c = this.client;
    const own = this.group === (c.opts.group ?? '');
    const horizon = own ? (c.opts.horizon ?? null) : (c.opts.groupReads?.(this.group)?.horizon ?? null);
    const leg = new ServerLeg(this, c.sink, this.home ?? c.opts.pool, horizon);
    leg.group = this.group;
    return leg;
  }

  /** The client is gone (client.closed): give the connection back in a clean state. */
  close(): void {
    // Ending a transaction on several groups: its end gives every server back (GroupParts.endedAll).
    if (this.ending) return;
    this.parts?.releaseAll();
    const leg = this.leg;
    this.stopKeeping();
    const s = leg?.server;
    if (!leg || !s) return;
    if (!leg.copyIn && !leg.idle && endsWithReadyForQuery(leg.pending)) {
      // Requests are in flight (the client's own, Terminate pipelined behind them, or the proxy's
      // state check or WAL position): let them finish, as PostgreSQL would run them had the client
      // been connected to it directly; their replies go nowhere, and maybeRelease gives the
      // connection back at the last ReadyForQuery (rolled back or reset if need be). Dropping the
      // connection instead would cost the pool a server (issue #12 item 5).
      this.flush();
      return;
    }
    this.endHandOver();
    const pool = this.poolOf(leg);
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
    const { record, tx } = this.client;
    if (record.pinned || tx.checkCause !== null) s.needsReset = true;
    else if (tx.seqDirty) s.needsSequenceReset = true;
    pool.release(s);
  }
}
