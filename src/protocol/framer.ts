/**
 * Chunk-safe incremental framing of PostgreSQL protocol streams, for both directions. A socket
 * delivers arbitrary slices of the byte stream; `push` accepts each slice and returns every whole
 * message completed by it. The frontend (client → proxy) stream starts with untyped startup-phase
 * packets (int32 length incl. itself, then an int32 code: StartupMessage version, SSLRequest,
 * GSSENCRequest or CancelRequest) and switches to typed messages (type byte + int32 length) after a
 * StartupMessage; the backend stream is typed only
 * (https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS).
 *
 * Safety rules, after PostgreSQL's pq_getmessage and ProcessStartupPacket
 * (src/backend/libpq/pqcomm.c, src/backend/tcop/backend_startup.c):
 * - a claimed length is checked against the limits as soon as its 4 bytes are here, before any
 *   byte of the body is buffered or allocated; a type byte is checked as soon as it arrives;
 * - a framing error cannot be resynchronised, so the framer then stays failed for good and drops
 *   what it held;
 * - a large message arriving in many small chunks is kept as a list and concatenated once, so
 *   framing is linear in the bytes received, never quadratic.
 * - or, for the message types a caller only forwards (`streamTypes`, e.g. DataRow), a message
 *   over `streamAbove` bytes is not kept at all: each chunk's share of it is returned at once as
 *   a `partial` piece, so its length costs nothing.
 *
 * Frames expose `bytes` (the whole message, header included, for forwarding untouched) and
 * `payload` (the body after the length). Both are views: when a message lies inside one pushed
 * chunk they share that chunk's memory (zero copy); when it spans chunks they view one fresh
 * concatenation. The caller must therefore not mutate or recycle a chunk after pushing it (Node's
 * socket `data` chunks are never recycled).
 */

import type { Failure } from './result.js';
import { fail } from './result.js';
import { SqlState } from './sqlstate.js';
import {
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  MAX_STARTUP_PACKET_LENGTH,
  MIN_STARTUP_PACKET_LENGTH,
  PQ_LARGE_MESSAGE_LIMIT,
  PQ_SMALL_MESSAGE_LIMIT,
  SSL_REQUEST_CODE,
} from './limits.js';
import { isBackendType, isFrontendType } from './message-types.js';

/** An untyped startup-phase packet. `code` is the first int32 of the payload. */
export interface StartupFrame {
  readonly kind: 'startup';
  readonly code: number;
  readonly bytes: Buffer;
  /** Everything after the length field, starting with the 4 code bytes. */
  readonly payload: Buffer;
}

/** A typed message. `type` is the one-character type byte. */
export interface TypedFrame {
  readonly kind: 'typed';
  readonly type: string;
  /** The whole message, header included (a view made on first use). */
  readonly bytes: Buffer;
  /** Everything after the type byte and length field. */
  readonly payload: Buffer;
  /**
   * Where `bytes` lies: `chunk.subarray(start, end)`. A forwarder that merges consecutive
   * messages of one chunk into one write (proxy/batch.ts) reads these and never makes the view.
   */
  readonly chunk: Buffer;
  readonly start: number;
  readonly end: number;
  /**
   * True for a piece of a message streamed in pieces (see FramerOptions.streamAbove): `bytes` is
   * the next slice of that message on the wire (the first piece starts with its header) and
   * `payload` means nothing. Such pieces are for forwarding, not decoding.
   */
  readonly partial?: boolean;
}

export type Frame = StartupFrame | TypedFrame;

/**
 * A typed frame whose views are made only when asked for: a proxy forwards most messages
 * (DataRow, RowDescription…) without ever looking inside them, so a Buffer per message would be
 * pure allocation on the hot path. It keeps the chunk the message lies in and its bounds.
 */
export class TypedMessage implements TypedFrame {
  private view: Buffer | null = null;
  constructor(
    readonly type: string,
    readonly chunk: Buffer,
    readonly start: number,
    readonly end: number,
  ) {}

  get kind(): 'typed' {
    return 'typed';
  }

  get bytes(): Buffer {
    return (this.view ??=
      this.start === 0 && this.end === this.chunk.length
        ? this.chunk
        : this.chunk.subarray(this.start, this.end));
  }

  get payload(): Buffer {
    return this.chunk.subarray(this.start + 5, this.end);
  }

