import { test } from 'node:test';
import assert from 'node:assert/strict';
import { leastLoaded } from './read-router.js';

test('leastLoaded picks the target with the least load per unit of weight', () => {
  assert.equal(
    leastLoaded(
      [
        { load: 3, weight: 1 },
        { load: 1, weight: 1 },
        { load: 2, weight: 1 },
      ],
      0,
    ),
    1,
  );
  // (4 + 1) / 2 = 2.5 beats (2 + 1) / 1 = 3: a heavier weight takes more load.
  assert.equal(
    leastLoaded(
      [
        { load: 2, weight: 1 },
        { load: 4, weight: 2 },
      ],
      0,
    ),
    1,
  );
});

test('leastLoaded lets equal targets take turns from the given start', () => {
  const idle = [
    { load: 0, weight: 1 },
    { load: 0, weight: 1 },
    { load: 0, weight: 1 },
  ];
  assert.deepEqual(
    [0, 1, 2, 3, 4].map((s) => leastLoaded(idle, s)),
    [0, 1, 2, 0, 1],
  );
});

test('leastLoaded never picks a weight of 0 and says -1 when nothing can be picked', () => {
  assert.equal(
    leastLoaded(
      [
        { load: 0, weight: 0 },
        { load: 9, weight: 1 },
      ],
      0,
    ),
    1,
  );
  assert.equal(leastLoaded([{ load: 0, weight: 0 }], 0), -1);
  assert.equal(leastLoaded([], 3), -1);
});

test('leastLoaded picks a target with room (node_concurrency) before any full one, and the least loaded of the full ones when all are', () => {
  // The full one carries less load, but its node runs all it may: the one with room goes first.
  assert.equal(
    leastLoaded(
      [
        { load: 2, weight: 1, full: true },
        { load: 5, weight: 1, full: false },
      ],
      0,
    ),
    1,
  );
  // All full: the shortest queue per unit of weight.
  assert.equal(
    leastLoaded(
      [
        { load: 9, weight: 1, full: true },
        { load: 6, weight: 1, full: true },
        { load: 8, weight: 1, full: true },
      ],
      0,
    ),
    1,
  );
});
