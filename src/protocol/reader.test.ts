import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Reader } from './reader.js';

void test('reads past the end set a sticky flag instead of throwing', () => {
  const r = new Reader(Buffer.from([0, 1, 2]));
  assert.equal(r.int16(), 1);
  assert.equal(r.int32(), 0);
  assert.equal(r.failed, true);
  assert.equal(r.byte(), 0, 'still failed, even though one byte remains');
});

void test('cstring needs a terminator; strict strings flag invalid UTF-8', () => {
  assert.equal(new Reader(Buffer.from('abc')).cstring(), '');
  const r = new Reader(Buffer.from([0xc3, 0x28, 0]));
  assert.equal(r.cstring(), '');
  assert.equal(r.badEncoding, true);
  assert.equal(new Reader(Buffer.from([0xc3, 0x28, 0])).cstringLossy(), '\ufffd(');
});

void test('property: arbitrary read sequences on arbitrary bytes never throw', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 32 }),
      fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 20 }),
      (data, ops) => {
        const r = new Reader(Buffer.from(data));
        for (const op of ops) {
          [
            () => r.byte(),
            () => r.int16(),
            () => r.int32(),
            () => r.uint32(),
            () => r.cstring(),
            () => r.bytes(3),
            () => r.rest(),
          ][op]!();
        }
        assert.ok(r.remaining >= 0);
      },
    ),
  );
});
