import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { CHECK_MS, GROWN_NEW_SPACE, IdleMemory, QUIET_ELU, decide, newSpaceBytes } from './idle-memory.js';

test('decide: collects once per busy spell, only when idle and the young generation is grown', () => {
  const big = GROWN_NEW_SPACE + 1;
  assert.deepEqual(decide(true, QUIET_ELU / 2, big), { collect: true, armed: false });
  // Collected already and still idle: nothing more, however big (V8 may have kept it).
  assert.deepEqual(decide(false, QUIET_ELU / 2, big), { collect: false, armed: false });
  // Busy: never collects, re-arms.
  assert.deepEqual(decide(false, 0.5, big), { collect: false, armed: true });
  assert.deepEqual(decide(true, 0.5, big), { collect: false, armed: true });
  // Idle but small: nothing to give back; stays armed.
  assert.deepEqual(decide(true, 0, 1024 * 1024), { collect: false, armed: true });
  assert.ok(CHECK_MS > 5000, "longer than V8's allocation-throughput window");
});

test('an idle process gives its grown young generation back', async () => {
  // A burst that grows the young generation (objects that survive a scavenge or two).
  const keep: unknown[][] = [];
  for (let r = 0; r < 200 && newSpaceBytes() <= GROWN_NEW_SPACE; r++) {
    const a: unknown[] = [];
    for (let i = 0; i < 20_000; i++) a.push({ i, s: `x${i}` });
    if (r % 10 === 0) keep.push(a.slice(0, 1000));
    await new Promise((r) => setImmediate(r));
  }
  assert.ok(newSpaceBytes() > GROWN_NEW_SPACE, `young generation grew (${newSpaceBytes()} bytes)`);
  const m = new IdleMemory(6000);
  m.acquire();
  try {
    // Generous: a loaded host may make the first window look busy; then the next one collects.
    for (let i = 0; i < 60 && m.collections === 0; i++) await sleep(1000);
    assert.equal(m.collections, 1);
    assert.ok(newSpaceBytes() <= GROWN_NEW_SPACE, `young generation shrank (${newSpaceBytes()} bytes)`);
    // Idle afterwards: no second collection.
    await sleep(6500);
    assert.equal(m.collections, 1);
  } finally {
    m.release();
  }
  assert.ok(keep.length > 0);
});
