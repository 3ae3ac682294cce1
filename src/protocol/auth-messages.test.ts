import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { AuthResponseMessage } from './auth-messages.js';
import {
  decodeAuthentication,
  decodePasswordMessage,
  decodeSASLInitialResponse,
  decodeSASLResponse,
  encodeAuthResponse,
} from './auth-messages.js';

const text = fc.string({ unit: 'grapheme', maxLength: 20 }).map((s) => s.replaceAll('\0', ''));
const bytes = fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a));

const response: fc.Arbitrary<AuthResponseMessage> = fc.oneof(
  text.map((password) => ({ name: 'PasswordMessage' as const, password })),
  fc
    .record({
      name: fc.constant('SASLInitialResponse' as const),
      mechanism: text,
      data: fc.option(bytes, { nil: null }),
    })
    .map((m) => ({ ...m })),
  bytes.map((data) => ({ name: 'SASLResponse' as const, data })),
);

const decoders = {
  PasswordMessage: decodePasswordMessage,
  SASLInitialResponse: decodeSASLInitialResponse,
  SASLResponse: decodeSASLResponse,
} as const;

void test('property: decode(encode(m)) deep-equals m for the p messages', () => {
  fc.assert(
    fc.property(response, (m) => {
      const b = encodeAuthResponse(m);
      assert.equal(b[0], 0x70);
      const r = decoders[m.name](b.subarray(5));
      assert.ok(r.ok);
      assert.deepEqual(r.value, m);
    }),
    { numRuns: 1000 },
  );
});

void test('property: random bytes to every auth decoder give values only', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (data) => {
      const b = Buffer.from(data);
      for (const d of [
        decodeAuthentication,
        decodePasswordMessage,
        decodeSASLInitialResponse,
        decodeSASLResponse,
      ])
        d(b);
    }),
    { numRuns: 2000 },
  );
});

void test('SASLInitialResponse: length beyond the message or < -1 is malformed', () => {
  const b = Buffer.from('SCRAM-SHA-256\0\x00\x00\x10\x00abc', 'latin1');
  assert.equal(decodeSASLInitialResponse(b).ok, false);
  const neg = Buffer.from('SCRAM-SHA-256\0\xff\xff\xff\xfe', 'latin1');
  assert.equal(decodeSASLInitialResponse(neg).ok, false);
});

void test('unsupported authentication requests (GSS=7) are values', () => {
  const r = decodeAuthentication(Buffer.from([0, 0, 0, 7]));
  assert.equal(r.ok, false);
});

void test('MD5 request needs exactly a 4-byte salt', () => {
  assert.equal(decodeAuthentication(Buffer.from([0, 0, 0, 5, 1, 2, 3])).ok, false);
  assert.equal(decodeAuthentication(Buffer.from([0, 0, 0, 5, 1, 2, 3, 4])).ok, true);
});
