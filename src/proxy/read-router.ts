/**
 * Read scaling: where a client's read goes. Each replica has a monitor that polls, every few
 * milliseconds, whether it is still a replica and how far it has replayed the WAL (and the
 * primary's monitor how far the primary has written), so lag is known in bytes. A replica that
 * fails its checks, or lags beyond max_lag_bytes, leaves the read set and comes back once it
 * recovers. A read that must see some commit (the client's own under read-your-writes, any
 * commit relayed by this proxy under causal, anything committed before the read began under
 * linearizable: src/proxy/commit-horizon.ts) goes only to a replica that has replayed its WAL
 * position, waits a bounded time for one, and otherwise goes to the primary.
 */
import type { ServerConn } from './backend/server-conn.js';
import type { Pool } from './backend/pool.js';
import { now } from './types.js';
import { lsnDiff, parseLsn } from '../protocol/lsn.js';

import type { Consistency } from './types.js';
export type { Consistency };
export { CONSISTENCY_LEVELS } from './types.js';
export type BalanceMode = 'round-robin' | 'least-outstanding';

export interface RouterSettings {
  consistency: Consistency;
  rywWaitMs: number;
  maxLagBytes: number;
  checkIntervalMs: number;
  balance: BalanceMode;
  /** Failed checks in a row before a replica leaves the read set. */
  failuresToBan: number;
  /** The primary's share of reads, in replica units (0: reads only on replicas while any is usable). */
  primaryWeight: number;
}

/**
 * Index of the target with the least load per unit of weight ((load + 1) / weight, so that an idle
 * target still counts its weight). A target that is `full` (its node runs as many transactions as
 * node_concurrency lets it) comes only after every one with room; among full ones the least loaded
 * again, so that the queues stay even. Ties go to the first one found scanning from `start`
 * (modulo the length), so that equal targets take turns instead of the first one taking everything
 * under light load.
 */
export function leastLoaded(
  targets: readonly { load: number; weight: number; full?: boolean }[],
  start: number,
): number {
  const n = targets.length;
  let best = -1;
  let bestScore = Infinity;
  for (let k = 0; k < n; k++) {
    const i = (start + k) % n;
    const t = targets[i]!;
    if (t.weight <= 0) continue;
    const score = (t.load + 1) / t.weight + (t.full === true ? FULL_PENALTY : 0);
    if (score < bestScore) {
      best = i;
      bestScore = score;
    }
  }
  return best;
}

/** Added to a full target's score: above any load a target with room can have. */
const FULL_PENALTY = 1e9;

/** Polls one node: role and WAL position. */
export class NodeMonitor {
  inRecovery: boolean | null = null;
  /** Replica: replayed position; primary: current write position. */
  lsn: bigint | null = null;
  healthy = false;
  failures = 0;
  lastError: string | null = null;
  lastCheckAt = 0;
  private conn: ServerConn | null = null;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private stopped = false;
  private readonly waiters: (() => void)[] = [];

  constructor(
    readonly name: string,
    private readonly open: () => Promise<ServerConn>,
    private readonly intervalMs: number,
    private readonly failuresToBan: number,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
    void this.check();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.conn?.close();
    this.conn = null;
  }

  /** Resolves at the next completed check (for read-your-writes waits). */
  nextCheck(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }

  /**
   * Checks now rather than at the next tick, unless a check is running: a read waits for this
   * node's position. Waiting reads thus poll the node back to back (one query at a time, however
   * many reads wait) and learn of its progress within one round trip, not one interval.
   */
  kick(): void {
    if (!this.busy && !this.stopped && this.timer !== null) void this.check();
  }

  private async check(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      if (!this.conn || this.conn.closed) this.conn = await this.open();
      const r = await this.conn.query(
        'SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END',
        Math.max(1000, this.intervalMs * 20),
      );
      if (r.error) throw new Error('check query failed');
      const row = r.rows[0] ?? [];
      this.inRecovery = row[0] === 't';
      this.lsn = parseLsn(row[1]);
      this.failures = 0;
      this.healthy = true;
      this.lastError = null;
    } catch (e) {
      this.failures++;
      this.lastError = (e as Error).message;
      if (this.failures >= this.failuresToBan) this.healthy = false;
      this.conn?.destroy();
      this.conn = null;
    } finally {
      this.busy = false;
      this.lastCheckAt = now();
      for (const w of this.waiters.splice(0)) w();
    }
  }
}

