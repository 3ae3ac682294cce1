import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TypedMessage } from '../../protocol/framer.js';
import type { TypedFrame } from '../../protocol/framer.js';
import { bindParamFormat, decodeBind, encodeFrontendMessage } from '../../protocol/frontend-messages.js';
import type { ColumnValue } from '../../sharding/types.js';
import { bindParams } from './shard-target.js';

/** What bindParams answered when it decoded the whole Bind with decodeBind (the reference). */
function viaDecodeBind(f: TypedFrame): (ColumnValue | null)[] | null {
  const b = decodeBind(f.payload);
  if (!b.ok) return null;
  return b.value.params.map((p, i) =>
    p === null
      ? null
      : bindParamFormat(b.value, i) === 1
        ? { format: 'binary', bytes: p }
        : { format: 'text', text: p.toString('utf8') },
  );
}

/** The message inside a bigger chunk (frames point into the buffer a read returned). */
function framed(msg: Buffer, before: number, after: number): TypedFrame {
  const chunk = Buffer.concat([Buffer.alloc(before, 0x42), msg, Buffer.alloc(after, 0)]);
  return new TypedMessage('B', chunk, before, before + msg.length);
}

const bytes = fc.uint8Array({ maxLength: 12 }).map((a) => Buffer.from(a));
const bind = fc.record({
  portal: fc.constantFrom('', 'p1', 'é'),
  statement: fc.constantFrom('', 's1', 'pgscale_1'),
  paramFormats: fc.array(fc.constantFrom(0, 1, 2, -1), { maxLength: 4 }),
  params: fc.array(fc.option(bytes, { nil: null }), { maxLength: 4 }),
  resultFormats: fc.array(fc.constantFrom(0, 1), { maxLength: 3 }),
});

test('property: bindParams reads what decodeBind reads, and refuses what it refuses', () => {
  fc.assert(
    fc.property(
      bind,
      fc.nat(8),
      fc.nat(8),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
      fc.integer({ min: -3, max: 3 }),
      (m, before, after, flips, cut) => {
        const msg = encodeFrontendMessage({ name: 'Bind', ...m });
        // As sent; with bytes flipped after the header (counts, lengths); cut short or with
        // trailing bytes (the length field then says so, as a client's framing would).
        const variants = [msg];
        const flipped = Buffer.from(msg);
        for (const [at, v] of flips) if (flipped.length > 5) flipped[5 + (at % (flipped.length - 5))] = v;
        variants.push(flipped);
        if (cut !== 0 && msg.length + cut > 5) {
          const resized = Buffer.concat([msg, Buffer.alloc(Math.max(0, cut), 7)]).subarray(
            0,
            msg.length + cut,
          );
          resized.writeInt32BE(resized.length - 1, 1);
          variants.push(resized);
        }
        for (const v of variants) {
          const f = framed(v, before, after);
          assert.deepEqual(bindParams(f), viaDecodeBind(f));
        }
      },
    ),
    { numRuns: 3000 },
  );
});

test('a piece of a streamed Bind is not read', () => {
  const msg = encodeFrontendMessage({
    name: 'Bind',
    portal: '',
    statement: '',
    paramFormats: [],
    params: [Buffer.from('5')],
    resultFormats: [],
  });
  const piece: TypedFrame = {
    ...TypedMessage.of(msg),
    kind: 'typed',
    partial: true,
    chunk: msg,
    start: 0,
    end: msg.length,
    type: 'B',
    bytes: msg,
    payload: msg.subarray(5),
  };
  assert.equal(bindParams(piece), null);
  assert.deepEqual(bindParams(TypedMessage.of(msg)), [{ format: 'text', text: '5' }]);
});