  get partial(): boolean {
    return false;
  }

  /** A frame of a whole buffer (tests, synthetic messages). */
  static of(bytes: Buffer): TypedMessage {
    return new TypedMessage(String.fromCharCode(bytes[0] ?? 0), bytes, 0, bytes.length);
  }
}

/** A slice of a message streamed in pieces (no copy of the chunk it lies in). */
class MessagePiece extends TypedMessage {
  override get partial(): boolean {
    return true;
  }
}

/**
 * - `startup`: expecting an untyped packet (frontend only);
 * - `negotiating`: an SSLRequest/GSSENCRequest was framed; parsing pauses so the caller can answer
 *   and can see (`bufferedBytes`) whether the client sent anything after the request;
 * - `cancelled`: a CancelRequest was framed; the connection has nothing more to say;
 * - `typed`: regular messages; `failed`: a framing error happened, nothing more is parsed.
 */
export type FramerPhase = 'startup' | 'negotiating' | 'cancelled' | 'typed' | 'failed';

export type PushResult =
  { readonly ok: true; readonly frames: Frame[] } | (Failure & { readonly frames: Frame[] });

export interface FramerOptions {
  /**
   * Largest accepted value of a typed message's length field (which counts itself). Defaults:
   * frontend PQ_SMALL_MESSAGE_LIMIT (10000, right for the unauthenticated phase: call
   * `setMaxMessageLength` after authentication), backend PQ_LARGE_MESSAGE_LIMIT.
   */
  readonly maxMessageLength?: number;
  /** Reject type bytes that are not messages of this direction (default true). */
  readonly knownTypesOnly?: boolean;
  /**
   * Messages of `streamTypes` longer than this many bytes are not collected: each chunk's share
   * of them is returned at once as a `partial` frame, so a proxy that only forwards them (a
   * DataRow, CopyData) holds no more than a chunk of one, however long it is. Default: never.
   */
  readonly streamAbove?: number;
  /** Type bytes that may be streamed, e.g. 'Dd' (default none). */
  readonly streamTypes?: string;
}

type Side = 'frontend' | 'backend';

/**
 * Scratch space for a header that spans chunks, shared by every framer: it is filled and read
 * within one synchronous call, and one Buffer per connection would cost memory per idle client.
 */
const HEADER = Buffer.alloc(5);

export class Framer {
  private parts: Buffer[] = [];
  /** Bytes of parts[0] already returned: consumed in place, not re-sliced after every message. */
  private head = 0;
  private size = 0;
  /** Total bytes (header included) of the message being collected, or -1 if its header is unread. */
  private need = -1;
  /** The message being collected straight into one buffer of its length (see collectPending). */
  private whole: Buffer | null = null;
  private state: FramerPhase;
  private failure: Failure | undefined;
  private maxLength: number;
  private readonly knownTypesOnly: boolean;
  private readonly streamAbove: number;
  private readonly streamTypes: string;
  /** Bytes of the message being streamed still to come, and its type. */
  private streamLeft = 0;
  private streamType = '';

  private constructor(
    private readonly side: Side,
    options: FramerOptions,
  ) {
    this.state = side === 'frontend' ? 'startup' : 'typed';
    this.maxLength = checkLimit(
      options.maxMessageLength ?? (side === 'frontend' ? PQ_SMALL_MESSAGE_LIMIT : PQ_LARGE_MESSAGE_LIMIT),
    );
    this.knownTypesOnly = options.knownTypesOnly ?? true;
    this.streamAbove = options.streamAbove ?? Infinity;
    this.streamTypes = options.streamTypes ?? '';
  }

  /** Frames what a client sends: startup phase first, then typed messages. */
  static frontend(options: FramerOptions = {}): Framer {
    return new Framer('frontend', options);
  }

  /** Frames what a server sends: typed messages only. */
  static backend(options: FramerOptions = {}): Framer {
    return new Framer('backend', options);
  }

  get phase(): FramerPhase {
    return this.state;
  }

  /** Bytes received but not yet returned in a frame. */
  get bufferedBytes(): number {
    return this.size;
  }

  /**
   * Total bytes (header included) of the typed message being collected once its header has been
   * read, else 0. A caller that limits memory can reserve this much, or stop reading, before the
   * body arrives: the framer has then buffered no more than the chunks pushed so far.
   */
  get pendingMessageLength(): number {
    return this.state === 'typed' && this.need >= 0 ? this.need : 0;
  }

