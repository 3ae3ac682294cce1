/**
 * A latency histogram in the manner of HdrHistogram: log-linear buckets, so that every recorded
 * value is kept with a bounded relative error (under 1 % with 7 sub-bucket bits: 128 linear
 * sub-buckets per power of two) whatever its magnitude, in constant memory, and percentiles are
 * read from the counts without keeping the samples. Values are whole microseconds. Histograms
 * of several clients merge by adding counts.
 * http://hdrhistogram.org/ (the idea); this is a small re-implementation, not the library.
 */

const SUB_BITS = 7;
const SUB = 1 << SUB_BITS;

/** Largest value kept (µs, about 71 minutes); larger ones count as this. */
export const MAX_VALUE = 0xffffffff;

/** Bucket of a value: exact below 2·SUB, then SUB buckets per power of two. */
export function bucketOf(v: number): number {
  if (v < 2 * SUB) return v;
  const shift = 31 - Math.clz32(v) - SUB_BITS;
  return shift * SUB + (v >>> shift);
}

/** The lowest and highest value a bucket holds. */
export function bucketRange(i: number): [number, number] {
  if (i < 2 * SUB) return [i, i];
  const shift = Math.floor(i / SUB) - 1;
  const mant = i - shift * SUB;
  return [mant * 2 ** shift, (mant + 1) * 2 ** shift - 1];
}

export interface HistogramSummary {
  count: number;
  min: number;
  max: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
}

export class Histogram {
  private counts: number[] = [];
  count = 0;
  min = Infinity;
  max = 0;
  private sum = 0;

  /** Records one value (µs); fractional, negative and huge values are rounded into range. */
  record(us: number): void {
    const v = Math.min(MAX_VALUE, Math.max(0, Math.round(us)));
    const i = bucketOf(v);
    while (this.counts.length <= i) this.counts.push(0);
    this.counts[i]!++;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  merge(other: Histogram): void {
    while (this.counts.length < other.counts.length) this.counts.push(0);
    other.counts.forEach((n, i) => (this.counts[i]! += n));
    this.count += other.count;
    this.sum += other.sum;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
  }

  get mean(): number {
    return this.count ? this.sum / this.count : 0;
  }

  /**
   * The value at percentile p (0–100): the highest value of the bucket holding the sample of
   * that rank, capped by the largest value recorded (HdrHistogram's "highest equivalent value").
   * 0 for an empty histogram.
   */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil((Math.min(100, Math.max(0, p)) / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(bucketRange(i)[1], this.max);
    }
    return this.max;
  }

  summary(): HistogramSummary {
    return {
      count: this.count,
      min: this.count ? this.min : 0,
      max: this.max,
      mean: this.mean,
      p50: this.percentile(50),
      p90: this.percentile(90),
      p99: this.percentile(99),
      p999: this.percentile(99.9),
    };
  }

  /** The latency curve: value at each percentile of `points` (for the report's chart). */
  curve(points: readonly number[] = PERCENTILE_POINTS): { p: number; us: number }[] {
    return this.count === 0 ? [] : points.map((p) => ({ p, us: this.percentile(p) }));
  }
}

/** Percentiles a latency curve is drawn through: evenly spaced in "nines". */
export const PERCENTILE_POINTS = [0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100] as const;
