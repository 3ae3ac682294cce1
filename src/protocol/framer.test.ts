import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Frame, PushResult, TypedFrame } from './framer.js';
import { Framer } from './framer.js';
import { encodeCancelRequest, encodeSSLRequest, encodeStartupMessage } from './startup-messages.js';
import { encodeFrontendMessage } from './frontend-messages.js';
import { encodeBackendMessage } from './backend-messages.js';
import { PQ_LARGE_MESSAGE_LIMIT, PROTOCOL_3_0 } from './limits.js';

function show(frames: readonly Frame[]): unknown[] {
  return frames.map((f) =>
    f.kind === 'typed'
      ? { kind: f.kind, type: f.type, payload: f.payload.toString('hex'), bytes: f.bytes.toString('hex') }
      : { kind: f.kind, code: f.code, payload: f.payload.toString('hex'), bytes: f.bytes.toString('hex') },
  );
}

function feed(framer: Framer, chunks: readonly Buffer[]): { frames: Frame[]; last: PushResult } {
  const frames: Frame[] = [];
  let last: PushResult = { ok: true, frames: [] };
  for (const c of chunks) {
    last = framer.push(c);
    frames.push(...last.frames);
    if (!last.ok) break;
  }
  return { frames, last };
}

const frontendStream = Buffer.concat([
  encodeStartupMessage({
    version: PROTOCOL_3_0,
    params: new Map([
      ['user', 'alice'],
      ['database', 'db'],
    ]),
  }),
  encodeFrontendMessage({ name: 'Query', query: 'select 1' }),
  encodeFrontendMessage({ name: 'Parse', statement: 's1', query: 'select $1', paramTypes: [23] }),
  encodeFrontendMessage({
    name: 'Bind',
    portal: '',
    statement: 's1',
    paramFormats: [0],
    params: [Buffer.from('42'), null],
    resultFormats: [],
  }),
  encodeFrontendMessage({ name: 'Execute', portal: '', maxRows: 0 }),
  encodeFrontendMessage({ name: 'Sync' }),
  encodeFrontendMessage({ name: 'Terminate' }),
]);

const backendStream = Buffer.concat([
  encodeBackendMessage({ name: 'AuthenticationOk' }),
  encodeBackendMessage({ name: 'ParameterStatus', parameter: 'server_version', value: '18.0' }),
  encodeBackendMessage({ name: 'BackendKeyData', processId: 7, secretKey: Buffer.alloc(32, 1) }),
  encodeBackendMessage({ name: 'ReadyForQuery', status: 'I' }),
  encodeBackendMessage({ name: 'DataRow', values: [Buffer.from('x'), null] }),
  encodeBackendMessage({ name: 'CommandComplete', tag: 'SELECT 1' }),
]);

function whole(side: 'frontend' | 'backend', stream: Buffer): Frame[] {
  const r = (side === 'frontend' ? Framer.frontend() : Framer.backend()).push(stream);
  assert.equal(r.ok, true);
  return r.frames;
}

for (const [side, stream, count] of [
  ['frontend', frontendStream, 7],
  ['backend', backendStream, 6],
] as const) {
  void test(`${side}: one coalesced chunk yields every message`, () => {
    const frames = whole(side, stream);
    assert.equal(frames.length, count);
    assert.equal(Buffer.concat(frames.map((f) => f.bytes)).equals(stream), true);
  });

  void test(`${side}: splitting at every offset gives identical frames`, () => {
    const expected = show(whole(side, stream));
    for (let i = 0; i <= stream.length; i++) {
      const framer = side === 'frontend' ? Framer.frontend() : Framer.backend();
      const { frames, last } = feed(framer, [stream.subarray(0, i), stream.subarray(i)]);
      assert.equal(last.ok, true);
      assert.deepEqual(show(frames), expected, `split at ${i}`);
      assert.equal(framer.bufferedBytes, 0);
    }
  });

  void test(`${side}: 1-byte chunks give identical frames`, () => {
    const framer = side === 'frontend' ? Framer.frontend() : Framer.backend();
    const chunks = [...stream].map((b) => Buffer.from([b]));
    const { frames, last } = feed(framer, chunks);
    assert.equal(last.ok, true);
    assert.deepEqual(show(frames), show(whole(side, stream)));
  });
}

