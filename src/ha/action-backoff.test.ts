import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Action } from './decide.js';
import { FAILURE_BACKOFF_MAX_MS, actionKey, backingOff, noteFailure } from './action-backoff.js';
import type { Failures } from './action-backoff.js';

const rejoin = { kind: 'rejoin', node: 's0n1' } as unknown as Action;

test('a failing action backs off exponentially up to 30 s; only the first failure of a streak is news', () => {
  const f: Failures = new Map();
  const key = actionKey(rejoin);
  assert.equal(key, 'rejoin:s0n1');
  let now = 1000;
  const first = noteFailure(f, key, 'pg_rewind failed (pid 123)', 250, now);
  assert.deepEqual(first, { news: true, count: 1, delayMs: 500 });
  assert.equal(backingOff(f, rejoin, now + 499), true);
  assert.equal(backingOff(f, rejoin, now + 500), false);
  const delays = [];
  for (let i = 0; i < 8; i++) {
    now = f.get(key)!.retryAt; // tried again as soon as allowed, failed again (another pid)
    const r = noteFailure(f, key, `pg_rewind failed (pid ${200 + i})`, 250, now);
    assert.equal(r.news, false, 'the same action failing again is not news, whatever its message');
    delays.push(r.delayMs);
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  // Not tried again for longer than the longest back-off: the streak is over.
  now = f.get(key)!.retryAt + FAILURE_BACKOFF_MAX_MS;
  assert.deepEqual(noteFailure(f, key, 'again', 250, now), { news: true, count: 1, delayMs: 500 });
  assert.equal(backingOff(f, { kind: 'rejoin', node: 's0n2' } as unknown as Action, now), false);
});
