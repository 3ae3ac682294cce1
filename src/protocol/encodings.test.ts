import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalEncoding, isAsciiSafeEncoding } from './encodings.js';

void test('encoding names are read as PostgreSQL reads them', () => {
  assert.equal(canonicalEncoding('latin1'), 'LATIN1');
  assert.equal(canonicalEncoding("'ISO-8859-1'"), 'LATIN1');
  assert.equal(canonicalEncoding('Unicode'), 'UTF8');
  assert.equal(canonicalEncoding('utf-8'), 'UTF8');
  assert.equal(canonicalEncoding('windows-1252'), 'WIN1252');
  assert.equal(canonicalEncoding('Shift_JIS'), 'SJIS');
  assert.equal(canonicalEncoding('nonsense'), null);
});

void test('client-only encodings whose characters can hold ASCII bytes are not ASCII-safe', () => {
  for (const e of ['SJIS', 'mskanji', 'SHIFT_JIS_2004', 'BIG5', 'win950', 'GBK', 'UHC', 'JOHAB', 'GB18030'])
    assert.equal(isAsciiSafeEncoding(e), false, e);
  for (const e of ['UTF8', 'LATIN1', 'WIN1252', 'EUC_JP', 'EUC_KR', 'KOI8R', 'SQL_ASCII', 'MULE_INTERNAL'])
    assert.equal(isAsciiSafeEncoding(e), true, e);
});
