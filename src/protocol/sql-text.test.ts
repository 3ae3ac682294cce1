import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeText, encodeText, hasRawBytes } from './sql-text.js';

void test('UTF-8 decodes as UTF-8; other bytes one character per byte, ASCII intact', () => {
  assert.equal(decodeText(Buffer.from("SELECT 'é'", 'utf8')), "SELECT 'é'");
  const latin1 = Buffer.from("SELECT 'caf\xe9\\'", 'latin1');
  const s = decodeText(latin1);
  assert.equal(s.length, latin1.length);
  assert.equal(s.slice(0, 11), "SELECT 'caf");
  assert.equal(s.slice(-2), "\\'", 'ASCII after a high byte is still ASCII');
  assert.ok(hasRawBytes(s));
  assert.ok(!hasRawBytes("SELECT 'é'"));
  assert.ok(!hasRawBytes('\u{1D480}'), 'the second half of a surrogate pair is not a raw byte');
  assert.deepEqual(
    encodeText(`\u{1D480}${decodeText(Buffer.of(0xe9))}`),
    Buffer.concat([Buffer.from('\u{1D480}'), Buffer.of(0xe9)]),
  );
});

void test('property: encodeText(decodeText(b)) gives back the bytes, also around inserted text', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 64 }), (a, b) => {
      const ba = Buffer.from(a);
      assert.deepEqual(encodeText(decodeText(ba)), ba);
      const joined = `${decodeText(ba)} pgscale_s_1 ${decodeText(Buffer.from(b))}`;
      assert.deepEqual(encodeText(joined), Buffer.concat([ba, Buffer.from(' pgscale_s_1 '), Buffer.from(b)]));
    }),
  );
});
