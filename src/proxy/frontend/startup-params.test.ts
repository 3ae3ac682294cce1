import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SHARED_SETTINGS_MAX,
  sharedSettings,
  splitIdentifierList,
  sqlLiteral,
  startupSettings,
} from './startup-params.js';

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

test('unknown settings are accepted for the server to verify; pgscale.* are the proxy own', () => {
  const r = startupSettings(
    new Map([
      ['options', '-c work_mem=64MB --statement-timeout=5s -c pgscale.consistency=primary'],
      ['maintenance_work_mem', '128MB'],
    ]),
    [],
  );
  assert.ok(r.ok);
  assert.equal(r.value.settings.get('work_mem'), "'64MB'");
  assert.equal(r.value.settings.get('maintenance_work_mem'), "'128MB'");
  assert.equal(r.value.settings.get('statement_timeout'), "'5s'");
  assert.deepEqual(r.value.unverified.sort(), ['maintenance_work_mem', 'statement_timeout', 'work_mem']);
  const plain = startupSettings(
    new Map([
      ['application_name', 'a'],
      ['client_encoding', 'UTF8'],
    ]),
    [],
  );
  assert.ok(plain.ok && plain.value.unverified.length === 0);
  assert.equal(r.value.proxy.get('pgscale.consistency'), 'primary');
  assert.ok(!r.value.settings.has('pgscale.consistency'));
  const badValue = startupSettings(new Map([['options', '-c pgscale.consistency=never']]), []);
  assert.ok(!badValue.ok && badValue.sqlstate === '22023');
  const badName = startupSettings(new Map([['options', '-c pgscale.nope=1']]), []);
  assert.ok(!badName.ok && badName.sqlstate === '42704');
  for (const k of ['role', 'session_authorization', 'transaction_read_only']) {
    const bad = startupSettings(new Map([['options', `-c ${k}=x`]]), []);
    assert.ok(!bad.ok && bad.sqlstate === '0A000', k);
    const top = startupSettings(new Map([[k, 'x']]), []);
    assert.ok(!top.ok && top.sqlstate === '0A000', k);
  }
  const ignored = startupSettings(
    new Map([
      ['extra_float_digits', '2'],
      ['geqo', 'on'],
    ]),
    ['geqo'],
  );
  assert.ok(
    ignored.ok && !ignored.value.settings.has('geqo') && ignored.value.settings.has('extra_float_digits'),
  );
  const list = startupSettings(new Map([['temp_tablespaces', 'a,b']]), []);
  assert.ok(list.ok && list.value.settings.get('temp_tablespaces') === "'a', 'b'");
});

test('sqlLiteral: quotes doubled; a backslash makes an escape string, safe whatever standard_conforming_strings is', () => {
  assert.equal(sqlLiteral("a'b"), "'a''b'");
  assert.equal(sqlLiteral("x\\'; DROP TABLE t; --"), "E'x\\\\''; DROP TABLE t; --'");
  assert.equal(sqlLiteral('C:\\dir'), "E'C:\\\\dir'");
});

test('clients that give the same start-up settings share one map (idle memory)', () => {
  const params = (enc: string) =>
    new Map([
      ['user', 'u'],
      ['database', 'd'],
      ['client_encoding', enc],
      ['DateStyle', 'ISO, MDY'],
    ]);
  const a = startupSettings(params('UTF8'), []);
  const b = startupSettings(params('UTF8'), []);
  const c = startupSettings(params('LATIN1'), []);
  assert.ok(a.ok && b.ok && c.ok);
  assert.equal(a.value.settings, b.value.settings);
  assert.notEqual(a.value.settings, c.value.settings);
  assert.deepEqual([...c.value.settings.keys()], ['client_encoding', 'datestyle']);
  // Bounded: past SHARED_SETTINGS_MAX distinct sets each client keeps its own (still correct).
  for (let i = 0; i < SHARED_SETTINGS_MAX + 10; i++) {
    const m = new Map([[`application_name`, `app${i}`]]);
    assert.deepEqual([...sharedSettings(m)], [['application_name', `app${i}`]]);
  }
  const late = new Map([['application_name', 'late']]);
  assert.equal(sharedSettings(late), late);
  assert.equal(sharedSettings(new Map([['application_name', 'late']])) === late, false);
});
