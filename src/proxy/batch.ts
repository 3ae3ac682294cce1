/**
 * Output batching. Forwarded messages are views into the chunk they arrived in; consecutive views
 * of one chunk are merged back into a single slice, so a chunk of 100 DataRows costs one socket
 * write, not 100. Injected messages (errors, synthetic completions) break the run and are appended
 * as they are.
 */
import type { Socket } from 'node:net';
import type { TypedFrame } from '../protocol/framer.js';

/** Batches of several parts up to this many bytes are copied into one buffer and written once. */
const COPY_BELOW = 16 * 1024;

export class OutputBatch {
  /** Finished runs; null (no array) while there are none, which is the usual state of an idle client. */
  private parts: Buffer[] | null = null;
  /**
   * The run being extended: bytes `runStart`..`runEnd` of `run`. The view of it is made once,
   * when the run ends, instead of one new Buffer per message added.
   */
  private run: Buffer | null = null;
  private runStart = 0;
  private runEnd = 0;
  /**
   * A point mark() remembered, to which rollback() returns while nothing has been written since:
   * the run and the number of finished parts then (parts are only appended, and a run only grows).
   */
  private marked = false;
  private markParts = 0;
  private markRun: Buffer | null = null;
  private markRunStart = 0;
  private markRunEnd = 0;

  add(buf: Buffer): void {
    this.addRange(buf, 0, buf.length);
  }

  /** Adds a framed message by where it lies in its chunk, without making a view of it. */
  addFrame(f: TypedFrame): void {
    this.addRange(f.chunk, f.start, f.end);
  }

  /** Adds bytes `start`..`end` of `buf`. */
  addRange(buf: Buffer, start: number, end: number): void {
    const run = this.run;
    if (run !== null) {
      if (run === buf && this.runEnd === start) {
        this.runEnd = end;
        return;
      }
      if (run.buffer === buf.buffer && run.byteOffset + this.runEnd === buf.byteOffset + start) {
        // Views of one chunk (a message that spans reads is a copy: never adjacent).
        this.runEnd += end - start;
        return;
      }
      this.endRun();
    }
    this.run = buf;
    this.runStart = start;
    this.runEnd = end;
  }

  private view(): Buffer {
    const run = this.run!;
    this.run = null;
    if (this.runStart === 0 && this.runEnd === run.length) return run;
    if (this.runEnd <= run.length) return run.subarray(this.runStart, this.runEnd);
    // The run reaches past `run` into the same underlying memory.
    return Buffer.from(run.buffer, run.byteOffset + this.runStart, this.runEnd - this.runStart);
  }

  private endRun(): void {
    if (this.run === null) return;
    (this.parts ??= []).push(this.view());
  }

  /**
   * Remembers what is queued now, so that what is added after it can be taken back (rollback())
   * until the batch is next written: a mark lives within one batch of server replies.
   */
  mark(): void {
    this.marked = true;
    this.markParts = this.parts === null ? 0 : this.parts.length;
    this.markRun = this.run;
    this.markRunStart = this.runStart;
    this.markRunEnd = this.runEnd;
  }

  /** Whether rollback() would succeed: a mark is set and nothing was written or dropped since. */
  get canRollback(): boolean {
    return this.marked;
  }

  /** Drops what was added since mark(); false (and nothing dropped) once the batch was written. */
  rollback(): boolean {
    if (!this.marked) return false;
    this.marked = false;
    if (this.parts !== null) {
      if (this.markParts === 0) this.parts = null;
      else this.parts.length = this.markParts;
    }
    this.run = this.markRun;
    this.runStart = this.markRunStart;
    this.runEnd = this.markRunEnd;
    this.markRun = null;
    return true;
  }

  private unmark(): void {
    if (!this.marked) return;
    this.marked = false;
    this.markRun = null;
  }

  /** Drops what is queued (its destination is gone). */
  clear(): void {
    this.parts = null;
    this.run = null;
    this.unmark();
  }

  get empty(): boolean {
    return this.run === null && this.parts === null;
  }

  /** Writes everything to the socket; returns false when the socket asks us to wait (backpressure). */
  flush(socket: Socket): boolean {
    this.unmark();
    if (this.empty) return true;
    if (this.parts === null) {
      // The usual case, one run: no array.
      const one = this.view();
      if (socket.destroyed || !socket.writable) return true;
      return socket.write(one);
    }
    this.endRun();
    const parts = this.parts;
    this.parts = null;
    if (socket.destroyed || !socket.writable) return true;
    if (parts.length === 1) return socket.write(parts[0]!);
    let total = 0;
    for (const p of parts) total += p.length;
    // A few small parts (a renamed Bind before the client's Execute/Sync): one copy and one
    // write cost less than a corked writev, its array of requests and its callbacks.
    if (total <= COPY_BELOW) return socket.write(Buffer.concat(parts, total));
    let ok = true;
    socket.cork();
    for (const p of parts) ok = socket.write(p) && ok;
    socket.uncork();
    return ok;
  }
}
