import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LruCache } from './lru-cache.js';

/** The same operations on a plain array kept in recency order: the reference to compare with. */
class Model {
  keys: string[] = [];
  constructor(private readonly max: number) {}
  get(k: string): boolean {
    const i = this.keys.indexOf(k);
    if (i < 0) return false;
    this.keys.splice(i, 1);
    this.keys.push(k);
    return true;
  }
  set(k: string): void {
    const i = this.keys.indexOf(k);
    if (i >= 0) this.keys.splice(i, 1);
    this.keys.push(k);
    while (this.keys.length > this.max) this.keys.shift();
  }
}

test('evicts the least recently used entry, under churn of hits and misses (the kept eviction iterator)', () => {
  const max = 50;
  const c = new LruCache<number>(max);
  const m = new Model(max);
  let seed = 7;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (let step = 0; step < 20000; step++) {
    const k = `k${rnd(step % 1000 < 500 ? 80 : 400)}`;
    if (rnd(3) === 0) {
      assert.equal(c.get(k) !== undefined, m.get(k), `get ${k} at step ${step}`);
    } else {
      c.set(k, step);
      m.set(k);
    }
    if (step % 97 === 0) {
      assert.equal(c.size, m.keys.length);
      for (const key of m.keys) assert.notEqual(c.get(key), undefined, `${key} kept at step ${step}`);
      // The loop above touched every key in model order: the recency order is unchanged.
    }
  }
  c.clear();
  assert.equal(c.size, 0);
  for (let i = 0; i < max + 5; i++) c.set(`n${i}`, i);
  assert.equal(c.size, max);
  assert.equal(c.get('n0'), undefined);
  assert.equal(c.get(`n${max + 4}`), max + 4);
});

test('bounded by the total length of its keys; a key over a sixteenth of it is never kept', () => {
  const c = new LruCache<number>(100, 160);
  c.set('x'.repeat(11), 1);
  assert.equal(c.size, 0);
  for (let i = 0; i < 20; i++) c.set(`key-${String(i).padStart(5, '0')}`, i); // 9 chars each
  assert.equal(c.size, 17); // 153 of 160 chars
  assert.equal(c.get('key-00002'), undefined);
  assert.equal(c.get('key-00003'), 3);
  assert.equal(c.get('key-00019'), 19);
});
