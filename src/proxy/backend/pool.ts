/**
 * A pool of server connections for one (database, user, server). State is the list an object is
 * in (PgBouncer's discipline): `idle` connections, `active` ones lent to clients, `waiters`
 * (clients queued for a connection, first come first served). A connection goes back to the pool
 * only in a clean state: no transaction open (rolled back otherwise), no cancel in flight, and
 * reset with DISCARD ALL when a client left state we cannot restore. Idle connections are checked
 * before reuse when they have been idle a while, and retired after their idle time or lifetime.
 */
import { SqlState } from '../../protocol/sqlstate.js';
import type { ServerCredentials, ServerTarget } from '../types.js';
import { now, readTime } from '../types.js';
import { ServerConn } from './server-conn.js';
import type { ServerLoginError } from './server-conn.js';
import type { ConnectionLimit } from './db-limit.js';
import { ConcurrencyLimit, STALL_MS } from './concurrency-limit.js';
import { Keepers } from './keepers.js';
import { cleanForReuse } from './server-reset.js';
import { poolError } from './pool-types.js';
import type { PoolSettings, PoolStats } from './pool-types.js';
import type { NodeConcurrency } from './concurrency-limit.js';
import type { Keeper, KeeperDemand } from './keepers.js';
import { WaitQueue } from './wait-queue.js';
import type { Waiter } from './wait-queue.js';

export type { PoolSettings, PoolStats } from './pool-types.js';
export { poolError } from './pool-types.js';
export type { Keeper } from './keepers.js';
export { KEEP_SLICE_FACTOR, KEEP_SLICE_MAX_MS, KEEP_SLICE_MIN_MS } from './keepers.js';

