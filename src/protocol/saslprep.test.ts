import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { saslprep } from './saslprep.js';

void test('ASCII passes unchanged, control characters included (PostgreSQL shortcut)', () => {
  assert.equal(saslprep('pencil'), 'pencil');
  assert.equal(saslprep('a\tb'), 'a\tb');
});

void test('RFC 4013 mappings: soft hyphen removed, NBSP to space, NFKC', () => {
  assert.equal(saslprep('I\u00ADX'), 'IX');
  assert.equal(saslprep('a\u00A0b\u00e9'), 'a b\u00e9');
  assert.equal(saslprep('\u2168'), 'IX');
  assert.equal(saslprep('\uFB01'), 'fi');
});

void test('prohibited output falls back to the raw password, as PostgreSQL does', () => {
  assert.equal(saslprep('\u00e9\u0007'), '\u00e9\u0007');
  assert.equal(saslprep('\u00e9\uE000'), '\u00e9\uE000');
  assert.equal(saslprep('\u00AD'), '\u00AD', 'empty after mapping');
  assert.equal(saslprep('\u0627\u00e91'), '\u0627\u00e91', 'bidi: RandAL mixed with L');
  assert.equal(saslprep('\u0627\u0628'), '\u0627\u0628');
});

void test('property: never throws, and is idempotent on its successful outputs', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 20 }), (s) => {
      const once = saslprep(s);
      if (once !== s) assert.equal(saslprep(once), once);
    }),
  );
});
