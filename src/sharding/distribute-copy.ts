/**
 * A group's session for the executor (distribute.ts) over a node-postgres client: queries, and
 * COPY streamed in both directions without holding a table in memory. node-postgres has no COPY
 * API of its own; it hands the messages of a COPY to the active query object (its "Submittable"
 * interface, the one pg-copy-streams uses), so COPY TO STDOUT becomes a Readable whose
 * back-pressure pauses the server's socket, and COPY FROM STDIN writes CopyData frames from any
 * async iterable, waiting for the socket to drain. A failed source ends the COPY with CopyFail,
 * so the server discards what it received (https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-COPY).
 */
import { Readable } from 'node:stream';
import type { Duplex } from 'node:stream';
import type pg from 'pg';
import type { SqlClient } from './table-ddl.js';

/** The session on one group's primary that the executor works with. */
export interface GroupSession {
  /** The group's name (as in the config: "0", "1", …). */
  readonly group: string;
  readonly client: SqlClient;
  /**
   * Runs `COPY … TO STDOUT` and yields its data as it arrives (flow-controlled). Destroying the
   * stream before its end abandons the rest (the session stays usable).
   */
  copyOut(sql: string): Readable;
  /**
   * Runs `COPY … FROM STDIN` with `data`; resolves with the rows the server counted. `onStart`
   * is called when the server is ready for data (an error before that rejects the promise).
   */
  copyIn(sql: string, data: AsyncIterable<Buffer>, onStart?: () => void): Promise<number>;
}

/** What node-postgres passes to a Submittable: its Connection (only these parts are used). */
interface PgConnection {
  query(text: string): void;
  readonly stream: Duplex;
}

const COPY_DONE = Buffer.from([0x63, 0, 0, 0, 4]);

function frame(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = type;
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

function copyDataHeader(len: number): Buffer {
  const head = Buffer.alloc(5);
  head[0] = 0x64;
  head.writeInt32BE(len + 4, 1);
  return head;
}

/** COPY … TO STDOUT as a Readable; the server's socket pauses while the reader is behind. */
class CopyOutQuery extends Readable {
  private connection: PgConnection | null = null;
  private paused = false;
  private failed = false;

  constructor(private readonly sql: string) {
    super({ highWaterMark: 1 << 20 });
  }

  submit(connection: PgConnection): void {
    this.connection = connection;
    connection.query(this.sql);
  }

  handleCopyData(msg: { chunk: Buffer }): void {
    if (this.destroyed) return;
    // The chunk is a view into pg-protocol's read buffer, which is reused for the next bytes
    // the socket brings: it must be copied before it waits in our queue.
    if (!this.push(Buffer.from(msg.chunk)) && !this.paused) {
      this.paused = true;
      this.connection?.stream.pause();
    }
  }

  override _read(): void {
    this.unpause();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    // An abandoned COPY keeps running on the server: let its remaining data flow (and be dropped)
    // so the connection reaches ReadyForQuery and serves the next statement.
    this.unpause();
    cb(err);
  }

  private unpause(): void {
    if (this.paused) {
      this.paused = false;
      this.connection?.stream.resume();
    }
  }

  handleCopyInResponse(connection: PgConnection): void {
    connection.stream.write(frame(0x66, Buffer.from('not a COPY FROM\0')));
  }

  /** The query ends here (node-postgres sends it no ReadyForQuery after an ErrorResponse). */
  handleError(err: Error): void {
    this.failed = true;
    this.unpause();
    this.destroy(err);
  }

  handleReadyForQuery(): void {
    if (!this.failed && !this.destroyed) this.push(null);
  }

  handleCommandComplete(): void {}
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
}

/** COPY … FROM STDIN fed from an async iterable. */
class CopyInQuery {
  readonly done: Promise<number>;
  private resolve!: (n: number) => void;
  private reject!: (e: unknown) => void;
  private rows = 0;
  private serverError: unknown = null;
  private sourceError: unknown = null;
  private started = false;

  constructor(
    private readonly sql: string,
    private readonly data: AsyncIterable<Buffer>,
    private readonly onStart?: () => void,
  ) {
    this.done = new Promise<number>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
  }

  submit(connection: PgConnection): void {
    connection.query(this.sql);
  }

  handleCopyInResponse(connection: PgConnection): void {
    this.started = true;
    this.onStart?.();
    void this.pump(connection.stream);
  }

  private async pump(sock: Duplex): Promise<void> {
    try {
      for await (const chunk of this.data) {
        if (this.serverError !== null || sock.destroyed) return;
        if (chunk.length === 0) continue;
        sock.write(copyDataHeader(chunk.length));
        if (!sock.write(chunk)) await drained(sock);
      }
      if (this.serverError === null) sock.write(COPY_DONE);
    } catch (e) {
      this.sourceError = e;
      if (this.serverError === null && !sock.destroyed) {
        const msg = e instanceof Error ? e.message : String(e);
        sock.write(frame(0x66, Buffer.from(`${msg}\0`)));
      }
    }
  }

  handleCommandComplete(msg: { text?: string }): void {
    const m = /^COPY (\d+)/.exec(msg.text ?? '');
    if (m) this.rows = Number(m[1]);
  }

  /**
   * node-postgres ends the query at its ErrorResponse: the ReadyForQuery that follows goes to
   * nobody (client.js _handleErrorMessage), so the outcome is settled here. The pump stops at
   * its next chunk; CopyData that reaches the server after the error is ignored by it.
   */
  handleError(err: unknown): void {
    this.serverError = err;
    this.finish();
  }

  handleReadyForQuery(): void {
    this.finish();
  }

  private finish(): void {
    // A COPY that failed before it read anything (no such table …) abandons its source, which
    // would otherwise keep another session's COPY TO paused forever.
    if (!this.started && this.data instanceof Readable) this.data.destroy();
    if (this.sourceError !== null) this.reject(this.sourceError);
    else if (this.serverError !== null) this.reject(this.serverError);
    else this.resolve(this.rows);
  }

  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyData(): void {}
}

function drained(sock: Duplex): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sock.off('drain', done);
      sock.off('close', done);
      resolve();
    };
    sock.on('drain', done);
    sock.on('close', done);
  });
}

/** A GroupSession over a connected node-postgres client to the group's primary. */
export function pgGroupSession(group: string, client: pg.Client): GroupSession {
  const submit = <T>(q: T): T => client.query(q as unknown as pg.Submittable) as unknown as T;
  return {
    group,
    client: client,
    copyOut: (sql) => submit(new CopyOutQuery(sql)),
    copyIn: (sql, data, onStart) => submit(new CopyInQuery(sql, data, onStart)).done,
  };
}