  get maxMessageLength(): number {
    return this.maxLength;
  }

  /** Changes the typed-message limit, e.g. to PQ_LARGE_MESSAGE_LIMIT once a client authenticated. */
  setMaxMessageLength(limit: number): void {
    this.maxLength = checkLimit(limit);
  }

  /**
   * Collects the rest of the message being collected (its header read, its length checked)
   * straight into one buffer of its full length, allocated now: each later chunk is copied in and
   * dropped, so the message costs its length once instead of its chunks and then their
   * concatenation. Call it only when that memory has been accounted for (this allocates by the
   * claimed length, which the framer otherwise never does); a no-op if nothing is being collected.
   */
  collectPending(): void {
    if (this.state !== 'typed' || this.need < 0 || this.whole !== null || this.size >= this.need) return;
    const whole = Buffer.allocUnsafe(this.need);
    let at = 0;
    let from = this.head;
    for (const part of this.parts) {
      at += part.copy(whole, at, from);
      from = 0;
    }
    this.parts = [];
    this.head = 0;
    this.whole = whole;
  }

  /**
   * With nothing buffered, gives the chunk list's backing store back (an idle connection then
   * holds none; the next chunk makes a new one). For a caller with many quiet connections.
   */
  releaseIfEmpty(): void {
    if (this.size === 0 && this.parts.length === 0) this.parts.length = 0;
  }

  /** Feeds one chunk; returns the completed frames, and the failure if framing broke. */
  push(chunk: Buffer): PushResult {
    if (this.failure) return { ...this.failure, frames: [] };
    const frames: Frame[] = [];
    const whole = this.whole;
    if (whole !== null && chunk.length > 0) {
      const k = Math.min(chunk.length, this.need - this.size);
      chunk.copy(whole, this.size, 0, k);
      this.size += k;
      if (this.size < this.need) return { ok: true, frames };
      this.whole = null;
      this.size = 0;
      this.need = -1;
      frames.push(TypedMessage.of(whole));
      chunk = chunk.subarray(k);
    }
    if (chunk.length > 0) {
      this.parts.push(chunk);
      this.size += chunk.length;
    }
    return this.drain(frames);
  }

  /**
   * Continues the startup phase after the caller answered an SSLRequest/GSSENCRequest with 'N'
   * (plaintext goes on). Returns frames from bytes that were held while negotiating. After an
   * 'S'/'G' answer, do not resume: require `bufferedBytes === 0` (CVE-2021-23214) and frame the
   * decrypted stream with a new Framer.
   */
  resumeStartup(): PushResult {
    if (this.failure) return { ...this.failure, frames: [] };
    if (this.state === 'negotiating') this.state = 'startup';
    return this.drain([]);
  }

