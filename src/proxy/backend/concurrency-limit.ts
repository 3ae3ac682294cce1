/**
 * node_concurrency: how many transactions a pool lets run on its server at once (connections lent
 * to clients), apart from how many connections it keeps (pool_size). Clients beyond the limit
 * queue in the proxy, which costs little, instead of on the node, where every extra backend
 * competing for the CPU makes each transaction slower and, on a loaded node, all of them fewer.
 *
 * A fixed limit, or `auto`: a gradient limit in the manner of Netflix's concurrency-limits (TCP
 * Vegas applied to requests). The transactions' hold times are averaged over windows (at least
 * WINDOW_MIN transactions, twice the limit, and WINDOW_MS); the least window average of this
 * epoch and the last stands for the node's time without a queue (minRtt). Each window the limit
 * moves towards `limit × minRtt / rtt + √limit`, the gradient bounded to [0.5, 1]: while
 * transactions take no longer than without a queue the limit grows by about √limit, once they
 * queue on the node it shrinks in proportion, and it settles a little past the point where more
 * concurrency stops adding throughput. A node that is already saturated shows no queue by this
 * measure unless the limit is lowered now and then: each epoch begins with a probe window at two
 * thirds of the limit, whose time joins the candidates for minRtt. The limit never grows while the pool
 * does not use what it has (no demand to measure), and stays within [AUTO_MIN, pool size]; it
 * starts at the pool size, and grows by one when clients wait and nothing ends (stalled()). Per
 * transaction this costs a compare on lending and a few additions on release; the rest runs once
 * a window.
 */
/** `auto`, or a fixed number of transactions at once; 0: no limit beyond the pool's size. */
export type NodeConcurrency = 'auto' | number;

/** The smallest limit `auto` goes down to. */
export const AUTO_MIN = 2;
/** A window of `auto` spans at least this many transactions (and twice the limit)… */
export const WINDOW_MIN = 24;
/** …and at least this long (ms): longer than the stalls of a node throttled by its CPU quota. */
export const WINDOW_MS = 100;
/** Windows per epoch (the first one a probe at PROBE × the limit); minRtt spans two epochs. */
export const EPOCH_WINDOWS = 4;
/**
 * The probe window's limit, as a share of the limit. On a node that is saturated at every limit
 * tried (the queue only moves from the proxy to the node), the probe's time is this share of the
 * others', and the limit settles where `limit × (1 - PROBE) = √limit`: 1 / (1 - PROBE)² = 9. A
 * node capped at 0.15 core did best with 11 backends directly, and through the proxy worse at 4
 * than at 11 (PostgreSQL's CPU per read 43 µs against 37 µs): see docs/benchmarks.md.
 */
export const PROBE = 2 / 3;
/** Clients waiting this long (ms) at the limit while no transaction ends: `auto` lets one more run. */
export const STALL_MS = 250;
/** Share of a window's new limit taken at once (the rest stays as it was). */
const SMOOTHING = 0.5;

export class ConcurrencyLimit {
  /** Transactions running now (connections lent, or being checked before lending). */
  inflight = 0;
  /** Transactions ended so far (a stall is a time in which this does not move). */
  ended = 0;
  /** How many may run at once (Infinity: no limit). Fractional under `auto`. */
  limit = Infinity;
  private adaptive = false;
  private max = Infinity;
  // `auto`: the current window (start, sum and count of hold times, most in flight)…
  private since = 0;
  private sum = 0;
  private n = 0;
  private peak = 0;
  // …the least window averages of this epoch and the last, the window's number in its epoch…
  private minNow = Infinity;
  private minLast = Infinity;
  private windows = 0;
  /** …and the limit to go back to after the probe window (0: not probing). */
  private probeFrom = 0;

  constructor(setting: NodeConcurrency, max: number) {
    this.configure(setting, max);
  }

