import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatLsn, lsnDiff, parseLsn } from './lsn.js';

test('LSNs parse to 64-bit positions and back', () => {
  assert.equal(parseLsn('0/0'), 0n);
  assert.equal(parseLsn('16/B374D848'), (0x16n << 32n) | 0xb374d848n);
  assert.equal(parseLsn('16/b374d848'), (0x16n << 32n) | 0xb374d848n);
  assert.equal(parseLsn('FFFFFFFF/FFFFFFFF'), (1n << 64n) - 1n);
  for (const bad of ['', '1', '1/', '/1', 'G/0', '1/2/3', '123456789/0', ' 0/0', null, undefined])
    assert.equal(parseLsn(bad), null);
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (v) => parseLsn(formatLsn(v)) === v));
});

test('LSNs format as PostgreSQL prints them', () => {
  assert.equal(formatLsn(0n), '0/0');
  assert.equal(formatLsn((0x16n << 32n) | 0xb374d848n), '16/B374D848');
  assert.equal(formatLsn(0x1000000n), '0/1000000');
});

test('the distance between two LSNs is in bytes, across the 32-bit boundary too', () => {
  assert.equal(lsnDiff(parseLsn('0/3000060')!, parseLsn('0/3000000')!), 0x60n);
  assert.equal(lsnDiff(parseLsn('1/0')!, parseLsn('0/FFFFFFFF')!), 1n);
  assert.equal(lsnDiff(parseLsn('0/0')!, parseLsn('0/10')!), -16n);
});
