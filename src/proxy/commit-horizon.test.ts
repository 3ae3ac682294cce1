import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommitHorizon, laterLsn } from './commit-horizon.js';

/** An asker whose answers the test releases one at a time. */
function controlledAsker() {
  const calls: ((v: bigint | null) => void)[] = [];
  let value = 0n;
  return {
    calls,
    ask: () =>
      new Promise<bigint | null>((resolve) => {
        calls.push(resolve);
      }),
    answer(i: number) {
      value += 10n;
      calls[i]!(value);
    },
  };
}

test('the horizon only moves forward', () => {
  const h = new CommitHorizon(() => Promise.resolve(null));
  assert.equal(h.lsn, null);
  h.advance(100n);
  h.advance(50n);
  assert.equal(h.lsn, 100n);
  h.advance(101n);
  assert.equal(h.lsn, 101n);
});

test('concurrent reads share one question; reads arriving meanwhile wait for the next one', async () => {
  const a = controlledAsker();
  const h = new CommitHorizon(a.ask);
  const first = [h.position(), h.position(), h.position()];
  await new Promise((r) => setImmediate(r));
  assert.equal(a.calls.length, 1, 'one question for three reads of the same turn');
  const late = [h.position(), h.position()];
  await new Promise((r) => setImmediate(r));
  // Not answered by the question already out, which may predate these reads.
  assert.equal(a.calls.length, 1);
  a.answer(0);
  assert.deepEqual(await Promise.all(first), [10n, 10n, 10n]);
  assert.equal(a.calls.length, 2, 'the late reads asked once more, together');
  a.answer(1);
  assert.deepEqual(await Promise.all(late), [20n, 20n]);
  assert.equal(h.questions, 2);
  // Idle again: the next read asks at the end of the turn.
  const again = h.position();
  await new Promise((r) => setImmediate(r));
  assert.equal(a.calls.length, 3);
  a.answer(2);
  assert.equal(await again, 30n);
});

test('a failed question answers null and does not block the next', async () => {
  let fail = true;
  const h = new CommitHorizon(() => (fail ? Promise.reject(new Error('down')) : Promise.resolve(7n)));
  assert.equal(await h.position(), null);
  fail = false;
  assert.equal(await h.position(), 7n);
});

test('laterLsn treats null as nothing to wait for', () => {
  assert.equal(laterLsn(null, null), null);
  assert.equal(laterLsn(5n, null), 5n);
  assert.equal(laterLsn(null, 6n), 6n);
  assert.equal(laterLsn(9n, 6n), 9n);
});

test('a causal read waits only for the captures begun before it', async () => {
  const h = new CommitHorizon(() => Promise.resolve(null));
  assert.equal(h.settled(1000), null, 'nothing out: no wait');
  const a = h.beginCapture();
  const waitA = h.settled(5000)!;
  const b = h.beginCapture();
  let doneA = false;
  void waitA.then(() => (doneA = true));
  h.endCapture(b, 200n);
  await new Promise((r) => setImmediate(r));
  assert.equal(doneA, false, 'still waits for the capture begun before it');
  h.endCapture(a, 100n);
  assert.equal(await waitA, true);
  assert.equal(h.lsn, 200n);
  assert.equal(h.settled(1000), null);
});

test('a capture never answered makes the wait end false after the timeout', async () => {
  const h = new CommitHorizon(() => Promise.resolve(null));
  h.beginCapture();
  assert.equal(await h.settled(20), false);
});
