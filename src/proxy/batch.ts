/**
 * Output batching. Forwarded messages are views into the chunk they arrived in; consecutive views
 * of one chunk are merged back into a single slice, so a chunk of 100 DataRows costs one socket
 * write, not 100. Injected messages (errors, synthetic completions) break the run and are appended
 * as they are.
 */
import type { Socket } from 'node:net';

export class OutputBatch {
  private parts: Buffer[] = [];

  add(buf: Buffer): void {
    const last = this.parts[this.parts.length - 1];
    if (last && last.buffer === buf.buffer && last.byteOffset + last.length === buf.byteOffset) {
      this.parts[this.parts.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + buf.length);
    } else {
      this.parts.push(buf);
    }
  }

  /** Drops what is queued (its destination is gone). */
  clear(): void {
    this.parts = [];
  }

  get empty(): boolean {
    return this.parts.length === 0;
  }

  /** Writes everything to the socket; returns false when the socket asks us to wait (backpressure). */
  flush(socket: Socket): boolean {
    if (this.parts.length === 0) return true;
    const parts = this.parts;
    this.parts = [];
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