export interface ReplicaTarget {
  readonly name: string;
  readonly monitor: NodeMonitor;
  readonly pool: Pool;
  outstanding: number;
  readsServed: number;
}

export interface ReadChoice {
  pool: Pool;
  replica: ReplicaTarget | null;
}

/** Chooses a server for one client's read; one router per (database, user) pool group. */
export class ReadRouter {
  private rr = 0;
  /**
   * No replica behind this position serves reads, at any level (a shard moved to this group:
   * a replica that has not replayed its arrival would not show it at all). Null: none.
   */
  floor: bigint | null = null;

  constructor(
    readonly primary: { pool: Pool; monitor: NodeMonitor | null },
    readonly replicas: ReplicaTarget[],
    public settings: RouterSettings,
  ) {}

  /** Replicas usable for reads now (healthy, really replicas, not lagging too far). */
  usable(): ReplicaTarget[] {
    const plsn = this.primary.monitor?.lsn ?? null;
    return this.replicas.filter((r) => {
      const m = r.monitor;
      if (!m.healthy || m.inRecovery !== true || m.lsn === null) return false;
      if (this.floor !== null && m.lsn < this.floor) return false;
      if (
        plsn !== null &&
        this.settings.maxLagBytes > 0 &&
        lsnDiff(plsn, m.lsn) > BigInt(this.settings.maxLagBytes)
      )
        return false;
      return true;
    });
  }

  /**
   * One of the eligible replicas, or the primary when it takes reads (primaryWeight > 0); null
   * when none is eligible.
   */
  private pick(eligible: ReplicaTarget[]): ReadChoice | null {
    if (eligible.length === 0) return null;
    const pw = this.settings.primaryWeight;
    if (this.settings.balance === 'least-outstanding') {
      // A replica's load: the reads it runs and those queued for it (node_concurrency).
      const loads = eligible.map((r) => ({
        load: r.outstanding + r.pool.waiting,
        weight: 1,
        full: !r.pool.conc.room,
      }));
      if (pw > 0) {
        // The primary's load is everything its pool runs or queues, writes included.
        const p = this.primary.pool;
        loads.push({ load: p.active.size + p.waiting, weight: pw, full: !p.conc.room });
      }
      const i = leastLoaded(loads, this.rr++);
      return i < eligible.length ? { pool: eligible[i]!.pool, replica: eligible[i]! } : this.toPrimary;
    }
    // Weighted round robin: each replica weighs 1, the primary primaryWeight.
    const slot = this.rr++ % (eligible.length + pw);
    if (slot >= eligible.length) return this.toPrimary;
    return { pool: eligible[slot]!.pool, replica: eligible[slot]! };
  }

  private get toPrimary(): ReadChoice {
    return { pool: this.primary.pool, replica: null };
  }

  /**
   * The choice for a read if it can be made now; null when it must wait for a replica to replay
   * `minLsn` (then forRead waits). `minLsn` is the position the read must see (the session works
   * it out from its level: its own last commit, the proxy's commit horizon, the primary's
   * position); replicas behind it are skipped. Under eventual it is ignored.
   */
  readNow(consistency: Consistency, minLsn: bigint | null): ReadChoice | null {
    if (consistency === 'primary' || this.replicas.length === 0) return this.toPrimary;
    const usable = this.usable();
    const eligible =
      consistency !== 'eventual' && minLsn !== null ? usable.filter((r) => r.monitor.lsn! >= minLsn) : usable;
    // Nobody usable at all: the primary serves the read at once.
    return this.pick(eligible) ?? (usable.length === 0 ? this.toPrimary : null);
  }

  /** readNow, waiting up to rywWaitMs for a replica to replay `minLsn`; then the primary. */
  async forRead(consistency: Consistency, minLsn: bigint | null): Promise<ReadChoice> {
    const deadline = now() + this.settings.rywWaitMs;
    for (;;) {
      const choice = this.readNow(consistency, minLsn);
      if (choice) return choice;
      if (now() >= deadline) return this.toPrimary;
      const usable = this.usable();
      for (const u of usable) u.monitor.kick();
      await Promise.race([
        Promise.race(usable.map((u) => u.monitor.nextCheck())),
        new Promise((res) => setTimeout(res, Math.max(1, deadline - now()))),
      ]);
    }
  }
}
