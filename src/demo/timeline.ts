/**
 * The load generator's timeline: successes and errors counted in fixed buckets of time since the
 * measurement started (100 ms by default, fine enough to show a pause of a few hundred ms that a
 * one-second bucket would average away), and the rates per second derived from them. A rate is a
 * bucket's count divided by the bucket's width — the last bucket's real width when the run ended
 * inside it — so the y axis reads in operations per second whatever the bucket size.
 */

export interface TimelinePoint {
  /** Start of the bucket, seconds since the measurement started. */
  t: number;
  /** Width of the bucket in seconds (the last one may be shorter). */
  seconds: number;
  readOk: number;
  writeOk: number;
  errors: number;
}

export type TimelineField = 'readOk' | 'writeOk' | 'errors';

export const DEFAULT_BUCKET_MS = 100;

export class Timeline {
  private readonly buckets: TimelinePoint[] = [];

  constructor(readonly bucketMs = DEFAULT_BUCKET_MS) {
    if (!(bucketMs > 0)) throw new RangeError(`bucket width must be positive, got ${bucketMs}`);
  }

  /** Counts one event of `field` at `ms` after the start (events before the start are ignored). */
  add(field: TimelineField, ms: number): void {
    if (!(ms >= 0)) return;
    const i = Math.floor(ms / this.bucketMs);
    const b = (this.buckets[i] ??= this.empty(i));
    b[field]++;
  }

  /** Every bucket of a measurement `durationMs` long, empty ones included, in order. */
  points(durationMs: number): TimelinePoint[] {
    const n = Math.max(0, Math.ceil(durationMs / this.bucketMs - 1e-9));
    return Array.from({ length: n }, (_, i) => {
      const b = { ...(this.buckets[i] ?? this.empty(i)) };
      b.seconds = Math.min(this.bucketMs, durationMs - i * this.bucketMs) / 1000;
      return b;
    });
  }

  private empty(i: number): TimelinePoint {
    return { t: (i * this.bucketMs) / 1000, seconds: this.bucketMs / 1000, readOk: 0, writeOk: 0, errors: 0 };
  }
}

/** The rate per second of `field` in each bucket (count / bucket width). */
export function ratesPerSecond(points: readonly TimelinePoint[], field: TimelineField): number[] {
  return points.map((p) => (p.seconds > 0 ? p[field] / p.seconds : 0));
}
