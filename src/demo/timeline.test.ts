import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ratesPerSecond, Timeline } from './timeline.js';

test('events land in the bucket of their time; empty buckets are kept', () => {
  const tl = new Timeline(100);
  tl.add('writeOk', 0);
  tl.add('writeOk', 99.9);
  tl.add('writeOk', 100);
  tl.add('errors', 350);
  tl.add('readOk', -5); // before the start: ignored
  const p = tl.points(400);
  assert.deepEqual(
    p.map((x) => [x.t, x.writeOk, x.errors, x.readOk]),
    [
      [0, 2, 0, 0],
      [0.1, 1, 0, 0],
      [0.2, 0, 0, 0],
      [0.3, 0, 1, 0],
    ],
  );
});

test('rates are per second whatever the bucket width, the last partial bucket by its real width', () => {
  const tl = new Timeline(100);
  for (let ms = 0; ms < 250; ms += 10) tl.add('writeOk', ms); // 100 per second, for 250 ms
  const p = tl.points(250);
  assert.equal(p.length, 3);
  assert.equal(p[2]!.seconds, 0.05);
  assert.deepEqual(
    ratesPerSecond(p, 'writeOk').map((r) => Math.round(r)),
    [100, 100, 100],
  );
  const second = new Timeline(1000);
  for (let ms = 0; ms < 1000; ms += 10) second.add('writeOk', ms);
  assert.deepEqual(ratesPerSecond(second.points(1000), 'writeOk'), [100]);
});

test('a 300 ms pause shows as buckets at zero with 100 ms buckets, not with one-second buckets', () => {
  const fine = new Timeline(100);
  const coarse = new Timeline(1000);
  for (let ms = 0; ms < 2000; ms += 5) {
    if (ms >= 1200 && ms < 1500) continue; // no writes for 300 ms
    fine.add('writeOk', ms);
    coarse.add('writeOk', ms);
  }
  const f = ratesPerSecond(fine.points(2000), 'writeOk');
  assert.deepEqual(f.slice(12, 15), [0, 0, 0]);
  assert.ok(Math.min(...ratesPerSecond(coarse.points(2000), 'writeOk')) > 0);
});

test('a bucket width must be positive', () => {
  assert.throws(() => new Timeline(0), RangeError);
});
