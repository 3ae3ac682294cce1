import { test } from 'node:test';
import assert from 'node:assert/strict';
import { committedSettings } from './settings-record.js';

const startup = new Map([
  ['timezone', "'Asia/Tokyo'"],
  ['datestyle', "'Postgres, MDY'"],
  ['application_name', "'app'"],
]);

test('a reported setting is recorded as the server reports it, others as written', () => {
  const r = committedSettings(
    startup,
    [
      { kind: 'set', name: 'datestyle', value: 'iso' },
      { kind: 'set', name: 'datestyle', value: 'ymd' },
      { kind: 'set', name: 'work_mem', value: "'64MB'" },
      { kind: 'set', name: 'search_path', value: 'a, b' },
    ],
    startup,
    new Map([
      ['DateStyle', 'ISO, YMD'],
      ['TimeZone', 'Asia/Tokyo'],
      ['search_path', 'a, b'],
    ]),
  );
  assert.equal(r.get('datestyle'), "'ISO, YMD'");
  assert.equal(r.get('work_mem'), "'64MB'");
  assert.equal(r.get('search_path'), 'a, b');
  assert.equal(r.get('timezone'), "'Asia/Tokyo'");
});

test('RESET gives the start-up value, a custom placeholder or nothing; RESET ALL the start-up map', () => {
  const before = new Map([...startup, ['timezone', "'UTC'"], ['work_mem', '1'], ['my.x', '1']]);
  const r = committedSettings(
    before,
    [
      { kind: 'reset', name: 'timezone' },
      { kind: 'reset', name: 'work_mem' },
      { kind: 'reset', name: 'my.x' },
    ],
    startup,
    null,
  );
  assert.equal(r.get('timezone'), "'Asia/Tokyo'");
  assert.ok(!r.has('work_mem'));
  assert.equal(r.get('my.x'), 'DEFAULT');
  const all = committedSettings(
    new Map([...startup, ['work_mem', '1']]),
    [{ kind: 'reset_all' }],
    startup,
    null,
  );
  assert.equal(all, startup, 'the shared start-up map itself');
  const none = new Map([['timezone', "'UTC'"]]);
  const all2 = committedSettings(new Map([['my.y', '2']]), [{ kind: 'reset_all' }], none, null);
  assert.deepEqual(
    [...all2],
    [
      ['timezone', "'UTC'"],
      ['application_name', "''"],
      ['my.y', 'DEFAULT'],
    ],
  );
});
