import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { FrontendMessage } from './frontend-messages.js';
import {
  bindParamFormat,
  decodeBind,
  decodeFrontendMessage,
  decodeParse,
  decodeQuery,
  encodeFrontendMessage,
} from './frontend-messages.js';

const text = fc.string({ unit: 'grapheme', maxLength: 20 }).map((s) => s.replaceAll('\0', ''));
const bytes = fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a));
const int16 = fc.integer({ min: -32768, max: 32767 });
const target = fc.constantFrom('statement' as const, 'portal' as const);

const frontendMessage: fc.Arbitrary<FrontendMessage> = fc
  .oneof(
    text.map((query) => ({ name: 'Query' as const, query })),
    fc.record({
      name: fc.constant('Parse' as const),
      statement: text,
      query: text,
      paramTypes: fc.array(fc.nat({ max: 0xffffffff }), { maxLength: 5 }),
    }),
    fc
      .record({
        name: fc.constant('Bind' as const),
        portal: text,
        statement: text,
        params: fc.array(fc.option(bytes, { nil: null }), { maxLength: 5 }),
        resultFormats: fc.array(int16, { maxLength: 4 }),
        formatMode: fc.integer({ min: 0, max: 2 }),
        format: fc.constantFrom(0, 1),
      })
      .map(({ formatMode, format, ...b }) => ({
        ...b,
        paramFormats: formatMode === 0 ? [] : formatMode === 1 ? [format] : b.params.map(() => format),
      })),
    fc.record({ name: fc.constantFrom('Describe' as const, 'Close' as const), target, targetName: text }),
    fc.record({
      name: fc.constant('Execute' as const),
      portal: text,
      maxRows: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    }),
    fc.constantFrom(
      { name: 'Sync' as const },
      { name: 'Flush' as const },
      { name: 'Terminate' as const },
      { name: 'CopyDone' as const },
    ),
    bytes.map((data) => ({ name: 'CopyData' as const, data })),
    text.map((message) => ({ name: 'CopyFail' as const, message })),
    bytes.map((data) => ({ name: 'AuthResponse' as const, data })),
  )
  .map((m) => ({ ...m })); // fc.record builds null-prototype objects; decoders build plain ones

function split(b: Buffer): { type: string; payload: Buffer } {
  assert.equal(b.readUInt32BE(1), b.length - 1, 'length field counts itself, not the type byte');
  return { type: String.fromCharCode(b[0]!), payload: b.subarray(5) };
}

void test('property: decode(encode(m)) deep-equals m for every frontend message', () => {
  fc.assert(
    fc.property(frontendMessage, (m) => {
      const { type, payload } = split(encodeFrontendMessage(m));
      const r = decodeFrontendMessage(type, payload);
      assert.equal(r.ok, true);
      if (r.ok) assert.deepEqual(r.value, m);
    }),
    { numRuns: 1000 },
  );
});

void test('property: random payloads under every type byte decode to values, never throw', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...'BCdcfDEHFPpQSXzA'.split('')),
      fc.uint8Array({ maxLength: 64 }),
      (type, data) => {
        const r = decodeFrontendMessage(type, Buffer.from(data));
        if (!r.ok) assert.match(r.sqlstate, /^(08P01|22021)$/);
      },
    ),
    { numRuns: 3000 },
  );
});

void test('known Query bytes', () => {
  const b = encodeFrontendMessage({ name: 'Query', query: 'select 1' });
  assert.equal(b.toString('hex'), '51' + '0000000d' + Buffer.from('select 1\0').toString('hex'));
});

void test('Query without terminator or with trailing bytes is malformed', () => {
  assert.equal(decodeQuery(Buffer.from('select 1')).ok, false);
  assert.equal(decodeQuery(Buffer.from('select 1\0x')).ok, false);
});

void test('SQL that is not UTF-8 (LATIN1 and friends) decodes losslessly, not as a lossy string', () => {
  // The server judges the encoding (a UTF8 client gets its ERROR 22021, a LATIN1 client its data).
  const r = decodeQuery(Buffer.from("SELECT 'caf\xe9'\0", 'latin1'));
  assert.equal(r.ok, true);
  if (r.ok) {
    assert.equal(r.value.query.length, 13);
    assert.ok(!r.value.query.includes('\uFFFD'));
    assert.deepEqual(encodeFrontendMessage(r.value).subarray(5), Buffer.from("SELECT 'caf\xe9'\0", 'latin1'));
  }
  const p = decodeParse(Buffer.from('st\xe9\0SELECT 1\0\0\0', 'latin1'));
  assert.ok(p.ok && p.value.statement.length === 3);
});

void test('Parse with a claimed parameter count larger than the message is malformed', () => {
  const b = Buffer.from('s\0q\0\xff\xff', 'latin1');
  assert.equal(decodeParse(b).ok, false);
});

void test('Bind rejects negative lengths other than -1 and mismatched format counts', () => {
  const base = { name: 'Bind' as const, portal: '', statement: '', resultFormats: [] };
  const good = encodeFrontendMessage({ ...base, paramFormats: [1, 0], params: [Buffer.from('a'), null] });
  assert.equal(decodeBind(good.subarray(5)).ok, true);
  const bad = Buffer.from(good);
  // portal '\0', stmt '\0', nfmt 2, fmts, nparams 2, then len of param 1 at offset 2+2+4+2 = 10
  bad.writeInt32BE(-2, 5 + 10);
  assert.equal(decodeBind(bad.subarray(5)).ok, false);
  const mismatch = encodeFrontendMessage({ ...base, paramFormats: [1, 0], params: [null, null, null] });
  assert.equal(decodeBind(mismatch.subarray(5)).ok, false);
});

void test('bindParamFormat applies the 0/1/n rule', () => {
  const b = { name: 'Bind' as const, portal: '', statement: '', params: [null, null], resultFormats: [] };
  assert.equal(bindParamFormat({ ...b, paramFormats: [] }, 1), 0);
  assert.equal(bindParamFormat({ ...b, paramFormats: [1] }, 1), 1);
  assert.equal(bindParamFormat({ ...b, paramFormats: [0, 1] }, 1), 1);
});

void test('Bind values are views into the frame (no copy)', () => {
  const b = encodeFrontendMessage({
    name: 'Bind',
    portal: '',
    statement: '',
    paramFormats: [],
    params: [Buffer.from('hello')],
    resultFormats: [],
  });
  const r = decodeBind(b.subarray(5));
  assert.ok(r.ok);
  assert.equal(r.value.params[0]?.buffer, b.buffer);
});

void test('Describe with a bad subtype, Sync with a body, unknown type: 08P01', () => {
  for (const [type, payload] of [
    ['D', Buffer.from('X\0')],
    ['S', Buffer.from([1])],
    ['z', Buffer.alloc(0)],
    ['F', Buffer.alloc(0)],
  ] as const) {
    const r = decodeFrontendMessage(type, payload);
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.sqlstate, '08P01');
  }
});
