/**
 * A sharded session's `COPY … FROM STDIN` into a distributed or reference table: the sharding
 * host starts the COPY on the groups (sharding/copy-in.ts); once they are ready the client gets
 * CopyInResponse, and its CopyData goes to the host's stream instead of a server. CopyDone
 * commits (the reply is the summed `COPY n`), CopyFail rolls back with PostgreSQL's 57014
 * error. As PostgreSQL does in copy-in mode, Flush and Sync are ignored and any other message
 * fails the COPY (08P01) and is then handled as usual. When the groups cannot keep up, the
 * client is not read until they can. After a COPY has ended, CopyData, CopyDone and CopyFail
 * that still come are dropped, as PostgreSQL drops them.
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-COPY
 */
import type { TypedFrame } from '../../protocol/framer.js';
import { SqlState } from '../../protocol/sqlstate.js';
import type { CopyInStream, CopyInWork } from '../../sharding/copy-in.js';
import type { SessionSharding } from './shard-target.js';

/** What the COPY uses of its session. */
export interface CopySession {
  readonly inbox: TypedFrame[];
  waitFor(answer: Promise<Buffer[]>): void;
  /** Stops / resumes reading the client (the groups are behind). */
  holdClient(): void;
  releaseClient(): void;
}

const COPY_MESSAGES = new Set(['d', 'c', 'f']);

export class ShardCopy {
  private stream: CopyInStream | null = null;
  /** The COPY runs in the client's transaction block (its BEGIN held by the proxy). */
  private inTx = false;
  /** A COPY done inside a transaction block: its groups' transactions wait for COMMIT or ROLLBACK. */
  private held: CopyInStream | null = null;

  constructor(
    private readonly s: CopySession,
    private readonly sharding: SessionSharding,
    /** A COPY inside a transaction block failed: the block is failed (only its end is accepted). */
    private readonly onTxFailed: () => void,
  ) {}

  get active(): boolean {
    return this.stream !== null;
  }

  /** A COPY of this transaction block waits for its end (endHeld). */
  get holding(): boolean {
    return this.held !== null;
  }

  /**
   * The head of the inbox is the COPY statement of `work`: the groups start it. `inTx`: it is
   * the first statement of a transaction block whose BEGIN the proxy holds.
   */
  start(work: CopyInWork, inTx: boolean): void {
    this.s.inbox.shift();
    this.inTx = inTx;
    this.s.waitFor(
      this.sharding.copyIn(inTx ? { ...work, inTransaction: true } : work).then((r) => {
        if (!r.ok) {
          if (inTx) this.onTxFailed();
          return r.replies;
        }
        this.stream = r.stream;
        return [r.response];
      }),
    );
  }

  /** The transaction block of a held COPY ends: committed (`commit`) or rolled back; the replies. */
  endHeld(commit: boolean): Promise<Buffer[]> {
    const h = this.held!;
    this.held = null;
    return commit ? h.commit() : h.rollBack();
  }

  /**
   * Handles message `f` (the inbox's head) when it belongs to a COPY: true when it did. Copy
   * messages outside a COPY are dropped when no server would drop them (`noServer`).
   */
  step(f: TypedFrame, noServer: boolean): boolean {
    const stream = this.stream;
    if (stream === null) {
      if (!noServer || !COPY_MESSAGES.has(f.type)) return false;
      this.s.inbox.shift();
      return true;
    }
    switch (f.type) {
      case 'd':
        this.s.inbox.shift();
        if (stream.failed) {
          this.end(stream.finish());
        } else if (!stream.write(f.payload)) {
          this.s.holdClient();
          stream.onDrain(() => this.s.releaseClient());
        }
        return true;
      case 'c':
        this.s.inbox.shift();
        this.end(stream.finish());
        return true;
      case 'f': {
        this.s.inbox.shift();
        const nul = f.payload.indexOf(0);
        this.end(stream.abort(f.payload.toString('utf8', 0, nul < 0 ? f.payload.length : nul)));
        return true;
      }
      case 'H':
      case 'S':
        this.s.inbox.shift();
        return true;
      default:
        // Left in the inbox: handled once the COPY's error has been answered.
        this.end(
          stream.abort('', {
            sqlstate: SqlState.PROTOCOL_VIOLATION,
            message: `unexpected message type 0x${f.type.charCodeAt(0).toString(16)} during COPY from stdin`,
          }),
        );
        return true;
    }
  }

  /** The client left: the COPY rolls back. */
  close(): void {
    const stream = this.stream;
    this.stream = null;
    if (stream !== null) void stream.abort('the client closed the connection');
    const held = this.held;
    this.held = null;
    if (held !== null) void held.rollBack();
  }

  private end(replies: Promise<Buffer[]>): void {
    const stream = this.stream!;
    this.stream = null;
    this.s.releaseClient();
    if (!this.inTx) return this.s.waitFor(replies);
    this.s.waitFor(
      replies.then((r) => {
        if (stream.pending) this.held = stream;
        else this.onTxFailed();
        return r;
      }),
    );
  }
}
