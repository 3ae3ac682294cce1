import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { now } from '../types.js';
import { KEEP_SLICE_MAX_MS, KEEP_SLICE_MIN_MS, Keepers } from './keepers.js';
import type { Keeper, KeeperDemand } from './keepers.js';

class FakeKeeper implements Keeper {
  asked = 0;
  constructor(
    readonly name: string,
    public keptUntil: number,
    private readonly canGive = true,
  ) {}
  giveBack(): boolean {
    this.asked++;
    return this.canGive;
  }
}

const demand = (over: Partial<KeeperDemand> = {}): KeeperDemand => ({
  full: true,
  unmet: 1,
  size: 4,
  ...over,
});

test('a full pool with one client waiting asks the oldest keeper whose slice is over, and only one', () => {
  const d = demand();
  const k = new Keepers(d);
  const past = now() - 1;
  const a = new FakeKeeper('a', past);
  const b = new FakeKeeper('b', past);
  k.keep(a);
  k.keep(b);
  assert.deepEqual([a.asked, b.asked], [1, 0]);
  // a's check ends (its connection went back): b is asked for the next waiting client.
  k.returned(a);
  assert.deepEqual([a.asked, b.asked], [1, 1]);
  k.stop();
});

test('nobody is asked while the pool has room or nobody waits beyond the connections on their way', () => {
  const past = now() - 1;
  for (const d of [demand({ full: false }), demand({ unmet: 0 })]) {
    const k = new Keepers(d);
    const a = new FakeKeeper('a', past);
    k.keep(a);
    k.reclaim();
    assert.equal(a.asked, 0);
    k.stop();
  }
});

test('a keeper within its slice is asked once the slice ends (one timer)', async () => {
  const k = new Keepers(demand());
  const a = new FakeKeeper('a', now() + 30);
  k.keep(a);
  assert.equal(a.asked, 0);
  for (let i = 0; i < 100 && a.asked === 0; i++) await sleep(10);
  assert.equal(a.asked, 1);
  k.stop();
});

test('after stop no timer asks anyone', async () => {
  const k = new Keepers(demand());
  const a = new FakeKeeper('a', now() + 20);
  k.keep(a);
  k.stop();
  await sleep(60);
  assert.equal(a.asked, 0);
});

test('reclaimAll asks every keeper, whatever its slice', () => {
  const k = new Keepers(demand({ full: false, unmet: 0 }));
  const ks = [new FakeKeeper('a', now() + 1e6), new FakeKeeper('b', now() + 1e6)];
  for (const x of ks) k.keep(x);
  k.reclaimAll();
  assert.deepEqual(
    ks.map((x) => x.asked),
    [1, 1],
  );
  k.stop();
});

test('the slice follows the recent check duration and the pool size, within its bounds', () => {
  const d = { full: true, unmet: 0, size: 10 };
  const k = new Keepers(d);
  assert.equal(k.sliceMs, Math.max(KEEP_SLICE_MIN_MS, 5 * 10 * 1));
  for (let i = 0; i < 100; i++) k.noteCheck(100);
  assert.equal(k.sliceMs, KEEP_SLICE_MAX_MS);
  for (let i = 0; i < 200; i++) k.noteCheck(0);
  assert.equal(k.sliceMs, KEEP_SLICE_MIN_MS);
  k.stop();
});