  private drain(frames: Frame[]): PushResult {
    for (;;) {
      if (this.state === 'negotiating') {
        // Nothing is parsed until the caller answers; but hold no more than one startup packet.
        if (this.size > MAX_STARTUP_PACKET_LENGTH) {
          return this.fail(frames, 'too much data after encryption request');
        }
        break;
      }
      if (this.state === 'cancelled') {
        if (this.size > 0) return this.fail(frames, 'unexpected data after CancelRequest');
        break;
      }
      if (this.streamLeft > 0) {
        if (this.size === 0) break;
        // One piece per buffered part: a view of it, never a copy.
        const n = Math.min(this.parts[0]!.length - this.head, this.streamLeft);
        this.streamLeft -= n;
        const first = this.parts[0]!;
        const at = this.head;
        this.consume(n);
        frames.push(new MessagePiece(this.streamType, first, at, at + n));
        continue;
      }
      if (this.need < 0) {
        const bad = this.state === 'typed' ? this.readTypedHeader() : this.readStartupHeader();
        if (bad !== undefined) return this.fail(frames, bad);
        if (this.need < 0) break; // header incomplete
        if (this.state === 'typed' && this.need > this.streamAbove) {
          const type = String.fromCharCode(this.parts[0]![this.head] ?? 0);
          if (this.streamTypes.includes(type)) {
            this.streamType = type;
            this.streamLeft = this.need;
            this.need = -1;
            continue;
          }
        }
      }
      if (this.size < this.need) break;
      const n = this.need;
      this.need = -1;
      if (this.state === 'typed') {
        const first = this.parts[0]!;
        const at = this.head;
        if (first.length - at >= n) {
          // The usual case, the message inside one chunk: no view, no copy.
          this.consume(n);
          frames.push(new TypedMessage(String.fromCharCode(first[at]!), first, at, at + n));
        } else frames.push(TypedMessage.of(this.take(n)));
      } else {
        const bytes = this.take(n);
        const code = bytes.readUInt32BE(4);
        frames.push({ kind: 'startup', code, bytes, payload: bytes.subarray(4) });
        if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) this.state = 'negotiating';
        else if (code === CANCEL_REQUEST_CODE) this.state = 'cancelled';
        else this.state = 'typed';
      }
    }
    return { ok: true, frames };
  }

  /** Sets `need` when the 5-byte header is complete; returns an error message if it is invalid. */
  private readTypedHeader(): string | undefined {
    if (this.size === 0) return undefined;
    const first = this.parts[0]!;
    const type = first[this.head] ?? 0;
    if (this.knownTypesOnly && !(this.side === 'frontend' ? isFrontendType(type) : isBackendType(type))) {
      return `invalid ${this.side} message type ${type}`;
    }
    if (this.size < 5) return undefined;
    let length: number;
    if (first.length - this.head >= 5) length = first.readUInt32BE(this.head + 1);
    else {
      this.peek(5);
      length = HEADER.readUInt32BE(1);
    }
    // The sign bit set (> 0x7FFFFFFF) or < 4 is never valid: the length counts its own 4 bytes.
    if (length < 4 || length > 0x7fffffff) return `invalid message length ${length}`;
    if (length > this.maxLength) return `message length ${length} exceeds the limit of ${this.maxLength}`;
    this.need = 1 + length;
    return undefined;
  }

  private readStartupHeader(): string | undefined {
    if (this.size < 4) return undefined;
    this.peek(4);
    const length = HEADER.readUInt32BE(0);
    if (length < MIN_STARTUP_PACKET_LENGTH || length > MAX_STARTUP_PACKET_LENGTH) {
      return `invalid length of startup packet: ${length}`;
    }
    this.need = length;
    return undefined;
  }

  /** Copies the first `n` (≤ 5) buffered bytes into HEADER without consuming them. */
  private peek(n: number): void {
    let filled = 0;
    let from = this.head;
    for (const part of this.parts) {
      const k = Math.min(part.length - from, n - filled);
      part.copy(HEADER, filled, from, from + k);
      filled += k;
      from = 0;
      if (filled === n) return;
    }
  }

  /** Drops the first `n` buffered bytes, which lie in parts[0]. */
  private consume(n: number): void {
    this.size -= n;
    this.head += n;
    if (this.head === this.parts[0]!.length) {
      this.parts.shift();
      this.head = 0;
    }
  }

  /** Removes and returns the first `n` buffered bytes (n ≤ size), copying only when they span parts. */
  private take(n: number): Buffer {
    this.size -= n;
    const first = this.parts[0] as Buffer;
    const start = this.head;
    if (first.length - start >= n) {
      this.head += n;
      if (this.head === first.length) {
        this.parts.shift();
        this.head = 0;
      }
      return first.subarray(start, start + n);
    }
    const pieces: Buffer[] = [];
    let remaining = n;
    let i = 0;
    let from = start;
    while (remaining > 0) {
      const part = this.parts[i] as Buffer;
      const avail = part.length - from;
      if (avail <= remaining) {
        pieces.push(from === 0 ? part : part.subarray(from));
        remaining -= avail;
        i++;
        from = 0;
      } else {
        pieces.push(part.subarray(from, from + remaining));
        from += remaining;
        remaining = 0;
      }
    }
    this.parts.splice(0, i);
    this.head = from;
    return Buffer.concat(pieces, n);
  }

  private fail(frames: Frame[], message: string): PushResult {
    this.state = 'failed';
    this.parts = [];
    this.head = 0;
    this.size = 0;
    this.need = -1;
    this.whole = null;
    this.streamLeft = 0;
    this.failure = fail(SqlState.PROTOCOL_VIOLATION, message);
    return { ...this.failure, frames };
  }
}

function checkLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 4 || limit > 0x7fffffff) {
    throw new RangeError(`maxMessageLength must be an integer in 4..2147483647, got ${limit}`);
  }
  return limit;
}