void test('many messages coalesced into one chunk', () => {
  const one = encodeFrontendMessage({ name: 'Sync' });
  const framer = Framer.frontend();
  framer.push(encodeStartupMessage({ version: PROTOCOL_3_0, params: new Map([['user', 'u']]) }));
  const r = framer.push(Buffer.concat(Array.from({ length: 10000 }, () => one)));
  assert.equal(r.ok, true);
  assert.equal(r.frames.length, 10000);
  assert.ok(r.frames.every((f) => f.kind === 'typed' && f.type === 'S' && f.payload.length === 0));
});

void test('a frame inside one chunk is a view of it (zero copy)', () => {
  const chunk = encodeBackendMessage({ name: 'CommandComplete', tag: 'OK' });
  const r = Framer.backend().push(chunk);
  assert.equal(r.frames[0]?.bytes.buffer, chunk.buffer);
});

function typedHeader(type: string, length: number): Buffer {
  const b = Buffer.alloc(5);
  b.write(type, 0, 'latin1');
  b.writeUInt32BE(length >>> 0, 1);
  return b;
}

for (const length of [0, 1, 2, 3, 0x7fffffff + 1, 0xffffffff]) {
  void test(`typed length ${length} is a 08P01 value and nothing is kept`, () => {
    const framer = Framer.backend({ maxMessageLength: 0x7fffffff });
    const r = framer.push(typedHeader('D', length));
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.sqlstate, '08P01');
    assert.equal(framer.bufferedBytes, 0);
    assert.equal(framer.phase, 'failed');
  });
}

void test('length 0x7FFFFFFF is rejected by the default limits', () => {
  for (const framer of [Framer.backend(), withStartup(Framer.frontend())]) {
    const r = framer.push(typedHeader('D', 0x7fffffff));
    assert.equal(r.ok, false);
  }
});

function withStartup(f: Framer): Framer {
  const r = f.push(encodeStartupMessage({ version: PROTOCOL_3_0, params: new Map([['user', 'u']]) }));
  assert.equal(r.ok, true);
  return f;
}

void test('a huge claimed length that is within limits is not allocated up front', () => {
  const framer = withStartup(Framer.frontend());
  framer.setMaxMessageLength(PQ_LARGE_MESSAGE_LIMIT);
  const before = process.memoryUsage().arrayBuffers;
  const r = framer.push(Buffer.concat([typedHeader('Q', PQ_LARGE_MESSAGE_LIMIT), Buffer.alloc(100)]));
  assert.equal(r.ok, true);
  assert.equal(r.frames.length, 0);
  assert.equal(framer.bufferedBytes, 105);
  assert.ok(
    process.memoryUsage().arrayBuffers - before < 1024 * 1024,
    'framer must not allocate by claimed length',
  );
});

void test('pre-auth limit is 10000 and can be raised after authentication', () => {
  const big = encodeFrontendMessage({ name: 'Query', query: 'x'.repeat(10000) });
  assert.equal(withStartup(Framer.frontend()).push(big).ok, false);
  const f = withStartup(Framer.frontend());
  f.setMaxMessageLength(PQ_LARGE_MESSAGE_LIMIT);
  const r = f.push(big);
  assert.equal(r.ok, true);
  assert.equal(r.frames.length, 1);
});

void test('startup packet length < 8 or > 10000 is rejected before buffering', () => {
  for (const length of [0, 4, 7, 10001, 0x7fffffff, 0xffffffff]) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(length);
    const framer = Framer.frontend();
    const r = framer.push(b);
    assert.equal(r.ok, false, `length ${length}`);
    assert.equal(framer.bufferedBytes, 0);
  }
});

