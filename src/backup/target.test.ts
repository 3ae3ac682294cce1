import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTarget } from './target.js';
import { UsageError } from '../errors.js';

test('latest and LSNs', () => {
  assert.deepEqual(parseTarget('latest'), { type: 'default' });
  assert.deepEqual(parseTarget('0/3000a60'), { type: 'lsn', target: '0/3000A60' });
});

test('times become UTC with microseconds, whatever zone they were written in', () => {
  const t = (s: string) => {
    const r = parseTarget(s);
    assert.equal(r.type, 'time');
    return r.type === 'time' ? r.target : '';
  };
  assert.equal(t('2026-12-07T14:00:00Z'), '2026-12-07 14:00:00.000000+00');
  assert.equal(t('2026-12-07 16:00:00.123456+02'), '2026-12-07 14:00:00.123456+00');
  assert.equal(t('2026-12-07T14:00:00.5+0000'), '2026-12-07 14:00:00.500000+00');
  assert.equal(t('2026-12-07T15:30+01:30'), '2026-12-07 14:00:00.000000+00');
});

test('garbage and a missing --to are usage errors naming the problem', () => {
  for (const bad of ['yesterday', '2026-13-45T99:00:00Z', '0/', '', undefined]) {
    assert.throws(
      () => parseTarget(bad),
      (e: unknown) => e instanceof UsageError && /--to/.test(e.message),
      String(bad),
    );
  }
});
