/**
 * What a read must see, beyond its own client's commits, for the consistency levels that reach
 * across clients (docs/proxy.md, "Read consistency"). One CommitHorizon per primary server, shared
 * by every pool and client of the proxy that writes there:
 *
 * - `causal`: `lsn` is the highest WAL position after a commit relayed by this proxy; a read goes
 *   only to a replica that has replayed it. One bigint. The sessions learn a commit's position
 *   with `pg_current_wal_lsn()` on the same connection right after it, while the client may
 *   already have its acknowledgement (holding it back would cost every write a round trip): each
 *   such question is registered (beginCapture) in the same turn of the event loop as the
 *   acknowledgement is queued, and a causal read that arrives while questions are out waits for
 *   those (settled) — only when a commit has just happened, and one round trip at most.
 * - `linearizable`: `position()` asks the primary where its WAL stands now, so that commits made
 *   through other proxies count too. Reads that arrive while a question is out wait for the next
 *   one (a question asked before a read arrived may predate a commit the reader already saw), so
 *   any number of concurrent reads costs one question at a time.
 */
import type { ServerConn } from './backend/server-conn.js';
import { parseLsn } from '../protocol/lsn.js';

/** Asks the primary its current WAL position; null when it cannot be known (then: the primary). */
export type PositionAsker = () => Promise<bigint | null>;

export class CommitHorizon {
  /** Highest commit position relayed through this proxy (causal); null before the first one. */
  lsn: bigint | null = null;
  /** Questions asked of the primary (linearizable), for SHOW and tests. */
  questions = 0;
  /** A question is out. */
  private inFlight = false;
  /** The batch of reads that will share the next question (asked when none is out). */
  private batch: { promise: Promise<bigint | null>; resolve: (v: bigint | null) => void } | null = null;

  constructor(private readonly ask: PositionAsker) {}

  /** Captures out (token → when it began, performance.now() ms), oldest first. */
  private readonly open = new Map<number, number>();
  private lastToken = 0;
  /** Reads waiting for the captures begun before them: up to which token, and how to wake them. */
  private settling: { upTo: number; wake: (ok: boolean) => void; timer: NodeJS.Timeout }[] = [];

  /** A commit at `lsn` was acknowledged (or is about to be): reads from now on must see it. */
  advance(lsn: bigint): void {
    if (this.lsn === null || lsn > this.lsn) this.lsn = lsn;
  }

  /** A session asks the position after a commit: reads arriving from now wait for the answer. */
  beginCapture(): number {
    const token = ++this.lastToken;
    this.open.set(token, performance.now());
    return token;
  }

  /** The answer (null: none, the connection was lost); wakes the reads that waited for it. */
  endCapture(token: number, lsn: bigint | null): void {
    if (lsn !== null) this.advance(lsn);
    if (!this.open.delete(token) || this.settling.length === 0) return;
    const oldest = this.oldestOpen();
    this.settling = this.settling.filter((w) => {
      if (w.upTo >= oldest) return true;
      clearTimeout(w.timer);
      w.wake(true);
      return false;
    });
  }

  /**
   * null when no capture is out (the usual case: `lsn` is complete); otherwise a promise that is
   * true once every capture begun before this call has ended, false after `timeoutMs` (then the
   * read goes to the primary).
   */
  settled(timeoutMs: number): Promise<boolean> | null {
    if (this.open.size === 0) return null;
    const upTo = this.lastToken;
    return new Promise((resolve) => {
      const w = {
        upTo,
        wake: resolve,
        timer: setTimeout(() => {
          this.settling = this.settling.filter((x) => x !== w);
          this.expire();
          resolve(false);
        }, timeoutMs),
      };
      this.settling.push(w);
    });
  }

  /** Captures out for a minute are forgotten: a lost answer must not stall causal reads forever. */
  private expire(): void {
    const limit = performance.now() - 60_000;
    for (const [token, at] of this.open) {
      if (at >= limit) break;
      this.open.delete(token);
    }
  }

  private oldestOpen(): number {
    for (const token of this.open.keys()) return token;
    return Infinity;
  }

  /**
   * The primary's WAL position, asked after this call: reads that arrive together share one
   * question (the reads of one turn of the event loop, and all those that arrive while a
   * question is out). Never rejects (null when the primary could not answer).
   */
  position(): Promise<bigint | null> {
    if (this.batch) return this.batch.promise;
    let resolve: (v: bigint | null) => void = () => undefined;
    const promise = new Promise<bigint | null>((r) => (resolve = r));
    this.batch = { promise, resolve };
    // The question out may have been answered before this read arrived: the batch waits for it.
    if (!this.inFlight) setImmediate(() => this.launch());
    return promise;
  }

  private launch(): void {
    const batch = this.batch;
    if (!batch || this.inFlight) return;
    this.batch = null;
    this.inFlight = true;
    this.questions++;
    const done = (v: bigint | null) => {
      this.inFlight = false;
      batch.resolve(v);
      if (this.batch) this.launch();
    };
    this.ask().then(done, () => done(null));
  }
}

/** The later of two positions, null counting as "nothing to wait for". */
export function laterLsn(a: bigint | null, b: bigint | null): bigint | null {
  if (a === null) return b;
  if (b === null) return a;
  return a > b ? a : b;
}

/**
 * Asks `pg_current_wal_lsn()` on a connection of its own to the primary (opened on first use and
 * again after a failure, so that after a failover it reaches the new primary); one question at a
 * time, which CommitHorizon.position guarantees.
 */
export class PrimaryPositionAsker {
  private conn: ServerConn | null = null;
  private closed = false;

  constructor(
    /** Opens a dedicated connection to the current primary. */
    public open: () => Promise<ServerConn>,
    private readonly timeoutMs: number,
  ) {}

  readonly ask: PositionAsker = async () => {
    if (this.closed) return null;
    try {
      if (!this.conn || this.conn.closed) this.conn = await this.open();
      const r = await this.conn.query('SELECT pg_current_wal_lsn()', this.timeoutMs);
      if (r.error) throw new Error('pg_current_wal_lsn() failed');
      return parseLsn(r.rows[0]?.[0]);
    } catch {
      // A replica now (failover) or gone: asked again on a new connection next time.
      this.conn?.destroy();
      this.conn = null;
      return null;
    }
  };

  close(): void {
    this.closed = true;
    this.conn?.close();
    this.conn = null;
  }
}
