import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cancelKeyFor } from './cancel-key.js';

test('cancel keys: 32 bytes, the same for one id, different between ids', () => {
  assert.equal(cancelKeyFor(1).length, 32);
  assert.deepEqual(cancelKeyFor(7), cancelKeyFor(7));
  const seen = new Set<string>();
  for (let id = 1; id <= 1000; id++) seen.add(cancelKeyFor(id).subarray(0, 4).toString('hex'));
  // 4-byte keys (protocol 3.0) of 1,000 clients: collisions are possible in principle, but rare.
  assert.ok(seen.size >= 999, `${1000 - seen.size} collisions among 1,000 four-byte keys`);
});
