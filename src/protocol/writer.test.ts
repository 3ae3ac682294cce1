import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Writer, encodeWith } from './writer.js';

void test('back-patches the length of typed and untyped messages', () => {
  const w = new Writer(2);
  w.startMessage('Q').cstring('select 1').endMessage();
  w.startMessage().int32(80877103).endMessage();
  const b = w.flush();
  assert.equal(
    b.toString('hex'),
    '510000000d' + Buffer.from('select 1\0').toString('hex') + '00000008' + '04d2162f',
  );
});

void test('grows past its initial size and is reusable after flush', () => {
  const w = new Writer(4);
  w.bytes(Buffer.alloc(5000, 1));
  assert.equal(w.flush().length, 5000);
  w.byte(7);
  assert.deepEqual([...w.flush()], [7]);
});

void test('flush returns a copy that later writes do not alter', () => {
  const w = new Writer();
  w.string('abc');
  const a = w.flush();
  w.string('xyz');
  w.flush();
  assert.equal(a.toString(), 'abc');
});

void test('misuse is a programming error (throws)', () => {
  const w = new Writer();
  assert.throws(() => w.endMessage());
  w.startMessage('X');
  assert.throws(() => w.startMessage('X'));
  assert.throws(() => w.flush());
  w.reset();
  assert.equal(w.flush().length, 0);
});

void test('property: any sequence of int16/int32/cstring writes round-trips through the lengths', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.string({ maxLength: 10 }).map((s) => s.replaceAll('\0', '')),
        { maxLength: 10 },
      ),
      (strings) => {
        const b = encodeWith((w) => {
          w.startMessage('T');
          for (const s of strings) w.cstring(s);
          w.endMessage();
        });
        assert.equal(b.readInt32BE(1), b.length - 1);
        const body = b.subarray(5).toString('utf8');
        assert.equal(body, strings.map((s) => s + '\0').join(''));
      },
    ),
  );
});
