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

export class DatabaseLimit {
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
