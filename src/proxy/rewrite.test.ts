import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildErrorResponse, decodeErrorResponse } from '../protocol/error-response.js';
import { renameBind, rewriteErrorFields } from './rewrite.js';
import fc from 'fast-check';

function fields(bytes: Buffer): Record<string, string> {
  const d = decodeErrorResponse(bytes.subarray(5));
  assert.ok(d.ok);
  return Object.fromEntries(d.value.fields.map((f) => [f.code, f.value]));
}

/** An ErrorResponse as the server sends one, with a position field. */
function serverError(message: string, position?: number): Buffer {
  const base = buildErrorResponse('ERROR', '42P05', message);
  if (position === undefined) return base;
  const payload = Buffer.concat([
    base.subarray(5, base.length - 1),
    Buffer.from(`P${position}\0`, 'latin1'),
    Buffer.from([0]),
  ]);
  const head = Buffer.from([0x45, 0, 0, 0, 0]);
  head.writeInt32BE(payload.length + 4, 1);
  return Buffer.concat([head, payload]);
}

void test("rewriteErrorFields: server names become the client's, positions are mapped, the rest is kept", () => {
  const e = serverError('prepared statement "pgscale_s_abc" already exists', 40);
  const out = rewriteErrorFields('E', e.subarray(5), new Map([['pgscale_s_abc', 'q1']]), (p) => p - 10);
  assert.ok(out);
  const f = fields(out);
  assert.equal(f.M, 'prepared statement "q1" already exists');
  assert.equal(f.P, '30');
  assert.equal(f.C, '42P05');
  assert.equal(f.S, 'ERROR');
});

void test('rewriteErrorFields: null when nothing changes; non-UTF-8 bytes pass as they came', () => {
  assert.equal(
    rewriteErrorFields('E', serverError('division by zero', 3).subarray(5), new Map(), (p) => p),
    null,
  );
  const latin1 = Buffer.from('M\xe9 pgscale_s_x\0C22P02\0\0', 'latin1');
  const out = rewriteErrorFields('E', latin1, new Map([['pgscale_s_x', 'foo']]), null);
  assert.ok(out);
  assert.deepEqual(out.subarray(5), Buffer.from('M\xe9 foo\0C22P02\0\0', 'latin1'));
});

/** What renameBind did before it wrote into one buffer: the reference it must agree with. */
function renameBindByParts(payload: Buffer, statement: string): Buffer {
  const end = (from: number) => {
    const i = payload.indexOf(0, from);
    return i < 0 ? payload.length : i;
  };
  const pEnd = end(0);
  const sEnd = end(pEnd + 1);
  const body = Buffer.concat([
    payload.subarray(0, pEnd + 1),
    Buffer.from(statement + '\0', 'utf8'),
    payload.subarray(sEnd + 1),
  ]);
  const head = Buffer.alloc(5);
  head.write('B', 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

void test('renameBind: the same bytes as renaming by parts, for any payload and any place in a chunk', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
      fc.string({ maxLength: 12 }).map((s) => s.replaceAll('\0', '')),
      fc.nat({ max: 7 }),
      fc.nat({ max: 7 }),
      (payload, name, before, after) => {
        const chunk = Buffer.concat([Buffer.alloc(before, 0x41), payload, Buffer.alloc(after, 0x42)]);
        const want = renameBindByParts(payload, name);
        assert.deepEqual(renameBind(payload, name), want);
        assert.deepEqual(renameBind(chunk, name, before, before + payload.length), want);
      },
    ),
    { numRuns: 2000 },
  );
});