void test('unknown type byte fails at once, before any length arrives', () => {
  const framer = withStartup(Framer.frontend());
  const r = framer.push(Buffer.from('z'));
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.message, /invalid frontend message type/);
  // Backend 'D' is DataRow, but the frontend also knows 'D' (Describe); '1' is backend only.
  assert.equal(withStartup(Framer.frontend()).push(Buffer.from('1')).ok, false);
  assert.equal(Framer.backend({ knownTypesOnly: false }).push(Buffer.from('z')).ok, true);
});

void test('a failed framer stays failed', () => {
  const framer = Framer.backend();
  assert.equal(framer.push(typedHeader('D', 2)).ok, false);
  const r = framer.push(encodeBackendMessage({ name: 'NoData' }));
  assert.equal(r.ok, false);
  assert.equal(r.frames.length, 0);
});

void test('frames before a framing error are still returned', () => {
  const framer = Framer.backend();
  const r = framer.push(Buffer.concat([encodeBackendMessage({ name: 'NoData' }), typedHeader('D', 1)]));
  assert.equal(r.ok, false);
  assert.equal(r.frames.length, 1);
});

void test('SSLRequest pauses framing; bytes sent after it are visible (CVE-2021-23214)', () => {
  const startup = encodeStartupMessage({ version: PROTOCOL_3_0, params: new Map([['user', 'u']]) });
  const framer = Framer.frontend();
  const r = framer.push(Buffer.concat([encodeSSLRequest(), startup]));
  assert.equal(r.ok, true);
  assert.equal(r.frames.length, 1);
  assert.equal(framer.phase, 'negotiating');
  assert.equal(framer.bufferedBytes, startup.length);
  // After answering 'N' the plaintext startup continues.
  const resumed = framer.resumeStartup();
  assert.equal(resumed.frames.length, 1);
  assert.equal(resumed.frames[0]?.kind, 'startup');
  assert.equal(framer.phase, 'typed');
});

void test('negotiating phase holds at most one startup packet worth of bytes', () => {
  const framer = Framer.frontend();
  framer.push(encodeSSLRequest());
  assert.equal(framer.push(Buffer.alloc(20000)).ok, false);
});

void test('CancelRequest ends the stream; further bytes are an error', () => {
  const framer = Framer.frontend();
  const r = framer.push(encodeCancelRequest({ processId: 1, secretKey: Buffer.alloc(4) }));
  assert.equal(r.ok, true);
  assert.equal(framer.phase, 'cancelled');
  assert.equal(framer.push(Buffer.from([0])).ok, false);
});

void test('a 1 MB message in 1-byte chunks is framed in linear time', () => {
  const payload = Buffer.alloc(1024 * 1024, 0x61);
  const msg = encodeBackendMessage({ name: 'CopyData', data: payload });
  const framer = Framer.backend();
  const started = performance.now();
  let frames = 0;
  for (let i = 0; i < msg.length; i++) frames += framer.push(msg.subarray(i, i + 1)).frames.length;
  const elapsed = performance.now() - started;
  assert.equal(frames, 1);
  assert.ok(elapsed < 5000, `took ${elapsed} ms`);
});

void test('property: random bytes in random chunks never throw, only yield 08P01 values', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }),
      fc.boolean(),
      fc.integer({ min: 4, max: 20000 }),
      fc.boolean(),
      (chunks, frontend, limit, knownTypesOnly) => {
        const options = { maxMessageLength: limit, knownTypesOnly };
        const framer = frontend ? Framer.frontend(options) : Framer.backend(options);
        let failed = false;
        for (const c of chunks) {
          const r = framer.push(Buffer.from(c));
          if (!r.ok) {
            assert.equal(r.sqlstate, '08P01');
            failed = true;
          } else {
            assert.equal(failed, false, 'a failed framer must stay failed');
          }
          if (framer.phase === 'negotiating') framer.resumeStartup();
        }
        assert.ok(framer.bufferedBytes <= chunks.reduce((n, c) => n + c.length, 0));
      },
    ),
    { numRuns: 2000 },
  );
});

