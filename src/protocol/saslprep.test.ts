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

void test('RFC 4013 section 3 examples (errors fall back to the raw password, as PostgreSQL does)', () => {
  assert.equal(saslprep('I\u00ADX'), 'IX', '1: soft hyphen mapped to nothing');
  assert.equal(saslprep('user'), 'user', '2: no transformation');
  assert.equal(saslprep('USER'), 'USER', '3: case preserved');
  assert.equal(saslprep('\u00AA'), 'a', '4: output is NFKC');
  assert.equal(saslprep('\u2168'), 'IX', '5: output is NFKC');
  assert.equal(saslprep('\u0007'), '\u0007', '6: prohibited character (ASCII: PostgreSQL keeps it)');
  assert.equal(saslprep('\u0627\u0031'), '\u0627\u0031', '7: bidirectional check fails');
});

void test('"unassigned" means unassigned in Unicode 3.2 (RFC 3454 A.1), not in today\'s Unicode', () => {
  // U+1F600 was assigned in Unicode 6.1: PostgreSQL's table calls it unassigned, so the
  // password is prohibited and hashed raw, although NFKC would turn U+210C into "H".
  assert.equal(saslprep('\u210C\u{1F600}'), '\u210C\u{1F600}');
  // U+0221 (assigned in Unicode 4.0) likewise.
  assert.equal(saslprep('\u2168\u0221'), '\u2168\u0221');
  assert.equal(saslprep('\u2168\u00e9'), 'IX\u00e9');
});
