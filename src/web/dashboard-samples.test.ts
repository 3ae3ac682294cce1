import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SampleRing } from './dashboard-samples.js';

test('SampleRing: rates over each interval, mean query time, none before the second reading', () => {
  const r = new SampleRing();
  assert.equal(r.add(1000, { xacts: 10, queries: 20, querySeconds: 0.1 }), null);
  const s = r.add(3000, { xacts: 110, queries: 220, querySeconds: 0.5 });
  assert.deepEqual(s, { t: 3000, tps: 50, qps: 100, query_ms: 2 });
  // No query in the interval: no latency rather than 0 ms.
  assert.equal(r.add(4000, { xacts: 110, queries: 220, querySeconds: 0.5 })?.query_ms, null);
  assert.equal(r.list().length, 2);
});

test('SampleRing: a total that went down counts from zero (proxy restarted), never a negative rate', () => {
  const r = new SampleRing();
  r.add(0, { xacts: 1000, queries: 1000, querySeconds: 5 });
  const s = r.add(1000, { xacts: 7, queries: 7, querySeconds: 0.007 });
  assert.deepEqual(s, { t: 1000, tps: 7, qps: 7, query_ms: 1 });
});

test('SampleRing keeps only the newest `capacity` samples, oldest first', () => {
  const r = new SampleRing(3);
  for (let i = 0; i <= 5; i++) r.add(i * 1000, { xacts: i, queries: i, querySeconds: 0 });
  assert.deepEqual(
    r.list().map((s) => s.t),
    [3000, 4000, 5000],
  );
});
