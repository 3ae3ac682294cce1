import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeBase64Strict, safeEqual, saltedPassword, xor } from './scram-crypto.js';

void test('strict base64 accepts only canonical encodings', () => {
  assert.deepEqual(decodeBase64Strict('AAEC'), Buffer.from([0, 1, 2]));
  assert.deepEqual(decodeBase64Strict(''), Buffer.alloc(0));
  for (const bad of ['AAE', 'AA=C', 'AAF=', 'A B=', 'AAEC\n', 'AB==', '====']) {
    assert.equal(decodeBase64Strict(bad), undefined, bad);
  }
});

void test('property: strict base64 round-trips every byte string', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (a) => {
      const buf = Buffer.from(a);
      assert.deepEqual(decodeBase64Strict(buf.toString('base64')), buf);
    }),
  );
});

void test('Hi matches RFC 7677 salted password derivation shape and runs asynchronously', async () => {
  const p = saltedPassword('pencil', Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'), 4096);
  assert.ok(p instanceof Promise);
  assert.equal((await p).length, 32);
});

void test('xor and safeEqual', () => {
  assert.deepEqual(xor(Buffer.from([1, 2]), Buffer.from([3, 3])), Buffer.from([2, 1]));
  assert.equal(safeEqual(Buffer.from('ab'), Buffer.from('ab')), true);
  assert.equal(safeEqual(Buffer.from('ab'), Buffer.from('abc')), false);
});
