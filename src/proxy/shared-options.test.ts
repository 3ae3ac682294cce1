import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Pool } from './backend/pool.js';
import type { SessionOptions } from './session/context.js';
import { SharedOptions } from './shared-options.js';

test('clients of a pool with equal options share one options object; any difference gets its own', () => {
  const [p1, p2] = [{} as Pool, {} as Pool];
  const settings = new Map([['client_encoding', "'UTF8'"]]);
  const make = (pool: Pool, extra: Partial<SessionOptions> = {}): SessionOptions => ({
    pool,
    mode: 'transaction',
    maxPreparedStatements: 200,
    listeners: null,
    startupSettings: settings,
    router: null,
    ...extra,
  });
  const shared = new SharedOptions();
  const a = shared.of(make(p1));
  assert.equal(shared.of(make(p1)), a);
  // Another pool, other settings, a field more or less: never the same object.
  const b = shared.of(make(p2));
  assert.notEqual(b, a);
  const other = shared.of(make(p1, { startupSettings: new Map([['client_encoding', "'UTF8'"]]) }));
  assert.notEqual(other, a);
  assert.notEqual(shared.of(make(p1, { group: '1' })), other);
  const withProxy = make(p1, { startupProxySettings: new Map([['pgscale.target', 'primary']]) });
  assert.equal(shared.of(withProxy), withProxy);
  // The last one made for the pool is what later clients share.
  assert.equal(shared.of({ ...withProxy }), withProxy);
  assert.equal(shared.of(make(p2)), b);
});
