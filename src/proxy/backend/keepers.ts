/**
 * Clients that keep a connection they may have left session state on (they ran something the
 * proxy cannot see into) instead of having it checked at once, and the policy that asks them to
 * give it back (check, then release or pin) when someone else needs a connection: a time slice.
 */
import { now } from '../types.js';

export interface Keeper {
  /** Starts the check that gives the connection back (or pins it); false when it cannot now. */
  giveBack(): boolean;
  /** Until when (now() clock, ms) the keeper may go on using its connection although others wait. */
  readonly keptUntil: number;
}

/**
 * How long a client may keep a connection it must have checked before anyone else gets it,
 * although other clients wait: a time slice. Handing over after every transaction costs one
 * check per transaction, and the check (it reads pg_settings) costs the server far more than a
 * small transaction; a slice spreads one check over the transactions the client runs in it. The
 * waiting clients wait up to a slice longer (their latency), the pool's throughput is kept.
 * The slice is KEEP_SLICE_FACTOR × pool size × the check's recent duration, so that the checks of
 * a pool whose every connection changes hands once a slice take the server about 1/FACTOR of
 * one process's time, bounded to [KEEP_SLICE_MIN_MS, KEEP_SLICE_MAX_MS].
 */
export const KEEP_SLICE_FACTOR = 5;
export const KEEP_SLICE_MIN_MS = 5;
export const KEEP_SLICE_MAX_MS = 200;

/** What the keepers need to know of their pool's demand. */
export interface KeeperDemand {
  /** The pool has no room for another connection. */
  readonly full: boolean;
  /** Clients queued beyond the connections being opened for them. */
  readonly unmet: number;
  readonly size: number;
}

export class Keepers {
  /** Clients keeping a connection until it is needed elsewhere, oldest first. */
  private readonly keepers = new Set<Keeper>();
  /** Keepers asked to give their connection back whose check has not ended yet. */
  private readonly returning = new Set<Keeper>();
  /** Asks the next keeper whose slice ends once it ends (at most one timer per pool). */
  private timer: NodeJS.Timeout | null = null;
  /** Recent duration of a hand-over check, ms (moving average). */
  private checkMs = 1;
  private stopped = false;

  constructor(private readonly demand: KeeperDemand) {}

  keep(k: Keeper): void {
    this.keepers.add(k);
    this.reclaim();
  }

  unkeep(k: Keeper): void {
    this.keepers.delete(k);
  }

  /** The time slice of keepers (see KEEP_SLICE_FACTOR), ms. */
  get sliceMs(): number {
    const ms = KEEP_SLICE_FACTOR * this.demand.size * this.checkMs;
    return Math.min(KEEP_SLICE_MAX_MS, Math.max(KEEP_SLICE_MIN_MS, ms));
  }

  /** A hand-over check took `ms` (from sending it to its answer). */
  noteCheck(ms: number): void {
    this.checkMs += (ms - this.checkMs) / 8;
  }

  /** The keeper's check ended (its connection went back, or was pinned to it, or was lost). */
  returned(k: Keeper): void {
    if (this.returning.delete(k)) this.reclaim();
  }

  /**
   * Clients wait and no connection is on its way: keepers whose slice has ended, oldest first,
   * give their connection back, one per waiting client not yet provided for; when every keeper is
   * within its slice, a timer asks again when the first slice ends.
   */
  reclaim(): void {
    if (!this.demand.full) return;
    const t = now();
    let next = Infinity;
    for (const k of this.keepers) {
      if (this.demand.unmet <= this.returning.size) return;
      if (k.keptUntil > t) {
        next = Math.min(next, k.keptUntil);
        continue;
      }
      this.keepers.delete(k);
      if (k.giveBack()) this.returning.add(k);
    }
    if (next === Infinity || this.timer || this.stopped) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.reclaim();
      },
      Math.max(1, Math.ceil(next - t)),
    );
    this.timer.unref();
  }

  /** Every keeper gives its connection back (the pool's target changes or it closes). */
  reclaimAll(): void {
    const ks = [...this.keepers];
    this.keepers.clear();
    for (const k of ks) if (k.giveBack()) this.returning.add(k);
  }

  /** The pool closes: no more timers. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
