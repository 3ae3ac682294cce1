import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitIdentifierList, startupSettings } from './startup-params.js';

test('splitIdentifierList splits as PostgreSQL SplitIdentifierString does', () => {
  assert.deepEqual(splitIdentifierList('evil,public'), ['evil', 'public']);
  assert.deepEqual(splitIdentifierList('  EVIL ,  "My ""S""" ,public '), ['evil', 'My "S"', 'public']);
  assert.deepEqual(splitIdentifierList('"$user", public'), ['$user', 'public']);
  assert.deepEqual(splitIdentifierList(''), []);
  assert.deepEqual(splitIdentifierList('   '), []);
  for (const bad of ['a,,b', 'a,', ',a', '"open', '""', '"a"b', "public'; SET ROLE x; --"]) {
    assert.equal(splitIdentifierList(bad), undefined, bad);
  }
});

test('a start-up search_path is replayed as a list, not as one quoted name', () => {
  const r = startupSettings(new Map([['options', '-c search_path=evil,public']]), []);
  assert.ok(r.ok);
  assert.equal(r.value.settings.get('search_path'), "'evil', 'public'");
  assert.equal(r.value.raw.get('search_path'), 'evil,public');
  const direct = startupSettings(new Map([['search_path', "a'b"]]), []);
  assert.ok(direct.ok);
  assert.equal(direct.value.settings.get('search_path'), "'a''b'");
  const bad = startupSettings(new Map([['search_path', 'a,,b']]), []);
  assert.ok(!bad.ok);
  assert.equal(bad.sqlstate, '22023');
  const other = startupSettings(new Map([['application_name', 'x,y']]), []);
  assert.ok(other.ok);
  assert.equal(other.value.settings.get('application_name'), "'x,y'");
});

test('client_encoding: reported canonically; SJIS and friends refused at login (0A000)', () => {
  const r = startupSettings(new Map([['client_encoding', 'latin1']]), []);
  assert.ok(r.ok && r.value.raw.get('client_encoding') === 'LATIN1');
  for (const e of ['SJIS', 'big5', 'GBK', 'UHC', 'JOHAB', 'GB18030', 'SHIFT_JIS_2004']) {
    const bad = startupSettings(new Map([['client_encoding', e]]), []);
    assert.ok(!bad.ok && bad.sqlstate === '0A000' && /not supported through pgscale/.test(bad.message), e);
  }
  const viaOptions = startupSettings(new Map([['options', '-c client_encoding=sjis']]), []);
  assert.ok(!viaOptions.ok);
});
