import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Fifo } from './fifo.js';

test('Fifo behaves as an array used as a queue, whatever the mix of operations', () => {
  const op = fc.oneof(
    fc.record({ k: fc.constant('push' as const), v: fc.integer() }),
    fc.record({ k: fc.constant('shift' as const) }),
    fc.record({ k: fc.constant('take' as const), n: fc.nat({ max: 5 }) }),
    fc.record({ k: fc.constant('remove' as const), m: fc.integer({ min: 2, max: 5 }) }),
    fc.record({ k: fc.constant('drain' as const) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 3000 }), (ops) => {
      const q = new Fifo<number>();
      let model: number[] = [];
      for (const o of ops) {
        if (o.k === 'push') {
          q.push(o.v);
          model.push(o.v);
        } else if (o.k === 'shift') assert.equal(q.shift(), model.shift());
        else if (o.k === 'take') assert.deepEqual(q.take(o.n), model.splice(0, o.n));
        else if (o.k === 'drain') assert.deepEqual(q.drain(), model.splice(0));
        else {
          const pick = (v: number) => Math.abs(v) % o.m === 0;
          assert.deepEqual(q.removeWhere(pick), model.filter(pick));
          model = model.filter((v) => !pick(v));
        }
        assert.equal(q.size, model.length);
      }
      assert.deepEqual([...q], model);
    }),
    { numRuns: 300 },
  );
});

test('Fifo: a long run of pushes and shifts keeps memory bounded (the head is compacted)', () => {
  const q = new Fifo<number>();
  for (let i = 0; i < 100_000; i++) {
    q.push(i);
    q.push(i);
    assert.equal(q.shift(), Math.floor(i / 2));
  }
  assert.equal(q.size, 100_000);
  const internal = (q as unknown as { items: unknown[] }).items.length;
  assert.ok(internal <= 2 * 100_000 + 1024, `the queue holds ${internal} slots for ${q.size} items`);
});
