/**
 * A reusable, growing output buffer for building protocol messages, after pg-protocol's Writer:
 * `startMessage` reserves the type byte and a 4-byte length, the body is appended, and
 * `endMessage` back-patches the length once it is known, so no message is measured twice.
 * Several messages can be appended before one `flush`, which lets the proxy answer with a single
 * socket write (e.g. AuthenticationOk + ParameterStatus* + BackendKeyData + ReadyForQuery).
 */

import { encodeText, hasRawBytes } from './sql-text.js';

const DEFAULT_SIZE = 1024;
/** After a flush, a buffer that grew past this is dropped so one huge message is not kept alive. */
const SHRINK_ABOVE = 1024 * 1024;

export class Writer {
  private buf: Buffer;
  private offset = 0;
  /** Offset of the length field of the message being written, or -1. */
  private lengthAt = -1;

  constructor(private readonly initialSize = DEFAULT_SIZE) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  get length(): number {
    return this.offset;
  }

  private ensure(n: number): void {
    const needed = this.offset + n;
    if (needed <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < needed) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.offset);
    this.buf = next;
  }

  /** Begins a message: the type byte (omit for startup-phase packets) and a length placeholder. */
  startMessage(type?: string): this {
    if (this.lengthAt !== -1) throw new Error('Writer: startMessage inside an open message');
    if (type !== undefined) this.byte(type.charCodeAt(0));
    this.lengthAt = this.offset;
    return this.int32(0);
  }

  /** Ends the open message by writing its length (which counts itself, not the type byte). */
  endMessage(): this {
    if (this.lengthAt === -1) throw new Error('Writer: endMessage without startMessage');
    this.buf.writeInt32BE(this.offset - this.lengthAt, this.lengthAt);
    this.lengthAt = -1;
    return this;
  }

  byte(v: number): this {
    this.ensure(1);
    this.buf[this.offset++] = v & 0xff;
    return this;
  }

  int16(v: number): this {
    this.ensure(2);
    this.buf.writeInt16BE(v, this.offset);
    this.offset += 2;
    return this;
  }

  uint16(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.offset);
    this.offset += 2;
    return this;
  }

  int32(v: number): this {
    this.ensure(4);
    this.buf.writeInt32BE(v, this.offset);
    this.offset += 4;
    return this;
  }

  uint32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.offset);
    this.offset += 4;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.offset);
    this.offset += b.length;
    return this;
  }

  /** UTF-8 text without terminator (raw bytes from `decodeText` written back as they came). */
  string(s: string): this {
    if (hasRawBytes(s)) return this.bytes(encodeText(s));
    const n = Buffer.byteLength(s, 'utf8');
    this.ensure(n);
    this.buf.write(s, this.offset, 'utf8');
    this.offset += n;
    return this;
  }

  /** UTF-8 text followed by NUL. The caller guarantees `s` has no NUL (protocol strings cannot). */
  cstring(s: string): this {
    return this.string(s).byte(0);
  }

  /** Returns a copy of everything written since the last flush and resets for reuse. */
  flush(): Buffer {
    if (this.lengthAt !== -1) throw new Error('Writer: flush inside an open message');
    const out = Buffer.allocUnsafe(this.offset);
    this.buf.copy(out, 0, 0, this.offset);
    this.offset = 0;
    if (this.buf.length > SHRINK_ABOVE) this.buf = Buffer.allocUnsafe(this.initialSize);
    return out;
  }

  /** Discards anything written (e.g. after an encoder rejected its input half-way). */
  reset(): void {
    this.offset = 0;
    this.lengthAt = -1;
  }
}

const shared = new Writer();

/**
 * Runs `write` against a shared writer and returns the bytes. Safe because encoding is
 * synchronous: no other caller can interleave on the single JS thread.
 */
export function encodeWith(write: (w: Writer) => void): Buffer {
  shared.reset();
  write(shared);
  return shared.flush();
}
