import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AUTO_MIN, ConcurrencyLimit } from './concurrency-limit.js';

/**
 * Runs `count` transactions through the limit with `demand` clients always wanting one: as many
 * start as the limit lets, each ends after the hold time `rttOf(in flight)` says.
 */
const clocks = new WeakMap<ConcurrencyLimit, number>();
function drive(l: ConcurrencyLimit, demand: number, rttOf: (inflight: number) => number, count: number): void {
  const end = () => {
    const n = l.inflight;
    const rtt = rttOf(n);
    const t = (clocks.get(l) ?? 0) + rtt / n; // n transactions of `rtt` each end in `rtt`
    clocks.set(l, t);
    l.finished(rtt, t);
  };
  for (let i = 0; i < count; i++) {
    while (l.room && l.inflight < demand) l.started();
    end();
  }
  while (l.inflight > 0) end();
}

/** A node that runs `knee` transactions at full speed, 1 ms each; beyond it they queue. */
const saturating = (knee: number) => (inflight: number) => Math.max(1, inflight / knee);

test('a fixed limit lets that many transactions run and no more', () => {
  const l = new ConcurrencyLimit(3, 20);
  for (let i = 0; i < 3; i++) {
    assert.equal(l.room, true);
    l.started();
  }
  assert.equal(l.room, false);
  l.finished(5, 0);
  assert.equal(l.room, true);
  l.started();
  l.cancelled();
  assert.equal(l.inflight, 2);
  // Measurements never move a fixed limit.
  drive(l, 50, () => 100, 1000);
  assert.equal(l.limit, 3);
  assert.equal(l.isAdaptive, false);
});

test('0 means no limit beyond the pool size, and session-independent reconfiguration applies at once', () => {
  const l = new ConcurrencyLimit(0, 20);
  assert.equal(l.limit, Infinity);
  for (let i = 0; i < 100; i++) l.started();
  assert.equal(l.room, true);
  l.configure(5, 20);
  assert.equal(l.room, false);
  assert.equal(l.limit, 5);
});

test('auto starts at the pool size and stays there while the node does not queue', () => {
  const l = new ConcurrencyLimit('auto', 32);
  assert.equal(l.limit, 32);
  assert.equal(l.isAdaptive, true);
  drive(l, 100, () => 1, 20_000);
  assert.equal(l.learnt, 32);
});

test('auto shrinks to a little past the knee of a saturated node, from the pool size', () => {
  const l = new ConcurrencyLimit('auto', 32);
  drive(l, 64, saturating(6), 60_000);
  assert.ok(l.learnt >= 6 && l.learnt <= 6 + 2 * Math.sqrt(6) + 1, `limit ${l.learnt}`);
});

test('auto climbs back when the node stops queueing (the no-queue time is forgotten epoch by epoch)', () => {
  const l = new ConcurrencyLimit('auto', 40);
  drive(l, 64, saturating(4), 60_000);
  const low = l.learnt;
  assert.ok(low < 13, `limit ${low}`);
  // A faster node now: nothing queues up to 30 at once.
  drive(l, 64, saturating(30), 60_000);
  assert.ok(l.learnt > 25, `limit ${l.learnt} after ${low}`);
});

test('auto stays within [AUTO_MIN, pool size]; at worst it runs 4 at once (gradient 0.5 + √4)', () => {
  const l = new ConcurrencyLimit('auto', 10);
  // Every transaction takes longer than the last: the gradient stays at its floor.
  let t = 1;
  drive(l, 64, () => (t *= 1.03), 3000);
  assert.ok(l.learnt >= AUTO_MIN, `limit ${l.learnt}`);
  assert.ok(l.learnt <= 4.5, `limit ${l.learnt}`);
  const m = new ConcurrencyLimit('auto', 10);
  drive(m, 64, () => 1, 20_000);
  assert.equal(m.learnt, 10);
  const small = new ConcurrencyLimit('auto', 1);
  assert.equal(small.limit, 1);
  drive(small, 5, saturating(1), 5000);
  assert.equal(small.limit, 1);
});

test('auto does not grow on demand below the limit (nothing to learn there)', () => {
  const l = new ConcurrencyLimit('auto', 30);
  drive(l, 64, saturating(5), 20_000);
  // Three clients only, never queueing: once the window that saw the old demand is over, the
  // limit has no reason to move up.
  drive(l, 3, () => 0.5, 2000);
  const low = l.learnt;
  assert.ok(low > 4 && low < 30, `limit ${low}`);
  drive(l, 3, () => 0.5, 20_000);
  assert.equal(l.learnt, low);
});

test('reset (the pool points at another server) forgets what auto learnt; a reload keeps it within bounds', () => {
  const l = new ConcurrencyLimit('auto', 30);
  drive(l, 64, saturating(5), 20_000);
  assert.ok(l.learnt < 30);
  l.configure('auto', 6);
  assert.ok(l.limit <= 6);
  l.configure('auto', 30);
  l.reset();
  assert.equal(l.learnt, 30);
  l.configure(4, 30);
  assert.equal(l.limit, 4);
  l.configure('auto', 30);
  assert.equal(l.learnt, 30);
});

test('a stall (clients wait, nothing ends) lets auto run one more, up to the pool size; a fixed limit stays', () => {
  const l = new ConcurrencyLimit('auto', 16);
  drive(l, 64, saturating(2), 60_000);
  const low = l.learnt;
  assert.ok(low < 12, `limit ${low}`);
  const before = l.limit;
  l.stalled();
  assert.ok(l.limit > before, `limit ${l.limit} after ${before}`);
  for (let i = 0; i < 20; i++) l.stalled();
  assert.equal(l.limit, 16);
  const f = new ConcurrencyLimit(3, 8);
  f.stalled();
  assert.equal(f.limit, 3);
});
