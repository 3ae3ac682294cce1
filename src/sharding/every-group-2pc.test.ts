import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideWrite, parseWriteGid, writeGid } from './every-group-2pc.js';

test('a write gid names the operation, the position and the count, and reads back', () => {
  const gid = writeGid('a1b2', 1, 3);
  assert.equal(gid, 'pgscale:write:a1b2:1:3');
  assert.deepEqual(parseWriteGid(gid), { id: 'a1b2', position: 1, count: 3 });
  assert.equal(parseWriteGid('pgscale:write:a1b2:3:3'), null);
  assert.equal(parseWriteGid('pgscale:distribute:x:public.t'), null);
});

test('all prepared: the commit phase had not begun, roll back', () => {
  assert.equal(decideWrite(new Set([0, 1, 2]), 3), 'rollback');
});

test('a prefix prepared: the prepare phase did not finish, roll back', () => {
  assert.equal(decideWrite(new Set([0]), 3), 'rollback');
  assert.equal(decideWrite(new Set([0, 1]), 3), 'rollback');
});

test('a suffix prepared: the first committed, so commit the rest', () => {
  assert.equal(decideWrite(new Set([1, 2]), 3), 'commit');
  assert.equal(decideWrite(new Set([2]), 3), 'commit');
});

test('one group: prepared means not committed', () => {
  assert.equal(decideWrite(new Set([0]), 1), 'rollback');
});
