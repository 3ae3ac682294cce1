/**
 * A bounds-checked cursor over one message payload. Every read that would run past the end sets a
 * sticky `failed` flag and returns a neutral value instead of throwing, so a decoder can read a
 * whole message straight-line and check `failed` once at the end; garbage from a peer can then
 * never escape as a RangeError. Strings are C strings (NUL-terminated), as everywhere in the
 * protocol (https://www.postgresql.org/docs/current/protocol-message-types.html).
 */

import { isUtf8 } from 'node:buffer';
import { decodeText } from './sql-text.js';

export class Reader {
  private offset = 0;
  /** Set by the first out-of-bounds read; never cleared. */
  failed = false;
  /** Set when a strict string read met bytes that are not valid UTF-8. */
  badEncoding = false;

  constructor(private readonly buf: Buffer) {}

  get remaining(): number {
    return this.buf.length - this.offset;
  }

  get atEnd(): boolean {
    return this.offset === this.buf.length;
  }

  private need(n: number): boolean {
    if (this.failed || n > this.buf.length - this.offset) {
      this.failed = true;
      return false;
    }
    return true;
  }

  byte(): number {
    if (!this.need(1)) return 0;
    return this.buf[this.offset++] ?? 0;
  }

  int16(): number {
    if (!this.need(2)) return 0;
    const v = this.buf.readInt16BE(this.offset);
    this.offset += 2;
    return v;
  }

  uint16(): number {
    if (!this.need(2)) return 0;
    const v = this.buf.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }

  int32(): number {
    if (!this.need(4)) return 0;
    const v = this.buf.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  uint32(): number {
    if (!this.need(4)) return 0;
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  /** `n` bytes as a view into the payload (no copy). */
  bytes(n: number): Buffer {
    if (n < 0 || !this.need(n)) {
      this.failed = true;
      return EMPTY;
    }
    const v = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }

  /** The rest of the payload as a view. */
  rest(): Buffer {
    return this.bytes(this.remaining);
  }

  /** Raw bytes of a C string, without the terminator; fails if no NUL before the end. */
  cstringBytes(): Buffer {
    if (this.failed) return EMPTY;
    const end = this.buf.indexOf(0, this.offset);
    if (end < 0) {
      this.failed = true;
      return EMPTY;
    }
    const v = this.buf.subarray(this.offset, end);
    this.offset = end + 1;
    return v;
  }

  /** A C string that must be valid UTF-8 (else `badEncoding` is set and '' returned). */
  cstring(): string {
    const b = this.cstringBytes();
    if (!isUtf8(b)) {
      this.badEncoding = true;
      return '';
    }
    return b.toString('utf8');
  }

  /**
   * A C string in the client's encoding, whatever it is: UTF-8 when valid, else one character
   * per byte (see sql-text.ts); `encodeText` gives the same bytes back. For SQL and names.
   */
  cstringText(): string {
    return decodeText(this.cstringBytes());
  }

  /** A C string decoded leniently (invalid UTF-8 becomes U+FFFD): for text we only display. */
  cstringLossy(): string {
    return this.cstringBytes().toString('utf8');
  }
}

const EMPTY = Buffer.alloc(0);
