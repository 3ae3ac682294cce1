import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { BackendMessage } from './backend-messages.js';
import {
  commandCompleteIs,
  decodeBackendKeyData,
  decodeBackendMessage,
  decodeCommandComplete,
  decodeReadyForQuery,
  encodeBackendMessage,
  readyForQueryStatus,
} from './backend-messages.js';
import { PROTOCOL_3_0, PROTOCOL_3_2 } from './limits.js';

const text = fc.string({ unit: 'grapheme', maxLength: 20 }).map((s) => s.replaceAll('\0', ''));
const bytes = fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a));
const int16 = fc.integer({ min: -32768, max: 32767 });
const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
const uint32 = fc.nat({ max: 0xffffffff });

const field = fc.record({
  name: text,
  tableOid: uint32,
  columnAttr: int16,
  typeOid: uint32,
  typeSize: int16,
  typeModifier: int32,
  format: int16,
});

const backendMessage: fc.Arbitrary<BackendMessage> = fc
  .oneof(
    fc.constantFrom(
      { name: 'AuthenticationOk' as const },
      { name: 'AuthenticationCleartextPassword' as const },
      { name: 'EmptyQueryResponse' as const },
      { name: 'ParseComplete' as const },
      { name: 'BindComplete' as const },
      { name: 'CloseComplete' as const },
      { name: 'NoData' as const },
      { name: 'PortalSuspended' as const },
      { name: 'CopyDone' as const },
    ),
    fc
      .uint8Array({ minLength: 4, maxLength: 4 })
      .map((s) => ({ name: 'AuthenticationMD5Password' as const, salt: Buffer.from(s) })),
    fc
      .array(
        text.filter((s) => s !== ''),
        { maxLength: 3 },
      )
      .map((mechanisms) => ({ name: 'AuthenticationSASL' as const, mechanisms })),
    bytes.map((data) => ({ name: 'AuthenticationSASLContinue' as const, data })),
    bytes.map((data) => ({ name: 'AuthenticationSASLFinal' as const, data })),
    fc.record({ name: fc.constant('ParameterStatus' as const), parameter: text, value: text }),
    fc.record({
      name: fc.constant('BackendKeyData' as const),
      processId: int32,
      secretKey: fc.uint8Array({ minLength: 4, maxLength: 256 }).map((a) => Buffer.from(a)),
    }),
    fc
      .constantFrom('I' as const, 'T' as const, 'E' as const)
      .map((status) => ({ name: 'ReadyForQuery' as const, status })),
    fc.record({
      name: fc.constantFrom('ErrorResponse' as const, 'NoticeResponse' as const),
      fields: fc.array(
        fc
          .record({ code: fc.integer({ min: 1, max: 127 }).map((c) => String.fromCharCode(c)), value: text })
          .map((f) => ({ ...f })),
        { maxLength: 6 },
      ),
    }),
    fc.record({
      name: fc.constant('NegotiateProtocolVersion' as const),
      version: uint32,
      unsupportedOptions: fc.array(text, { maxLength: 3 }),
    }),
    fc
      .array(
        field.map((f) => ({ ...f })),
        { maxLength: 4 },
      )
      .map((fields) => ({ name: 'RowDescription' as const, fields })),
    fc
      .array(fc.option(bytes, { nil: null }), { maxLength: 5 })
      .map((values) => ({ name: 'DataRow' as const, values })),
    text.map((tag) => ({ name: 'CommandComplete' as const, tag })),
    fc.record({
      name: fc.constant('NotificationResponse' as const),
      processId: int32,
      channel: text,
      payload: text,
    }),
    fc
      .array(uint32, { maxLength: 5 })
      .map((typeOids) => ({ name: 'ParameterDescription' as const, typeOids })),
    bytes.map((data) => ({ name: 'CopyData' as const, data })),
    fc.record({
      name: fc.constantFrom(
        'CopyInResponse' as const,
        'CopyOutResponse' as const,
        'CopyBothResponse' as const,
      ),
      format: fc.constantFrom(0, 1),
      columnFormats: fc.array(fc.constantFrom(0, 1), { maxLength: 5 }),
    }),
  )
  .map((m) => ({ ...m }));

function split(b: Buffer): { type: string; payload: Buffer } {
  assert.equal(b.readUInt32BE(1), b.length - 1);
  return { type: String.fromCharCode(b[0]!), payload: b.subarray(5) };
}

