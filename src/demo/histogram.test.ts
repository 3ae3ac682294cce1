import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Histogram, MAX_VALUE, bucketOf, bucketRange } from './histogram.js';

test('every value falls in the range of its bucket, within 1 % relative error', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: MAX_VALUE }), (v) => {
      const [lo, hi] = bucketRange(bucketOf(v));
      assert.ok(lo <= v && v <= hi, `${v} not in [${lo}, ${hi}]`);
      assert.ok(hi - lo <= Math.max(0, v * 0.01), `bucket [${lo}, ${hi}] too wide for ${v}`);
    }),
  );
});

test('buckets are contiguous and ordered', () => {
  for (let i = 1; i < 3000; i++) assert.equal(bucketRange(i)[0], bucketRange(i - 1)[1] + 1, `bucket ${i}`);
});

test('percentiles of 1..10000 µs', () => {
  const h = new Histogram();
  for (let v = 1; v <= 10_000; v++) h.record(v);
  const s = h.summary();
  assert.equal(s.count, 10_000);
  assert.equal(s.min, 1);
  assert.equal(s.max, 10_000);
  assert.ok(Math.abs(s.mean - 5000.5) < 1e-9);
  for (const [p, want] of [
    [50, 5000],
    [90, 9000],
    [99, 9900],
    [99.9, 9990],
  ] as const) {
    const got = h.percentile(p);
    assert.ok(got >= want && got <= want * 1.01, `p${p}: ${got}, expected ~${want}`);
  }
  assert.equal(h.percentile(100), 10_000);
  assert.equal(h.percentile(0), 1);
});

test('merge adds counts; an empty histogram reads as zeros', () => {
  const a = new Histogram();
  const b = new Histogram();
  assert.deepEqual(a.summary(), { count: 0, min: 0, max: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0 });
  assert.deepEqual(a.curve(), []);
  for (let i = 0; i < 99; i++) a.record(100);
  b.record(1_000_000);
  a.merge(b);
  assert.equal(a.count, 100);
  assert.equal(a.percentile(99), 100);
  assert.equal(a.percentile(100), 1_000_000);
  assert.equal(a.max, 1_000_000);
});
