import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageBudget } from './message-budget.js';

const MB = 1024 * 1024;

void test('reservations that fit are granted at once; the rest wait and are granted in order', () => {
  const b = new MessageBudget(100 * MB);
  assert.equal(b.tryReserve(60 * MB), true);
  assert.equal(b.tryReserve(50 * MB), false, 'would exceed the limit');
  const granted: string[] = [];
  b.enqueue(50 * MB, () => granted.push('a'));
  b.enqueue(10 * MB, () => granted.push('b'));
  assert.equal(b.tryReserve(5 * MB), false, 'nobody jumps the queue, even when it would fit');
  assert.deepEqual(granted, []);
  assert.equal(b.waiting, 2);
  b.release(60 * MB);
  assert.deepEqual(granted, ['a', 'b']);
  assert.equal(b.used, 60 * MB);
  assert.equal(b.waiting, 0);
});

void test('a request larger than the whole budget is granted when it is alone, and only then', () => {
  const b = new MessageBudget(64 * MB);
  assert.equal(b.tryReserve(200 * MB), true, 'alone: accepted, not deadlocked');
  assert.equal(b.used, 200 * MB);
  b.release(200 * MB);
  assert.equal(b.tryReserve(10 * MB), true);
  const granted: string[] = [];
  b.enqueue(200 * MB, () => granted.push('big'));
  b.enqueue(1 * MB, () => granted.push('small'));
  assert.deepEqual(granted, []);
  b.release(10 * MB);
  assert.deepEqual(granted, ['big'], 'the large one first; the one behind it waits for it');
  b.release(200 * MB);
  assert.deepEqual(granted, ['big', 'small']);
  assert.equal(b.peakBytes, 200 * MB);
});

void test('a cancelled head no longer blocks the requests behind it', () => {
  const b = new MessageBudget(10 * MB);
  assert.equal(b.tryReserve(8 * MB), true);
  const granted: string[] = [];
  const head = b.enqueue(9 * MB, () => granted.push('head'));
  b.enqueue(2 * MB, () => granted.push('next'));
  b.cancel(head);
  assert.deepEqual(granted, ['next']);
  b.cancel(head); // twice is harmless
  assert.equal(b.used, 10 * MB);
});

void test('a larger limit on reload admits waiting requests; bad limits are refused', () => {
  const b = new MessageBudget(10 * MB);
  assert.equal(b.tryReserve(8 * MB), true);
  let granted = false;
  b.enqueue(8 * MB, () => (granted = true));
  b.setLimit(16 * MB);
  assert.equal(granted, true);
  assert.throws(() => b.setLimit(0), RangeError);
  assert.throws(() => new MessageBudget(1.5), RangeError);
  b.release(100 * MB);
  assert.equal(b.used, 0, 'never negative');
});