  /** New settings (a reload): `auto` keeps what it learnt within the new bounds. */
  configure(setting: NodeConcurrency, max: number): void {
    const wasAdaptive = this.adaptive;
    this.adaptive = setting === 'auto';
    this.max = Math.max(1, max);
    if (!this.adaptive) {
      this.probeFrom = 0;
      this.limit = setting === 0 ? Infinity : (setting as number);
      return;
    }
    if (!wasAdaptive) this.reset();
    else this.limit = Math.min(Math.max(this.limit, AUTO_MIN), this.max);
  }

  /** Forgets what `auto` learnt (the pool now points at another server): back to the pool size. */
  reset(): void {
    if (!this.adaptive) return;
    this.limit = this.max;
    this.since = 0;
    this.sum = 0;
    this.n = 0;
    this.peak = 0;
    this.minNow = Infinity;
    this.minLast = Infinity;
    this.windows = 0;
    this.probeFrom = 0;
  }

  /** The limit as learnt: during a probe window, the one it returns to. */
  get learnt(): number {
    return this.probeFrom > 0 ? this.probeFrom : this.limit;
  }

  get isAdaptive(): boolean {
    return this.adaptive;
  }

  /** Another transaction may start now. */
  get room(): boolean {
    return this.inflight < this.limit;
  }

  /** A transaction starts (a connection is lent). */
  started(): void {
    if (++this.inflight > this.peak) this.peak = this.inflight;
  }

  /** A transaction ends without a measurement (its connection was lost, or failed its check). */
  cancelled(): void {
    this.inflight--;
  }

  /**
   * Clients wait, the limit is reached, and no transaction ended for STALL_MS: under `auto`, one
   * more may run (up to the pool size). Transactions waiting on each other (a lock, or a client
   * that commits only once another client's transaction ran) cannot deadlock on a limit learnt
   * under other work; a fixed limit stays what it was set to, as pool_size does.
   */
  stalled(): void {
    if (!this.adaptive) return;
    if (this.probeFrom > 0) {
      this.limit = this.probeFrom;
      this.probeFrom = 0;
    } else {
      this.limit = Math.min(this.max, Math.floor(this.limit) + 1);
    }
  }

  /** A transaction ended at `t` (ms, any monotonic clock) after holding its connection `ms`. */
  finished(ms: number, t: number): void {
    this.inflight--;
    this.ended++;
    if (!this.adaptive) return;
    this.sum += ms;
    if (++this.n >= WINDOW_MIN && this.n >= 2 * this.limit && t - this.since >= WINDOW_MS) this.adapt(t);
  }

  private adapt(t: number): void {
    const rtt = this.sum / this.n;
    const used = this.peak;
    this.since = t;
    this.sum = 0;
    this.n = 0;
    this.peak = this.inflight;
    if (rtt < this.minNow) this.minNow = rtt;
    if (this.probeFrom > 0) {
      // The probe window ends: back to where the limit was, its time now a minRtt candidate.
      this.limit = this.probeFrom;
      this.probeFrom = 0;
      return;
    }
    const minRtt = Math.min(this.minNow, this.minLast);
    if (rtt > 0 && Number.isFinite(minRtt)) {
      const gradient = Math.min(1, Math.max(0.5, minRtt / rtt));
      let next = this.limit * gradient + Math.sqrt(this.limit);
      // Demand below the limit says nothing of what more concurrency would do: no growth then.
      if (next > this.limit && used < this.limit - 1) next = this.limit;
      const limit = this.limit * (1 - SMOOTHING) + next * SMOOTHING;
      this.limit = Math.min(this.max, Math.max(AUTO_MIN, limit));
    }
    if (++this.windows >= EPOCH_WINDOWS) {
      this.windows = 0;
      this.minLast = this.minNow;
      this.minNow = Infinity;
      if (used >= this.limit - 1 && this.limit * PROBE >= AUTO_MIN) {
        this.probeFrom = this.limit;
        this.limit = this.limit * PROBE;
      }
    }
  }
}
