import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fail, failureToError, ok } from './result.js';
import { SqlState } from './sqlstate.js';
import { ErrorCodes, ProtocolError } from '../errors.js';

void test('ok and fail build the two result shapes', () => {
  assert.deepEqual(ok(1), { ok: true, value: 1 });
  assert.deepEqual(fail(SqlState.PROTOCOL_VIOLATION, 'm'), { ok: false, sqlstate: '08P01', message: 'm' });
  assert.deepEqual(fail(SqlState.PROTOCOL_VIOLATION, 'm', 'd'), {
    ok: false,
    sqlstate: '08P01',
    message: 'm',
    detail: 'd',
  });
});

void test('failureToError maps class 28 to AUTH and the rest to PROTOCOL', () => {
  const auth = failureToError(fail(SqlState.INVALID_PASSWORD, 'password authentication failed for user "u"'));
  assert.ok(auth instanceof ProtocolError);
  assert.equal(auth.code, ErrorCodes.AUTH);
  assert.match(auth.message, /^28P01: /);
  assert.equal(failureToError(fail(SqlState.PROTOCOL_VIOLATION, 'x', 'y')).code, ErrorCodes.PROTOCOL);
  assert.equal(failureToError(fail(SqlState.PROTOCOL_VIOLATION, 'x', 'y')).message, '08P01: x (y)');
});