void test('property: any split of a valid backend stream reproduces the same frames', () => {
  const msg = fc.oneof(
    fc
      .string({ maxLength: 30 })
      .map((tag) => encodeBackendMessage({ name: 'CommandComplete', tag: tag.replaceAll('\0', '') })),
    fc
      .uint8Array({ maxLength: 300 })
      .map((d) => encodeBackendMessage({ name: 'CopyData', data: Buffer.from(d) })),
    fc.constant(encodeBackendMessage({ name: 'NoData' })),
  );
  fc.assert(
    fc.property(
      fc.array(msg, { minLength: 1, maxLength: 10 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (msgs, cuts) => {
        const stream = Buffer.concat(msgs);
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let prev = 0;
        for (const p of points) {
          chunks.push(stream.subarray(prev, p));
          prev = p;
        }
        chunks.push(stream.subarray(prev));
        const { frames, last } = feed(Framer.backend(), chunks);
        assert.equal(last.ok, true);
        assert.deepEqual(
          frames.map((f) => f.bytes.toString('hex')),
          msgs.map((m) => m.toString('hex')),
        );
      },
    ),
  );
});

void test('pendingMessageLength names the size of the message being collected, once its header is in', () => {
  const f = Framer.backend();
  assert.equal(f.pendingMessageLength, 0);
  const msg = encodeBackendMessage({ name: 'CopyData', data: Buffer.alloc(1000, 7) });
  f.push(msg.subarray(0, 3));
  assert.equal(f.pendingMessageLength, 0, 'the length field is not complete yet');
  f.push(msg.subarray(3, 10));
  assert.equal(f.pendingMessageLength, msg.length);
  assert.equal(f.bufferedBytes, 10);
  const r = f.push(msg.subarray(10));
  assert.equal(r.frames.length, 1);
  assert.equal(f.pendingMessageLength, 0, 'nothing is being collected after the message completes');
  // The next message's header in the same chunk as the end of the previous one.
  const two = Buffer.concat([msg, msg]);
  f.push(two.subarray(0, msg.length + 5));
  assert.equal(f.pendingMessageLength, msg.length);
  const fe = Framer.frontend();
  fe.push(encodeStartupMessage({ version: PROTOCOL_3_0, params: new Map([['user', 'u']]) }).subarray(0, 6));
  assert.equal(fe.pendingMessageLength, 0, 'startup packets are not counted (they are capped at 10000)');
});

void test('collectPending gathers a message into one buffer of its length; framing is unchanged', () => {
  const big = encodeBackendMessage({ name: 'CopyData', data: Buffer.alloc(300_000, 'ab') });
  const small = encodeBackendMessage({ name: 'CommandComplete', tag: 'COPY 1' });
  const stream = Buffer.concat([small, big, small, big, small]);
  for (const size of [1, 7, 4096, 65536, 299_999]) {
    const f = Framer.backend();
    const frames: Frame[] = [];
    for (let at = 0; at < stream.length; at += size) {
      const r = f.push(stream.subarray(at, at + size));
      assert.equal(r.ok, true);
      frames.push(...r.frames);
      if (f.pendingMessageLength > 1000) {
        f.collectPending();
        f.collectPending(); // twice is harmless
        assert.ok(f.bufferedBytes < f.pendingMessageLength);
      }
    }
    assert.deepEqual(
      frames.map((x) => x.bytes.toString('hex')),
      [small, big, small, big, small].map((m) => m.toString('hex')),
      `chunks of ${size}`,
    );
    const whole = frames.filter((x) => x.bytes.length === big.length);
    for (const w of whole) {
      assert.equal(w.bytes.byteOffset, 0, 'its own buffer');
      assert.equal(w.bytes.buffer.byteLength >= big.length, true);
      assert.equal((w as TypedFrame).type, 'd');
      assert.deepEqual(w.payload, big.subarray(5));
    }
    assert.equal(f.bufferedBytes, 0);
  }
  // Nothing being collected: a no-op.
  const idle = Framer.backend();
  idle.collectPending();
  assert.equal(idle.push(small).frames.length, 1);
});

void test('streamed types over streamAbove come out as pieces that add up to the message; others are whole', () => {
  const row = encodeBackendMessage({ name: 'DataRow', values: [Buffer.alloc(200_000, 'r'), null] });
  const copy = encodeBackendMessage({ name: 'CopyData', data: Buffer.alloc(150_000, 'c') });
  const notice = encodeBackendMessage({ name: 'CommandComplete', tag: 'SELECT 1' });
  const bigError = encodeBackendMessage({ name: 'CopyInResponse', format: 0, columnFormats: [] });
  const stream = Buffer.concat([notice, row, notice, copy, bigError, row]);
  for (const size of [1, 3, 5, 6, 4096, 65536, 100_003, stream.length]) {
    const f = Framer.backend({ streamAbove: 1000, streamTypes: 'Dd' });
    const frames: TypedFrame[] = [];
    for (let at = 0; at < stream.length; at += size) {
      const r = f.push(stream.subarray(at, at + size));
      assert.equal(r.ok, true);
      frames.push(...(r.frames as TypedFrame[]));
      // Only the small messages are ever held whole; of a streamed one, nothing.
      assert.ok(f.bufferedBytes <= Math.max(size, 100), `held ${f.bufferedBytes} with chunks of ${size}`);
    }
    // Reassemble: consecutive pieces of one message, in order.
    const out: { type: string; bytes: string; partial: boolean }[] = [];
    for (const fr of frames) {
      const last = out[out.length - 1];
      if (fr.partial && last?.partial && last.bytes.length / 2 < (last.type === 'D' ? row : copy).length)
        last.bytes += fr.bytes.toString('hex');
      else out.push({ type: fr.type, bytes: fr.bytes.toString('hex'), partial: fr.partial === true });
    }
    assert.deepEqual(
      out.map((o) => [o.type, o.bytes, o.partial]),
      [
        ['C', notice.toString('hex'), false],
        ['D', row.toString('hex'), true],
        ['C', notice.toString('hex'), false],
        ['d', copy.toString('hex'), true],
        ['G', bigError.toString('hex'), false],
        ['D', row.toString('hex'), true],
      ],
      `chunks of ${size}`,
    );
  }
  // Small messages of a streamed type are whole frames as before.
  const small = encodeBackendMessage({ name: 'DataRow', values: [Buffer.from('x')] });
  const r = Framer.backend({ streamAbove: 1000, streamTypes: 'Dd' }).push(small);
  assert.equal((r.frames[0] as TypedFrame).partial, false);
  assert.deepEqual(r.frames[0]!.payload, small.subarray(5));
});

test('releaseIfEmpty between chunks changes nothing framed, and keeps a partial message', () => {
  const msgs = [
    encodeFrontendMessage({ name: 'Query', query: 'SELECT 1' }),
    encodeFrontendMessage({ name: 'Sync' }),
    encodeFrontendMessage({ name: 'Query', query: 'SELECT ' + 'x'.repeat(300) }),
  ];
  const stream = Buffer.concat(msgs);
  for (const size of [1, 3, 7, 64, stream.length]) {
    const f = Framer.backend({ knownTypesOnly: false });
    const out: Frame[] = [];
    for (let at = 0; at < stream.length; at += size) {
      const r = f.push(stream.subarray(at, at + size));
      assert.ok(r.ok);
      out.push(...r.frames);
      f.releaseIfEmpty();
    }
    assert.equal(f.bufferedBytes, 0);
    assert.deepEqual(
      out.map((x) => x.bytes.toString('hex')),
      msgs.map((m) => m.toString('hex')),
      `chunks of ${size}`,
    );
  }
});
