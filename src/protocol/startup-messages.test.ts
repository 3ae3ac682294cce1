import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { StartupPacket } from './startup-messages.js';
import {
  decodeStartupPacket,
  encodeStartupPacket,
  negotiateProtocol,
  startupIdentity,
} from './startup-messages.js';
import { PROTOCOL_3_0, PROTOCOL_3_2, protocolVersion } from './limits.js';

const text = fc.string({ unit: 'grapheme', maxLength: 20 }).map((s) => s.replaceAll('\0', ''));

const packet: fc.Arbitrary<StartupPacket> = fc.oneof(
  fc.constantFrom({ name: 'SSLRequest' as const }, { name: 'GSSENCRequest' as const }),
  fc
    .record({
      name: fc.constant('CancelRequest' as const),
      processId: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      secretKey: fc.uint8Array({ minLength: 4, maxLength: 256 }).map((a) => Buffer.from(a)),
    })
    .map((c) => ({ ...c })),
  fc
    .tuple(
      fc.constantFrom(PROTOCOL_3_0, PROTOCOL_3_2, protocolVersion(3, 9)),
      fc.uniqueArray(
        fc.tuple(
          text.filter((k) => k !== ''),
          text,
        ),
        { selector: (p) => p[0], maxLength: 6 },
      ),
    )
    .map(([version, pairs]) => ({ name: 'StartupMessage' as const, version, params: new Map(pairs) })),
);

function payloadOf(b: Buffer): Buffer {
  assert.equal(b.readUInt32BE(0), b.length);
  return b.subarray(4);
}

void test('property: decode(encode(p)) deep-equals p for startup packets', () => {
  fc.assert(
    fc.property(packet, (p) => {
      const r = decodeStartupPacket(payloadOf(encodeStartupPacket(p)));
      assert.equal(r.ok, true);
      if (r.ok) assert.deepEqual(r.value, p);
    }),
    { numRuns: 1000 },
  );
});

void test('property: random startup payloads yield values only', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), fc.boolean(), (data, v3) => {
      const b = Buffer.from(data);
      if (v3 && b.length >= 4) b.writeUInt32BE(PROTOCOL_3_0, 0);
      const r = decodeStartupPacket(b);
      if (!r.ok) assert.match(r.sqlstate, /^(08P01|22021)$/);
    }),
    { numRuns: 3000 },
  );
});

function raw(...parts: string[]): Buffer {
  const version = Buffer.alloc(4);
  version.writeUInt32BE(PROTOCOL_3_0);
  return Buffer.concat([version, Buffer.from(parts.join(''), 'latin1')]);
}

void test('layout errors: missing final NUL, odd key/value count, junk after terminator', () => {
  for (const b of [
    raw('user\0alice\0'),
    raw('user\0'),
    raw('user\0alice\0database\0'),
    raw('user\0alice\0\0x'),
    raw('user'),
  ]) {
    const r = decodeStartupPacket(b);
    assert.equal(r.ok, false, b.toString('latin1'));
    if (!r.ok) {
      assert.equal(r.sqlstate, '08P01');
      assert.match(r.message, /invalid startup packet layout/);
    }
  }
  assert.equal(decodeStartupPacket(raw('\0')).ok, true);
});

void test('invalid UTF-8 in user is refused, not mangled; duplicates are refused', () => {
  const bad = decodeStartupPacket(raw('user\0al\xffice\0\0'));
  assert.equal(bad.ok, false);
  if (!bad.ok) assert.equal(bad.sqlstate, '22021');
  assert.equal(decodeStartupPacket(raw('user\0a\0user\0b\0\0')).ok, false);
});

void test('10 kB user name decodes (the framer caps packet size, not the codec)', () => {
  const r = decodeStartupPacket(raw(`user\0${'u'.repeat(9000)}\0\0`));
  assert.ok(r.ok);
});

void test('CancelRequest: 3.0 key, 32-byte key, too short (12-byte packet), 300-byte key', () => {
  const cancel = (keyLength: number): Buffer => {
    const b = Buffer.alloc(8 + keyLength);
    b.writeUInt32BE(80877102, 0);
    b.writeInt32BE(1234, 4);
    return b;
  };
  assert.equal(decodeStartupPacket(cancel(4)).ok, true);
  assert.equal(decodeStartupPacket(cancel(32)).ok, true);
  assert.equal(decodeStartupPacket(cancel(0)).ok, false);
  assert.equal(decodeStartupPacket(cancel(300)).ok, false);
});

void test('SSLRequest with extra bytes is malformed', () => {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(80877103, 0);
  assert.equal(decodeStartupPacket(b).ok, false);
});

void test('negotiateProtocol: 2.0 and 4.0 are 0A000; 3.9 + _pq_ negotiates once to 3.2', () => {
  const none = new Map<string, string>();
  for (const v of [protocolVersion(2, 0), protocolVersion(4, 0)]) {
    const r = negotiateProtocol(v, none);
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.sqlstate, '0A000');
      assert.match(r.message, /unsupported frontend protocol/);
    }
  }
  const r = negotiateProtocol(
    protocolVersion(3, 9),
    new Map([
      ['_pq_.x', '1'],
      ['user', 'u'],
    ]),
  );
  assert.deepEqual(r, {
    ok: true,
    value: { version: PROTOCOL_3_2, unsupportedOptions: ['_pq_.x'], negotiate: true },
  });
  assert.deepEqual(negotiateProtocol(PROTOCOL_3_0, none), {
    ok: true,
    value: { version: PROTOCOL_3_0, unsupportedOptions: [], negotiate: false },
  });
  assert.equal(negotiateProtocol(PROTOCOL_3_2, new Map([['_pq_.y', '']]), new Set(['_pq_.y'])).ok, true);
});

void test('startupIdentity: user required (28000); database defaults to user', () => {
  const missing = startupIdentity(new Map());
  assert.equal(missing.ok, false);
  if (!missing.ok) assert.equal(missing.sqlstate, '28000');
  assert.deepEqual(startupIdentity(new Map([['user', 'bob']])), {
    ok: true,
    value: { user: 'bob', database: 'bob' },
  });
});
