import { test } from 'node:test';
import assert from 'node:assert/strict';
import { effectivePool } from './user-settings.js';

const defaults = { default_pool_size: 20, pool_mode: 'transaction' as const };

void test('the proxy defaults apply when neither the user nor the database sets anything', () => {
  assert.deepEqual(effectivePool(undefined, {}, defaults), { size: 20, mode: 'transaction' });
});

void test("the database's settings override the defaults", () => {
  assert.deepEqual(effectivePool({}, { poolSize: 5, poolMode: 'session' }, defaults), {
    size: 5,
    mode: 'session',
  });
});

void test("the user's settings override the database's, each on its own", () => {
  assert.deepEqual(effectivePool({ poolSize: 2 }, { poolSize: 5, poolMode: 'session' }, defaults), {
    size: 2,
    mode: 'session',
  });
  assert.deepEqual(
    effectivePool({ poolMode: 'transaction' }, { poolSize: 5, poolMode: 'session' }, defaults),
    {
      size: 5,
      mode: 'transaction',
    },
  );
});