export class Pool implements KeeperDemand {
  readonly idle: ServerConn[] = [];
  readonly active = new Set<ServerConn>();
  /** Being reset, rolled back or checked: neither idle nor lent. */
  readonly tested = new Set<ServerConn>();
  private connecting = 0;
  private readonly waiters = new WaitQueue((w) =>
    w.fail(
      poolError(
        SqlState.TOO_MANY_CONNECTIONS,
        `no server connection became available within query_wait_timeout (${this.settings.queryWaitTimeoutMs / 1000} s)`,
      ),
    ),
  );
  paused = false;
  /**
   * Held: the server has no primary for now (a failover or switchover is under way). Clients
   * queue as when paused; after the hold timeout they get 57P03 and new ones fail at once.
   */
  private held: { timer: NodeJS.Timeout; expired: boolean; reason: string; self: boolean } | null = null;
  /**
   * For a pool that follows the cluster's primary (HA on): a server that cannot be reached holds
   * the pool for this long (ms) instead of failing the queued clients, since a failover is the
   * likely cause and HA will point the pool at the new primary; 0 = fail at once.
   */
  holdOnUnreachableMs = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Bumped by retarget(): connections of an older generation never return to `idle`. */
  private generation = 0;
  private closed = false;
  /** Closed (close()): gives out no more connections; a holder of it asks for the pool anew. */
  get isClosed(): boolean {
    return this.closed;
  }
  /** Parameters a fresh server reported (for clients' start-up ParameterStatus). */
  serverParams = new Map<string, string>();
  readonly stats: PoolStats = {
    xacts: 0,
    queries: 0,
    bytesReceived: 0,
    bytesSent: 0,
    xactTimeUs: 0,
    queryTimeUs: 0,
    waitTimeUs: 0,
    waits: 0,
    stateChecks: 0,
  };
  /** Clients keeping a connection after user code, and when they must give it back (keepers.ts). */
  private readonly keepers = new Keepers(this);
  /** Server-side statement names some connection prepared successfully (their text is valid). */
  readonly knownStatements = new Set<string>();
  /** The last login failure, for SHOW and for failing queued clients. */
  lastError: ServerLoginError | null = null;
  /**
   * The per-database limit shared with the database's other pools (max_db_connections), with
   * the user's (max_user_connections) when it has one.
   */
  limit: ConnectionLimit | null = null;
  /** Transactions running on the server at once (node_concurrency): lent connections. */
  readonly conc: ConcurrencyLimit;
  private stallTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly database: string,
    public target: ServerTarget,
    private creds: ServerCredentials,
    public settings: PoolSettings,
  ) {
    this.conc = new ConcurrencyLimit(concurrencySetting(settings), settings.size);
  }

  /**
   * New settings (a reload): a larger size serves queued clients at once, a smaller one closes
   * idle connections beyond it now and lent ones as they come back.
   */
  applySettings(s: PoolSettings): void {
    this.settings = s;
    this.conc.configure(concurrencySetting(s), s.size);
    this.trim();
    this.grow();
  }

  /** Closes idle connections beyond the pool's size (oldest first). */
  private trim(): void {
    let closed = false;
    while (this.total > this.settings.size && this.idle.length > 0) {
      this.idle.shift()!.close();
      closed = true;
    }
    if (closed) this.limit?.wake(this);
  }

  /**
   * Closes one idle connection to make room for another pool of the database (max_db_connections);
   * false when none is idle.
   */
  evictIdle(): boolean {
    const c = this.idle.shift();
    if (c === undefined) return false;
    c.close();
    return true;
  }

  /** Clients queue here and room may have appeared (another pool of the database let go of some). */
  wake(): void {
    this.grow();
  }

  get waiting(): number {
    return this.waiters.size;
  }

  get total(): number {
    return this.idle.length + this.active.size + this.tested.size + this.connecting;
  }

  keep(k: Keeper): void {
    this.keepers.keep(k);
  }

  unkeep(k: Keeper): void {
    this.keepers.unkeep(k);
  }

  /** The time slice of keepers (see KEEP_SLICE_FACTOR), ms. */
  get keepSliceMs(): number {
    return this.keepers.sliceMs;
  }

  /** A hand-over check took `ms` (from sending it to its answer). */
  noteCheck(ms: number): void {
    this.keepers.noteCheck(ms);
  }

  /** The keeper's check ended (its connection went back, or was pinned to it, or was lost). */
  returned(k: Keeper): void {
    this.keepers.returned(k);
  }

  // KeeperDemand (keepers.ts)
  get full(): boolean {
    return this.total >= this.settings.size || !this.conc.room;
  }
  get unmet(): number {
    return this.waiters.size - this.connecting;
  }
  get size(): number {
    return this.settings.size;
  }

  rememberStatement(name: string): void {
    if (this.knownStatements.size >= 10_000) this.knownStatements.clear();
    this.knownStatements.add(name);
  }

  /** Newer credentials (a client logged in with SCRAM keys after a password change). */
  updateCredentials(c: ServerCredentials): void {
    this.creds = c;
  }

  /**
   * An idle connection right now, when one needs no check (the common case under load): no
   * promise, no waiting. Null means: use acquire().
   */
  tryAcquire(): ServerConn | null {
    if (this.closed || this.paused || this.held || this.waiters.size > 0 || !this.conc.room) return null;
    const c = this.idle[this.idle.length - 1];
    if (c === undefined) return null;
    const t = now();
    if (c.closed || t - c.createdAt > this.settings.serverLifetimeMs) return null;
    if (t - c.lastUsedAt > this.settings.serverCheckDelayMs) return null;
    this.idle.pop();
    c.lastUsedAt = t;
    this.active.add(c);
    this.conc.started();
    return c;
  }

  /** A connection for a client; waits (bounded) when the pool is full or paused. */
  acquire(): Promise<ServerConn> {
    return new Promise((resolve, reject) => this.acquireThen(resolve, reject));
  }

  /**
   * acquire() with callbacks: `ready` runs synchronously, without a promise or a microtask, when
   * a connection is idle and needs no check, and likewise when a released connection goes
   * straight to a queued client (from inside release(): the caller must be in a consistent state
   * when it releases). Failures always arrive asynchronously.
   */
  acquireThen(ready: (c: ServerConn) => void, fail: (e: ServerLoginError) => void): void {
    if (this.closed) {
      const e = poolError(SqlState.CANNOT_CONNECT_NOW, 'the pool is shutting down');
      queueMicrotask(() => fail(e));
      return;
    }
    if (this.held?.expired) {
      const e = poolError(SqlState.CANNOT_CONNECT_NOW, this.held.reason);
      queueMicrotask(() => fail(e));
      return;
    }
    const since = now();
    if (!this.paused && !this.held && this.conc.room) {
      const c = this.takeIdle(since);
      if (c) return this.lend(c, ready, fail, since);
    }
    const timeout = this.settings.queryWaitTimeoutMs;
    const w: Waiter = { ready, fail, since, deadline: timeout > 0 ? since + timeout : Infinity };
    this.waiters.push(w);
    this.stats.waits++;
    if (!this.conc.room) this.watchStall();
    this.grow();
    this.keepers.reclaim();
  }

  /**
   * Clients wait at node_concurrency: if no transaction ends for STALL_MS, `auto` lets one more
   * run (they may be waiting on each other), and so on while they still wait.
   */
  private watchStall(): void {
    if (this.stallTimer !== null || !this.conc.isAdaptive || this.closed) return;
    const ended = this.conc.ended;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      if (this.closed || this.waiters.size === 0 || this.conc.room) return;
      if (this.conc.ended === ended) {
        this.conc.stalled();
        this.grow();
      }
      if (this.waiters.size > 0 && !this.conc.room) this.watchStall();
    }, STALL_MS);
    this.stallTimer.unref();
  }

  /** An idle connection within its lifetime at time `t` (now()), or null. */
  private takeIdle(t: number): ServerConn | null {
    while (this.idle.length > 0) {
      const c = this.idle.pop()!;
      if (c.closed) continue;
      if (t - c.createdAt > this.settings.serverLifetimeMs) {
        c.close();
        continue;
      }
      return c;
    }
    return null;
  }

  /** Hands a connection out, checking it first when it sat idle for a while. */
  private lend(
    c: ServerConn,
    ready: (c: ServerConn) => void,
    fail: (e: ServerLoginError) => void,
    t: number,
  ): void {
    this.conc.started();
    if (t - c.lastUsedAt <= this.settings.serverCheckDelayMs) {
      c.lastUsedAt = t;
      this.active.add(c);
      ready(c);
      return;
    }
    this.tested.add(c);
    void c.query('SELECT 1', this.settings.connectTimeoutMs).then(
      (r) => this.afterCheck(c, r.error === null, ready, fail),
      () => this.afterCheck(c, false, ready, fail),
    );
  }

  private afterCheck(
    c: ServerConn,
    ok: boolean,
    ready: (c: ServerConn) => void,
    fail: (e: ServerLoginError) => void,
  ): void {
    this.tested.delete(c);
    if (!ok || c.closed) {
      c.destroy();
      this.conc.cancelled();
      this.acquireThen(ready, fail);
      return;
    }
    c.lastUsedAt = now();
    this.active.add(c);
    ready(c);
  }

  /**
   * Serves queued clients from idle connections, then opens connections while clients wait that
   * node_concurrency would let run, and the pool has room.
   */
  private grow(): void {
    this.serveWaiters();
    const room = this.conc.limit - this.conc.inflight;
    while (
      !this.closed &&
      !this.paused &&
      !this.held &&
      this.waiters.size > this.connecting &&
      room > this.connecting &&
      this.total < this.settings.size
    ) {
      if (this.limit !== null && !this.limit.makeRoom(this)) break;
      this.connectOne();
    }
  }

  /**
   * A connection outside the pool's accounting (the LISTEN fan-out, monitors, auth_query), with
   * the pool's credentials; `startupParams` are the proxy's own (never a client's).
   */
  openDedicated(applicationName: string, startupParams: Record<string, string> = {}): Promise<ServerConn> {
    return ServerConn.connect(this.target, this.creds, {
      connectTimeoutMs: this.settings.connectTimeoutMs,
      tls: this.settings.tls,
      startupParams: { application_name: applicationName, ...startupParams },
    });
  }

  private connectOne(): void {
    this.connecting++;
    const generation = this.generation;
    this.openDedicated('pgscale').then(
      (c) => {
        this.connecting--;
        if (generation !== this.generation) {
          // Opened to the server this pool no longer targets.
          c.close();
          this.grow();
          return;
        }
        c.poolGeneration = generation;
        this.lastError = null;
        if (this.serverParams.size === 0) this.serverParams = new Map(c.params);
        c.onClose(() => this.forget(c));
        if (this.closed) return c.close();
        this.idle.push(c);
        this.serveWaiters();
        this.grow();
      },
      (e: ServerLoginError) => {
        this.connecting--;
        this.limit?.wake(this);
        // A connection to the server being replaced (failover, switchover) failing says nothing
        // about the next one: queued clients wait for the new primary instead of failing.
        if (generation !== this.generation || (this.held && !this.held.self)) {
          this.grow();
          return;
        }
        if (this.holdOnUnreachableMs > 0 && e.sqlstate === SqlState.CONNECTION_FAILURE) {
          if (!this.held) {
            this.hold(
              this.holdOnUnreachableMs,
              `the primary of database "${this.database}" cannot be reached (${e.message})`,
            );
            this.held!.self = true;
          }
          this.retryLater();
          return;
        }
        this.lastError = e;
        // Without a server nobody can be served: fail the queued clients with the server's reason.
        const ws = this.waiters.take(Math.max(0, this.waiters.size - this.connecting));
        for (const w of ws) {
          w.fail(e);
        }
      },
    );
  }

  private serveWaiters(): void {
    if (this.waiters.size === 0) return;
    const t = now();
    while (this.waiters.size > 0 && !this.paused && !this.held && this.conc.room) {
      const c = this.takeIdle(t);
      if (!c) return;
      const w = this.waiters.shift()!;
      this.stats.waitTimeUs += Math.round((t - w.since) * 1000);
      this.lend(c, w.ready, w.fail, t);
    }
  }

  private forget(c: ServerConn): void {
    if (this.active.delete(c)) this.conc.cancelled();
    this.tested.delete(c);
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    if (this.waiters.size > 0) this.grow();
    this.limit?.wake(this);
  }

  /**
   * Takes a connection back from a client. It returns to `idle` only once clean: an open
   * transaction is rolled back, unrestorable state is discarded, in-flight cancels have landed.
   */
  release(c: ServerConn): void {
    // The time of the read that released it (no clock read): if anything earlier than now, so a
    // connection is checked sooner, never later, and a hold time is read short by as much.
    const t = readTime();
    // The transaction's hold time (lastUsedAt is when it was lent) teaches node_concurrency.
    if (this.active.delete(c)) this.conc.finished(t - c.lastUsedAt, t);
    c.setHandler(null);
    if (c.closed) return this.forget(c);
    if (this.closed || c.poolGeneration !== this.generation) {
      c.destroy();
      return this.forget(c);
    }
    c.lastUsedAt = t;
    const dirty =
      c.txStatus !== 'I' ||
      c.needsReset ||
      c.needsSequenceReset ||
      c.cancelsInFlight > 0 ||
      this.settings.mode === 'session';
    if (!dirty) {
      this.idle.push(c);
      this.serveWaiters();
      if (this.idle.length > 0) this.wentIdle();
      return;
    }
    this.tested.add(c);
    // Clients queued by node_concurrency alone may take an idle connection while this one is cleaned.
    if (this.waiters.size > 0) this.serveWaiters();
    cleanForReuse(c, this.settings.mode === 'session').then(
      (ok) => {
        this.tested.delete(c);
        if (!ok || c.closed || this.closed || c.poolGeneration !== this.generation) {
          c.destroy();
          this.forget(c);
          return;
        }
        this.idle.push(c);
        this.serveWaiters();
        if (this.idle.length > 0) this.wentIdle();
      },
      () => {
        this.tested.delete(c);
        c.destroy();
        this.forget(c);
      },
    );
  }

  /**
   * A connection stayed idle (nobody here waits): beyond the pool's size (after a reload shrank
   * it) it closes; else other pools of the database waiting for room may take its place.
   */
  private wentIdle(): void {
    if (this.total > this.settings.size) this.trim();
    else if (this.limit !== null && this.limit.max > 0) this.limit.wake(this);
  }

  /** Closes idle connections past their idle time or lifetime, keeps min_pool_size open. */
  maintain(): void {
    const t = now();
    for (const c of [...this.idle]) {
      const tooOld = t - c.createdAt > this.settings.serverLifetimeMs;
      const tooIdle =
        t - c.lastUsedAt > this.settings.serverIdleTimeoutMs && this.total > this.settings.minSize;
      if (tooOld || tooIdle) {
        this.idle.splice(this.idle.indexOf(c), 1);
        c.close();
      }
    }
    while (
      !this.closed &&
      !this.paused &&
      !this.held &&
      this.total < this.settings.minSize &&
      this.lastError === null &&
      (this.limit === null || this.limit.hasRoom(this))
    ) {
      this.connectOne();
    }
  }

  /** Stops handing out connections (PAUSE); resumes with resume(). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.grow();
  }

  /**
   * Holds new work (no primary for now): clients queue; after `timeoutMs` the queued ones get
   * 57P03 with `reason` and later ones fail at once, until retarget() or unhold().
   */
  hold(timeoutMs: number, reason: string): void {
    if (this.held) {
      // HA's hold supersedes one the pool took itself: only HA releases it now.
      this.held.self = false;
      return;
    }
    const timer = setTimeout(() => {
      if (!this.held) return;
      this.held.expired = true;
      for (const w of this.waiters.drain()) {
        w.fail(poolError(SqlState.CANNOT_CONNECT_NOW, reason));
      }
    }, timeoutMs);
    timer.unref();
    this.held = { timer, expired: false, reason, self: false };
  }

  /** Held by itself (server unreachable): try a connection again soon; one that works releases it. */
  private retryLater(): void {
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.held?.self || this.closed) return;
      const generation = this.generation;
      this.connecting++;
      this.openDedicated('pgscale').then(
        (c) => {
          this.connecting--;
          if (generation !== this.generation || this.closed) return c.close();
          c.poolGeneration = generation;
          c.onClose(() => this.forget(c));
          this.idle.push(c);
          if (this.held?.self) this.unhold();
          else this.serveWaiters();
        },
        () => {
          this.connecting--;
          this.retryLater();
        },
      );
    }, 200);
    this.retryTimer.unref();
  }

  unhold(): void {
    if (!this.held) return;
    clearTimeout(this.held.timer);
    this.held = null;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.grow();
  }

  get isHeld(): boolean {
    return this.held !== null;
  }

  /**
   * Points the pool at another server (the new primary after a failover or switchover): idle
   * connections close, lent ones close when they come back, statements are prepared afresh, and
   * held clients are served from the new server.
   */
  retarget(target: ServerTarget): void {
    this.target = target;
    this.generation++;
    this.conc.reset();
    this.knownStatements.clear();
    this.lastError = null;
    this.closeIdle();
    for (const c of this.tested) c.destroy();
    this.keepers.reclaimAll();
    this.unhold();
    this.grow();
  }

  /** Closes every connection; queued clients get an error. */
  close(reason = 'the pool is shutting down'): void {
    this.closed = true;
    this.keepers.stop();
    if (this.stallTimer !== null) clearTimeout(this.stallTimer);
    this.waiters.stop();
    for (const w of this.waiters.drain()) {
      w.fail(poolError(SqlState.ADMIN_SHUTDOWN, reason));
    }
    for (const c of this.idle.splice(0)) c.close();
    for (const c of this.tested) c.destroy();
    this.keepers.reclaimAll();
    this.limit?.delete(this);
    this.limit?.wake(this);
  }

  /** Closes idle connections now (KILL, RECONNECT, topology change). */
  closeIdle(): void {
    for (const c of this.idle.splice(0)) c.close();
  }
}

/** node_concurrency as it applies to a pool: session pooling lends a connection per session, not per transaction. */
function concurrencySetting(s: PoolSettings): NodeConcurrency {
  return s.mode === 'session' ? 0 : s.nodeConcurrency;
}
