import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  buildErrorResponse,
  decodeErrorResponse,
  errorField,
  fatalFromFailure,
  summarizeError,
} from './error-response.js';
import { fail } from './result.js';
import { SqlState } from './sqlstate.js';

void test('buildErrorResponse produces S, V, C, M, D and decodes back', () => {
  const b = buildErrorResponse('FATAL', '28P01', 'password authentication failed for user "x"', 'd');
  assert.equal(b[0], 0x45);
  const r = decodeErrorResponse(b.subarray(5));
  assert.ok(r.ok);
  assert.deepEqual(summarizeError(r.value), {
    severity: 'FATAL',
    sqlstate: '28P01',
    message: 'password authentication failed for user "x"',
    detail: 'd',
    hint: undefined,
  });
  assert.deepEqual(
    r.value.fields.map((f) => f.code),
    ['S', 'V', 'C', 'M', 'D'],
  );
});

void test('an error without C is tolerated; unknown and duplicate fields are kept in order', () => {
  const payload = Buffer.from('SERROR\0Mboom\0Zfuture\0Msecond\0\0', 'latin1');
  const r = decodeErrorResponse(payload);
  assert.ok(r.ok);
  assert.equal(errorField(r.value, 'C'), undefined);
  assert.equal(summarizeError(r.value).message, 'boom');
  assert.deepEqual(r.value.fields[2], { code: 'Z', value: 'future' });
  assert.equal(r.value.fields.length, 4);
});

void test('missing terminator or trailing bytes are malformed', () => {
  assert.equal(decodeErrorResponse(Buffer.from('SERROR\0', 'latin1')).ok, false);
  assert.equal(decodeErrorResponse(Buffer.from('SERROR', 'latin1')).ok, false);
  assert.equal(decodeErrorResponse(Buffer.from('\0x', 'latin1')).ok, false);
  assert.equal(decodeErrorResponse(Buffer.alloc(0)).ok, false);
});

void test('invalid UTF-8 in a server error is displayed lossily, not rejected', () => {
  const r = decodeErrorResponse(Buffer.from([0x4d, 0xff, 0, 0]));
  assert.ok(r.ok);
  assert.equal(r.value.fields[0]?.value, '\ufffd');
});

void test('fatalFromFailure turns a Failure into a FATAL ErrorResponse', () => {
  const r = decodeErrorResponse(
    fatalFromFailure(fail(SqlState.PROTOCOL_VIOLATION, 'invalid message length')).subarray(5),
  );
  assert.ok(r.ok);
  assert.equal(summarizeError(r.value).sqlstate, '08P01');
  assert.equal(summarizeError(r.value).severity, 'FATAL');
});

void test('property: random payloads decode to values only', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), (d) => {
      const r = decodeErrorResponse(Buffer.from(d));
      if (!r.ok) assert.equal(r.sqlstate, '08P01');
    }),
  );
});
