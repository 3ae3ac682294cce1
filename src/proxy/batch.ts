/**
 * Output batching. Forwarded messages are views into the chunk they arrived in; consecutive views
 * of one chunk are merged back into a single slice, so a chunk of 100 DataRows costs one socket
 * write, not 100. Injected messages (errors, synthetic completions) break the run and are appended
 * as they are.
 */
import type { Socket } from 'node:net';

export class OutputBatch {
  /** Finished runs; null (no array) while there are none, which is the usual state of an idle client. */
  private parts: Buffer[] | null = null;
  /**
   * The run being extended: `runLength` bytes from the start of `run`, which may reach past
   * `run.length` into the same chunk. The merged view is made once, when the run ends, instead of
   * one new Buffer per message added.
   */
  private run: Buffer | null = null;
  private runLength = 0;

  add(buf: Buffer): void {
    const run = this.run;
    if (run !== null && run.buffer === buf.buffer && run.byteOffset + this.runLength === buf.byteOffset) {
      this.runLength += buf.length;
      return;
    }
    this.endRun();
    this.run = buf;
    this.runLength = buf.length;
  }

  private endRun(): void {
    const run = this.run;
    if (run === null) return;
    (this.parts ??= []).push(
      this.runLength === run.length ? run : Buffer.from(run.buffer, run.byteOffset, this.runLength),
    );
    this.run = null;
  }

  /** Drops what is queued (its destination is gone). */
  clear(): void {
    this.parts = null;
    this.run = null;
  }

  get empty(): boolean {
    return this.run === null && this.parts === null;
  }

  /** Writes everything to the socket; returns false when the socket asks us to wait (backpressure). */
  flush(socket: Socket): boolean {
    if (this.empty) return true;
    if (this.parts === null) {
      // The usual case, one run: no array.
      const run = this.run!;
      const one =
        this.runLength === run.length ? run : Buffer.from(run.buffer, run.byteOffset, this.runLength);
      this.run = null;
      if (socket.destroyed || !socket.writable) return true;
      return socket.write(one);
    }
    this.endRun();
    const parts = this.parts;
    this.parts = null;
    if (socket.destroyed || !socket.writable) return true;
    let ok = true;
    if (parts.length === 1) ok = socket.write(parts[0]!);
    else {
      socket.cork();
      for (const p of parts) ok = socket.write(p) && ok;
      socket.uncork();
    }
    return ok;
  }
}
