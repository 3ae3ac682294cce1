import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoginBackoff } from './login-backoff.js';

const settings = { threshold: 2, baseMs: 100, capMs: 400, windowMs: 10_000, maxAddresses: 3, maxWaiting: 2 };

void test('the first failures are free, then each check waits a doubling delay up to the cap', () => {
  const b = new LoginBackoff(settings);
  let t = 0;
  const waits: number[] = [];
  for (let i = 0; i < 6; i++) {
    const held = b.admit('a', t);
    const w = b.turn('a', t);
    waits.push(w);
    t += w;
    b.failure('a', t);
    if (held === 'held') b.done('a');
  }
  assert.deepEqual(waits, [0, 0, 100, 200, 400, 400]);
});

void test('parallel attempts from one address are spaced, not released together', () => {
  const b = new LoginBackoff(settings);
  assert.equal(b.admit('a', 0), 'free');
  b.failure('a', 0);
  b.failure('a', 0);
  assert.equal(b.admit('a', 0), 'held');
  assert.equal(b.admit('a', 0), 'held');
  assert.equal(b.turn('a', 0), 100);
  assert.equal(b.turn('a', 0), 200);
  assert.equal(b.admit('a', 0), 'refused', 'maxWaiting reached');
  assert.equal(b.admit('b', 0), 'free', 'other addresses are not affected');
  assert.equal(b.turn('b', 0), 0);
  b.done('a');
  assert.equal(b.admit('a', 0), 'held');
  assert.deepEqual(b.failure('a', 100), { failures: 3, refused: 1 });
});

void test('a success resets the address; failures expire after the window', () => {
  const b = new LoginBackoff(settings);
  for (let i = 0; i < 4; i++) b.failure('a', 0);
  assert.ok(b.turn('a', 0) > 0);
  b.success('a');
  assert.equal(b.turn('a', 0), 0);
  for (let i = 0; i < 4; i++) b.failure('c', 0);
  assert.equal(b.turn('c', 20_000), 0, 'expired');
});

void test('memory is bounded: the least recently failed address goes first', () => {
  const b = new LoginBackoff(settings);
  for (const a of ['a', 'b', 'c']) for (let i = 0; i < 3; i++) b.failure(a, 0);
  b.failure('a', 1); // a is now the most recent
  b.failure('d', 2);
  assert.equal(b.size, 3);
  assert.equal(b.turn('b', 3), 0, 'b was evicted');
  assert.ok(b.turn('a', 3) > 0);
});