void test('property: decode(encode(m)) deep-equals m for every backend message', () => {
  fc.assert(
    fc.property(backendMessage, (m) => {
      const { type, payload } = split(encodeBackendMessage(m));
      const r = decodeBackendMessage(type, payload);
      assert.equal(r.ok, true, JSON.stringify(r));
      if (r.ok) assert.deepEqual(r.value, m);
    }),
    { numRuns: 2000 },
  );
});

void test('property: random payloads under every backend type byte are values, never throws', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...'RSKZENvTDCAtInsd123cGHWVx'.split('')),
      fc.uint8Array({ maxLength: 64 }),
      (type, data) => {
        const r = decodeBackendMessage(type, Buffer.from(data));
        if (!r.ok) assert.match(r.sqlstate, /^(08P01|22021)$/);
      },
    ),
    { numRuns: 3000 },
  );
});

void test('BackendKeyData: 4 bytes in 3.0, 4..256 in 3.2', () => {
  const key = (n: number): Buffer => Buffer.concat([Buffer.from([0, 0, 0, 9]), Buffer.alloc(n, 7)]);
  assert.equal(decodeBackendKeyData(key(4), PROTOCOL_3_0).ok, true);
  assert.equal(decodeBackendKeyData(key(32), PROTOCOL_3_0).ok, false);
  assert.equal(decodeBackendKeyData(key(32), PROTOCOL_3_2).ok, true);
  assert.equal(decodeBackendKeyData(key(256), PROTOCOL_3_2).ok, true);
  assert.equal(decodeBackendKeyData(key(257), PROTOCOL_3_2).ok, false);
  assert.equal(decodeBackendKeyData(key(3), PROTOCOL_3_2).ok, false);
  const r = decodeBackendKeyData(key(32));
  assert.ok(r.ok);
  assert.equal(r.value.processId, 9);
});

void test('ReadyForQuery accepts only I, T, E', () => {
  assert.equal(decodeBackendMessage('Z', Buffer.from('X')).ok, false);
  assert.equal(decodeBackendMessage('Z', Buffer.from('II')).ok, false);
  assert.deepEqual(decodeBackendMessage('Z', Buffer.from('T')), {
    ok: true,
    value: { name: 'ReadyForQuery', status: 'T' },
  });
});

void test('NegotiateProtocolVersion with a bogus option count is malformed, not a huge loop', () => {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(PROTOCOL_3_0, 0);
  b.writeInt32BE(0x7fffffff, 4);
  assert.equal(decodeBackendMessage('v', b).ok, false);
});

void test('known bytes: ReadyForQuery and AuthenticationSASL', () => {
  assert.equal(encodeBackendMessage({ name: 'ReadyForQuery', status: 'I' }).toString('hex'), '5a0000000549');
  assert.equal(
    encodeBackendMessage({ name: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256'] }).toString('latin1'),
    'R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0',
  );
});

void test('DataRow with a negative length other than -1 is malformed', () => {
  const b = Buffer.from([0, 1, 0xff, 0xff, 0xff, 0xfe]);
  assert.equal(decodeBackendMessage('D', b).ok, false);
});

void test('readyForQueryStatus and commandCompleteIs agree with the decoders on any payload', () => {
  const payload = fc.oneof(
    fc.uint8Array({ maxLength: 12 }).map((a) => Buffer.from(a)),
    fc
      .constantFrom('I', 'T', 'E', 'X', 'COMMIT\0', 'ROLLBACK\0', 'COMMIT', 'SELECT 1\0', 'COMMIT\0\0')
      .map((s) => Buffer.from(s, 'latin1')),
  );
  const whole = (type: string, p: Buffer) => {
    const h = Buffer.alloc(5);
    h.write(type, 0, 'latin1');
    h.writeInt32BE(p.length + 4, 1);
    return Buffer.concat([h, p]);
  };
  fc.assert(
    fc.property(payload, (p) => {
      const z = decodeReadyForQuery(p);
      assert.equal(readyForQueryStatus(whole('Z', p)), z.ok ? z.value.status : null);
      const c = decodeCommandComplete(p);
      for (const tag of ['COMMIT', 'ROLLBACK']) {
        assert.equal(commandCompleteIs(whole('C', p), tag), c.ok && c.value.tag === tag);
      }
    }),
    { numRuns: 2000 },
  );
});
