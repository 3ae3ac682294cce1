import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cancelKeyFor, instanceOf, MAX_INSTANCE, processIdFor, setCancelInstance } from './cancel-key.js';

test('cancel keys: 32 bytes, the same for one id, different between ids', () => {
  assert.equal(cancelKeyFor(1).length, 32);
  assert.deepEqual(cancelKeyFor(7), cancelKeyFor(7));
  const seen = new Set<string>();
  for (let id = 1; id <= 1000; id++) seen.add(cancelKeyFor(id).subarray(0, 4).toString('hex'));
  // 4-byte keys (protocol 3.0) of 1,000 clients: collisions are possible in principle, but rare.
  assert.ok(seen.size >= 999, `${1000 - seen.size} collisions among 1,000 four-byte keys`);
});

test('process ids carry the instance in bits 30..21, stay positive, and keys differ across a wrap', () => {
  try {
    setCancelInstance(3);
    const pid = processIdFor(5);
    assert.equal(instanceOf(pid), 3);
    assert.equal(pid & 0x1fffff, 5);
    setCancelInstance(MAX_INSTANCE);
    const top = processIdFor(2 ** 21 - 1);
    assert.ok(top > 0 && top <= 0x7fffffff, 'bit 31 stays clear (drivers read a signed int32)');
    assert.equal(instanceOf(top), MAX_INSTANCE);
    // Two ids with the same low bits share a process id but never a key.
    assert.equal(processIdFor(7), processIdFor(7 + 2 ** 21));
    assert.notDeepEqual(cancelKeyFor(7), cancelKeyFor(7 + 2 ** 21));
    assert.notDeepEqual(cancelKeyFor(7), cancelKeyFor(7 + 2 ** 32));
    assert.throws(() => setCancelInstance(MAX_INSTANCE + 1), /from 0 to 1023/);
    assert.throws(() => setCancelInstance(-1), RangeError);
  } finally {
    setCancelInstance(0);
  }
  assert.equal(processIdFor(9), 9, 'a proxy of one process shows the id itself (instance 0)');
});
