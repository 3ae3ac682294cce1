/**
 * Throughput and latency for the dashboard: once a second the proxy's running totals
 * (transactions, queries, summed query time) are read and turned into one sample of rates over
 * that second; a ring keeps the last few minutes. Pure apart from the clock the caller passes:
 * a total that went down (the proxy restarted, a pool closed) counts as a restart from zero.
 */

/** The proxy's counters at one moment (sums over its pools). */
export interface ProxyTotals {
  xacts: number;
  queries: number;
  /** Summed time in queries, seconds. */
  querySeconds: number;
}

export interface Sample {
  /** Unix ms at the end of the interval. */
  t: number;
  /** Transactions per second over the interval. */
  tps: number;
  qps: number;
  /** Mean time of a statement through the proxy (arrival to last reply) in the interval, ms; null when none ran. */
  query_ms: number | null;
}

export class SampleRing {
  private readonly ring: Sample[] = [];
  private prev: { t: number; totals: ProxyTotals } | null = null;

  constructor(readonly capacity = 300) {}

  /** Adds the sample since the last totals; the first call only remembers them (returns null). */
  add(t: number, totals: ProxyTotals): Sample | null {
    const prev = this.prev;
    this.prev = { t, totals };
    if (!prev || t <= prev.t) return null;
    const secs = (t - prev.t) / 1000;
    const delta = (k: keyof ProxyTotals) => {
      const d = totals[k] - prev.totals[k];
      return d >= 0 ? d : totals[k];
    };
    const queries = delta('queries');
    const s: Sample = {
      t,
      tps: round(delta('xacts') / secs),
      qps: round(queries / secs),
      query_ms: queries > 0 ? round((delta('querySeconds') * 1000) / queries, 3) : null,
    };
    this.ring.push(s);
    if (this.ring.length > this.capacity) this.ring.shift();
    return s;
  }

  /** The samples kept, oldest first. */
  list(): Sample[] {
    return [...this.ring];
  }
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
