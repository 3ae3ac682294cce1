import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dueBackup, lastOccurrence, parseSpec } from './schedule.js';

const none = { full: null, diff: null, incr: null };
const at = (s: string) => new Date(s);

test('parseSpec reads every, daily and weekday specs and refuses anything else', () => {
  assert.deepEqual(parseSpec('every 6h'), { kind: 'every', ms: 6 * 3_600_000 });
  assert.deepEqual(parseSpec('every 30m'), { kind: 'every', ms: 30 * 60_000 });
  assert.deepEqual(parseSpec('daily 01:30'), { kind: 'at', weekday: null, hour: 1, minute: 30 });
  assert.deepEqual(parseSpec('sun 23:05'), { kind: 'at', weekday: 0, hour: 23, minute: 5 });
  for (const bad of ['every 0h', 'every 6', 'daily 24:00', 'sunday 01:00', 'daily 1:00', '']) {
    assert.equal(parseSpec(bad), null, bad);
  }
});

test('lastOccurrence: the same day once the time has passed, else the day before; weekdays go back', () => {
  const daily = { kind: 'at' as const, weekday: null, hour: 1, minute: 0 };
  assert.equal(
    lastOccurrence(daily, at('2026-12-07T03:00:00')).getTime(),
    at('2026-12-07T01:00:00').getTime(),
  );
  assert.equal(
    lastOccurrence(daily, at('2026-12-07T00:30:00')).getTime(),
    at('2026-12-06T01:00:00').getTime(),
  );
  // 2026-12-07 is a Monday: the last Sunday 01:00 is the 6th.
  const sun = { kind: 'at' as const, weekday: 0, hour: 1, minute: 0 };
  assert.equal(lastOccurrence(sun, at('2026-12-07T03:00:00')).getTime(), at('2026-12-06T01:00:00').getTime());
  assert.equal(lastOccurrence(sun, at('2026-12-06T00:59:00')).getTime(), at('2026-11-29T01:00:00').getTime());
});

test('a group with no backup gets a full one at once, whatever kind is scheduled', () => {
  assert.equal(dueBackup({ ...none, incr: 'every 1h' }, none, at('2026-12-07T03:00:00')), 'full');
  assert.equal(dueBackup(none, none, at('2026-12-07T03:00:00')), null);
});

test('every: due once the interval has passed since the last backup that covers the kind', () => {
  const schedule = { full: 'every 7d', diff: 'every 1d', incr: null };
  const now = at('2026-12-07T12:00:00');
  assert.equal(dueBackup(schedule, { full: at('2026-12-06T13:00:00'), diff: null, incr: null }, now), null);
  assert.equal(dueBackup(schedule, { full: at('2026-12-06T11:00:00'), diff: null, incr: null }, now), 'diff');
  assert.equal(
    dueBackup(
      schedule,
      { full: at('2026-11-30T11:00:00'), diff: at('2026-12-07T11:00:00'), incr: null },
      now,
    ),
    'full',
  );
});

test('daily/weekday: due when no covering backup ended since the last scheduled moment', () => {
  const schedule = { full: 'sun 01:00', diff: 'daily 01:00', incr: null };
  const now = at('2026-12-07T03:00:00'); // Monday
  const full = at('2026-12-06T01:10:00');
  assert.equal(dueBackup(schedule, { full, diff: null, incr: null }, now), 'diff');
  assert.equal(dueBackup(schedule, { full, diff: at('2026-12-07T01:05:00'), incr: null }, now), null);
  assert.equal(
    dueBackup(
      schedule,
      { full: at('2026-12-05T01:00:00'), diff: at('2026-12-07T01:05:00'), incr: null },
      now,
    ),
    'full',
  );
});
