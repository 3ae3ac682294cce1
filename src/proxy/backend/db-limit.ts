/**
 * max_db_connections: at most `max` server connections per database on each server, counted
 * across the pools of all its users (PgBouncer's per-database limit; 0: no limit). The pools of a
 * database share one of these. A pool that wants another connection while the database is at its
 * limit first closes an idle connection of another user's pool to the same server (PgBouncer's
 * evict_connection); when none is idle its clients wait in its queue, bounded by
 * query_wait_timeout as usual, and are woken when a connection of the database closes or goes
 * idle. Connections opened outside the pools (monitors, LISTEN, auth_query) are not counted.
 */
import type { Pool } from './pool.js';

/** What a pool asks of the limits it is under (one, or its database's and its user's). */
export interface ConnectionLimit {
  readonly max: number;
  hasRoom(p: Pool): boolean;
  makeRoom(p: Pool): boolean;
  wake(from: Pool): void;
  delete(p: Pool): void;
}

/**
 * The same limit per user (PgBouncer's max_user_connections): the pools of one server user,
 * across its databases, share one DatabaseLimit; a pool under both limits gets BothLimits.
 */
export class BothLimits implements ConnectionLimit {
  constructor(
    readonly database: DatabaseLimit,
    readonly user: DatabaseLimit,
  ) {}

  get max(): number {
    return Math.max(this.database.max, this.user.max);
  }

  hasRoom(p: Pool): boolean {
    return this.database.hasRoom(p) && this.user.hasRoom(p);
  }

  makeRoom(p: Pool): boolean {
    return this.database.makeRoom(p) && this.user.makeRoom(p);
  }

  wake(from: Pool): void {
    this.database.wake(from);
    this.user.wake(from);
  }

  delete(p: Pool): void {
    this.database.delete(p);
    this.user.delete(p);
  }
}

export class DatabaseLimit implements ConnectionLimit {
  private readonly pools = new Set<Pool>();

  constructor(public max: number) {}

  add(p: Pool): void {
    this.pools.add(p);
  }

  delete(p: Pool): void {
    this.pools.delete(p);
  }

  get size(): number {
    return this.pools.size;
  }

  /** The database's connections to `p`'s server: open, lent, being checked or being opened. */
  count(p: Pool): number {
    let n = 0;
    for (const q of this.pools) if (sameServer(p, q)) n += q.total;
    return n;
  }

  /** Whether `p` may open one more connection now, without closing anything. */
  hasRoom(p: Pool): boolean {
    return this.max === 0 || this.count(p) < this.max;
  }

  /**
   * Whether `p` may open one more connection: there is room, or an idle connection of another
   * pool of the database on the same server was closed to make some.
   */
  makeRoom(p: Pool): boolean {
    if (this.hasRoom(p)) return true;
    for (const q of this.pools) if (q !== p && sameServer(p, q) && q.evictIdle()) return true;
    return false;
  }

  /**
   * A connection of the database closed or went idle in `from`: the other pools of the database
   * with clients waiting try again (they may now have room, or an idle connection to close).
   */
  wake(from: Pool): void {
    if (this.max === 0) return;
    for (const q of this.pools) if (q !== from && q.waiting > 0 && sameServer(from, q)) q.wake();
  }

  /** After a reload (the limit may have grown): every pool with clients waiting tries again. */
  wakeAll(): void {
    for (const q of this.pools) if (q.waiting > 0) q.wake();
  }
}

function sameServer(a: Pool, b: Pool): boolean {
  return a.target.port === b.target.port && a.target.host === b.target.host;
}
