import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { OutputBatch } from './batch.js';

/** A socket that keeps what is written to it. */
function sink(): { socket: Socket; written: () => string } {
  const out: Buffer[] = [];
  const socket = {
    destroyed: false,
    writable: true,
    write: (b: Buffer) => (out.push(Buffer.from(b)), true),
    cork: () => {},
    uncork: () => {},
  } as unknown as Socket;
  return { socket, written: () => Buffer.concat(out).toString('latin1') };
}

describe('OutputBatch: mark and rollback', () => {
  const chunk = Buffer.from('abcdefghijklmnopqrstuvwxyz', 'latin1');

  // Every way the batch can stand at mark() (nothing, a run, finished parts) and grow after it
  // (the run extended, a new run in the same chunk, another buffer): rollback leaves exactly the
  // bytes queued at mark().
  const before: [string, (b: OutputBatch) => void][] = [
    ['empty', () => {}],
    ['one run', (b) => b.addRange(chunk, 0, 3)],
    ['parts', (b) => (b.addRange(chunk, 0, 3), b.add(Buffer.from('XY')), b.addRange(chunk, 5, 7))],
  ];
  const after: [string, (b: OutputBatch) => void][] = [
    ['nothing', () => {}],
    ['the run extended', (b) => b.addRange(chunk, 7, 9)],
    ['a gap in the chunk', (b) => b.addRange(chunk, 12, 14)],
    ['other buffers', (b) => (b.add(Buffer.from('123')), b.addRange(chunk, 20, 22), b.add(Buffer.from('4')))],
  ];
  for (const [bName, b] of before)
    for (const [aName, a] of after)
      test(`${bName} at the mark, ${aName} after it`, () => {
        const reference = new OutputBatch();
        b(reference);
        const ref = sink();
        reference.flush(ref.socket);

        const batch = new OutputBatch();
        b(batch);
        batch.mark();
        a(batch);
        assert.equal(batch.canRollback, true);
        assert.equal(batch.rollback(), true);
        assert.equal(batch.canRollback, false);
        const got = sink();
        batch.flush(got.socket);
        assert.equal(got.written(), ref.written());
      });

  test('a write or a clear ends the mark: nothing written can be taken back', () => {
    const b = new OutputBatch();
    b.mark();
    b.addRange(chunk, 0, 4);
    b.flush(sink().socket);
    assert.equal(b.canRollback, false);
    assert.equal(b.rollback(), false);
    b.mark();
    b.clear();
    assert.equal(b.rollback(), false);
    b.mark();
    b.flush(sink().socket); // even an empty batch's write ends it
    assert.equal(b.canRollback, false);
  });

  test('what is added after a rollback is queued as usual', () => {
    const b = new OutputBatch();
    b.addRange(chunk, 0, 2);
    b.mark();
    b.addRange(chunk, 2, 6);
    b.rollback();
    b.addRange(chunk, 2, 4);
    const s = sink();
    b.flush(s.socket);
    assert.equal(s.written(), 'abcd');
  });
});
