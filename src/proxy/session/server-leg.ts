/**
 * One server connection a client's transaction uses, with what belongs to it alone: the batch of
 * bytes on their way to it, the queue of replies it owes (pending.ts), COPY state, and the messages
 * kept to replay elsewhere should a replica go away before answering. It matches each reply to the
 * request it answers, writes the client-bound bytes to a reply sink, and reports what the session
 * must act on (a command completed, ReadyForQuery, the commit position, the connection lost)
 * through `LegEvents`; it never reaches into the session or the client's record.
 *
 * A transaction holds one leg per server it touches (one, until sharding); the object is reused
 * across attachments (bind/unbind) so that a transaction costs no allocation for it.
 */
import type { TypedFrame } from '../../protocol/framer.js';
import { decodeErrorResponse } from '../../protocol/error-response.js';
import { parseLsn } from '../../protocol/lsn.js';
import { mapPosition } from '../../sql/rename-prepared.js';
import type { ServerConn } from '../backend/server-conn.js';
import { decodeTextRow } from '../backend/server-conn.js';
import type { Pool } from '../backend/pool.js';
import { OutputBatch } from '../batch.js';
import type { CommitHorizon } from '../commit-horizon.js';
import type { ReplicaTarget } from '../read-router.js';
import { commandComplete, rewriteErrorFields } from '../rewrite.js';
import { unsafeEncodingStatus } from '../client-encoding.js';
import type { Pending, PendingQuery, SqlOp, SqlStatement } from './pending.js';
import type { ExplainRewrite } from './explain-note.js';

/** Where a leg writes what the client is to receive: the seam where replies of several legs meet. */
export interface ReplySink {
  add(bytes: Buffer): void;
  /** A server's message forwarded as it came (no view of it is made: proxy/batch.ts). */
  addFrame(f: TypedFrame): void;
  /** Remembers the point from which rollback() takes back what is added. */
  mark(): void;
  /** Whether what was added since mark() is still unwritten (rollback() would succeed). */
  readonly canRollback: boolean;
  /** Takes back what was added since mark(); false once any of it was written. */
  rollback(): boolean;
}

/** What a leg reports; implemented by the session (one-way: a leg never asks anything back). */
export interface LegEvents {
  /** A ParameterStatus set an encoding the proxy cannot analyse (client-encoding.ts). */
  unsafeEncoding(leg: ServerLeg, payload: Buffer): void;
  /** The server says it is going away before the client got a reply: true if it was replayed elsewhere. */
  serverGoingAway(leg: ServerLeg): boolean;
  /** A CommandComplete of the client's own work. */
  commandComplete(leg: ServerLeg, f: TypedFrame): void;
  /** ReadyForQuery: after a Query (`query`) or a Sync (null). */
  readyForQuery(leg: ServerLeg, f: TypedFrame, query: PendingQuery | null): void;
  /** The primary's WAL position after the client's write transaction (on this leg's group). */
  commitPosition(leg: ServerLeg, lsn: bigint): void;
  /** Statements of a renamed Query from `failedAt` on did not run: undo their record changes. */
  sqlStatementsFailed(leg: ServerLeg, ops: readonly SqlOp[], failedAt: number): void;
  /** A batch of frames is handled: the client's replies can be written. */
  framesDone(leg: ServerLeg): void;
  /** The server connection `server` died while this leg held it. */
  serverLost(leg: ServerLeg, server: ServerConn): void;
}

export class ServerLeg {
  /** The group this leg's servers belong to (set once, by whoever makes the leg). */
  group = '';
  server: ServerConn | null = null;
  /** The pool the server came from (the primary's, or a replica's). */
  pool: Pool | null = null;
  replica: ReplicaTarget | null = null;
  attachedAt = 0;
  pending: Pending[] = [];
  copyIn = false;
  /** On a replica: what was forwarded since attaching, to replay elsewhere if the replica goes away. */
  replay: TypedFrame[] | null = null;
  /** The client's SQL statement records when the replica was attached: a replay starts from them. */
  replayRecord: { sqlStatements: ReadonlyMap<string, SqlStatement>; sqlOwnNames: boolean } | null = null;
  /** Whether any reply was forwarded to the client since attaching (then a replay is impossible…). */
  replied = false;
  /**
   * …unless the replies are still unwritten and only describe rows (RowDescription, DataRow and
   * their extended-protocol preludes): PostgreSQL sends a RowDescription before it runs a query
   * and its shutdown FATAL in the same write, so a read stopped by a replica's shutdown is
   * retracted from the reply sink and replayed elsewhere, as if nothing had come.
   */
  private retractable = false;
  /** The connection holds the client's unnamed statement. */
  unnamedHere = false;
  /**
   * The proxy is ending the transaction this leg holds a part of (multi-group.ts): a reply
   * nobody asked for (the FATAL of a server going away) is not the client's; the loss is.
   */
  quiet = false;
  /**
   * A statement the classifier does not know to be a read was sent since the server was bound
   * (the classifier is conservative: a read never writes, or a replica would refuse it): the
   * end of a transaction on several groups takes this part for a writer.
   */
  wrote = false;
  /**
   * An EXPLAIN's route (sharding, explain-note.ts), set by the session before it forwards the
   * statement: taken by the next entry of the client's own Query or Execute (before a Sync).
   */
  explainArmed: ExplainRewrite | null = null;
  /** The entry whose DataRows `explainRewrite` rewrites. */
  private explained: Pending | null = null;
  private explainRewrite: ExplainRewrite | null = null;
  private readonly toServer = new OutputBatch();
  /** The server's frame handler, made once per leg (not per attachment). */
  readonly onFramesBound: (frames: TypedFrame[]) => void;
  /** The server's loss handler, made once per leg (not per attachment). */
  readonly onLostBound: (server: ServerConn) => void;

  constructor(
    private readonly events: LegEvents,
    private readonly sink: ReplySink,
    /** The database's primary pool: traffic statistics and the statements its servers know. */
    private readonly home: Pool,
    /** The commit horizon of the leg's group's primary (causal reads), or null. */
    readonly horizon: CommitHorizon | null,
  ) {
    this.onFramesBound = (frames) => this.onFrames(frames);
    this.onLostBound = (server) => this.events.serverLost(this, server);
  }

  bind(server: ServerConn, pool: Pool, replica: ReplicaTarget | null, at: number): void {
    this.server = server;
    this.pool = pool;
    this.replica = replica;
    this.attachedAt = at;
    this.replay = replica ? [] : null;
    this.replied = false;
    this.retractable = false;
    this.unnamedHere = false;
  }

  /** Forgets the server (its handlers are the caller's to clear); what was queued for it is dropped. */
  unbind(): void {
    this.server = null;
    this.pool = null;
    this.replica = null;
    this.replay = null;
    this.replayRecord = null;
    this.explainArmed = null;
    this.explained = null;
    this.explainRewrite = null;
    this.quiet = false;
    this.wrote = false;
  }

  /** Queues bytes for the server; flush() writes them (a pipeline leaves in one write). */
  send(buf: Buffer): void {
    this.home.stats.bytesReceived += buf.length;
    this.toServer.add(buf);
  }

  /** Queues a client's message as it came. */
  sendFrame(f: TypedFrame): void {
    this.home.stats.bytesReceived += f.end - f.start;
    this.toServer.addFrame(f);
  }

  expect(p: Pending): void {
    this.pending.push(this.explainArmed === null ? p : this.armExplain(p));
  }

  /** The entry EXPLAIN's armed rewrite goes with: the client's next Query or Execute (a fresh one). */
  private armExplain(p: Pending): Pending {
    if (p.k === 'sync') this.explainArmed = null;
    if (!((p.k === 'query' && !p.swallow) || p.k === 'execute')) return p;
    const entry: Pending = p.k === 'execute' ? { k: 'execute' } : p;
    this.explained = entry;
    this.explainRewrite = this.explainArmed;
    this.explainArmed = null;
    return entry;
  }

  /**
   * Nothing of this attachment has reached the client: no reply was forwarded, or those forwarded
   * are unwritten and retractable (retract() takes them back).
   */
  get unanswered(): boolean {
    return !this.replied || (this.retractable && this.sink.canRollback);
  }

  /** Takes back the replies forwarded since attaching (unanswered must hold). */
  retract(): void {
    if (this.replied && !this.sink.rollback()) throw new Error('retract(): the replies were written');
    this.replied = false;
    this.retractable = false;
  }

  /** Drops what was queued and expected (the connection is given up). */
  clear(): void {
    this.toServer.clear();
    this.pending = [];
    this.copyIn = false;
    this.explainArmed = null;
  }

  /** Writes what is queued; false when the server asks us to wait (its socket's 'drain' follows). */
  flush(): boolean {
    const s = this.server;
    if (!s || this.toServer.empty) return true;
    return this.toServer.flush(s.socket);
  }

  /** Bytes are still on their way to the server. */
  get busy(): boolean {
    const s = this.server;
    return s !== null && (!this.toServer.empty || s.socket.writableNeedDrain);
  }

  get idle(): boolean {
    return this.pending.length === 0;
  }

  /** The connection is gone with captures unanswered: the horizon stops waiting for them. */
  abandonCaptures(): void {
    const h = this.horizon;
    if (!h) return;
    for (const p of this.pending) if (p.k === 'query' && p.capture) h.endCapture(p.capture, null);
  }

  /** Only the proxy's state check is in flight (none of the client's work). */
  get onlyCheckPending(): boolean {
    return this.pending.length > 0 && this.pending.every((p) => p.k === 'query' && p.check !== undefined);
  }

  /** Emits synthetic replies (and skips markers) now at the head of the queue. */
  emitSynthetic(): void {
    while (this.pending.length > 0) {
      const h = this.pending[0]!;
      if (h.k === 'synthetic') this.sink.add(h.bytes);
      else if (h.k !== 'copy-end') return;
      this.pending.shift();
    }
  }

  /** A reply the proxy gives in the server's place, in order with the server's. */
  synthetic(bytes: Buffer): void {
    this.pending.push({ k: 'synthetic', bytes });
    this.emitSynthetic();
  }

  onFrames(frames: TypedFrame[]): void {
    const server = this.server;
    for (const f of frames) {
      this.home.stats.bytesSent += f.end - f.start;
      switch (f.type) {
        case 'S': {
          if (unsafeEncodingStatus(f.payload)) {
            this.events.unsafeEncoding(this, f.payload);
            return;
          }
          this.sink.addFrame(f);
          continue;
        }
        case 'N':
        case 'A':
          this.sink.addFrame(f);
          continue;
        default:
          if (this.replay !== null && (!this.replied || this.retractable)) {
            if (
              f.type === 'E' &&
              this.unanswered &&
              isServerGoingAway(f.payload) &&
              this.events.serverGoingAway(this)
            )
              return;
            if (this.replied) this.retractable = ROW_PRELUDE.has(f.type);
            else if (this.forwardsToClient()) {
              this.replied = true;
              this.retractable = ROW_PRELUDE.has(f.type);
              if (this.retractable) this.sink.mark();
            }
          }
          this.onResponse(f);
      }
      // Released (or given up) at this reply: what follows is not this attachment's.
      if (this.server !== server) break;
    }
    this.events.framesDone(this);
  }

  private onResponse(f: TypedFrame): void {
    const head = this.pending[0];
    if (!head) {
      // Unsolicited (a FATAL before the server goes away): the client should know.
      if (!this.quiet) this.sink.addFrame(f);
      return;
    }
    if (head === this.explained && f.type === 'D') {
      for (const b of this.explainRewrite!.row(f)) this.sink.add(b);
      return;
    }
    switch (head.k) {
      case 'query':
        return this.onQueryReply(f, head);
      case 'sync':
        this.sink.addFrame(f);
        if (f.type === 'Z') {
          this.pending.shift();
          this.events.readyForQuery(this, f, null);
        }
        return;
      case 'parse':
        if (f.type === 'E') {
          if (head.serverName && this.server) this.server.prepared.delete(head.serverName);
          return this.onExtendedError(f);
        }
        if (head.serverName) this.home.rememberStatement(head.serverName);
        if (!head.swallow) this.sink.addFrame(f);
        return this.popHead();
      case 'close':
        if (f.type === 'E') return this.onExtendedError(f);
        if (!head.swallow) this.sink.addFrame(f);
        return this.popHead();
      case 'bind':
        if (f.type === 'E') return this.onExtendedError(f);
        this.sink.addFrame(f);
        return this.popHead();
      case 'describe':
        if (f.type === 'E') return this.onExtendedError(f);
        this.sink.addFrame(f);
        if (f.type === 't') return; // ParameterDescription: RowDescription or NoData follows
        return this.popHead();
      case 'execute':
        if (f.type === 'E') {
          this.copyIn = false;
          return this.onExtendedError(f);
        }
        this.sink.addFrame(f);
        if (f.type === 'G') {
          this.copyIn = true;
          this.dropSyncsSentDuringCopy();
          return;
        }
        if (f.type === 'C' || f.type === 'I' || f.type === 's') {
          if (f.type === 'C') this.events.commandComplete(this, f);
          this.copyIn = false;
          return this.popHead();
        }
        return; // DataRow, CopyOutResponse, CopyData, CopyDone
      case 'synthetic':
      case 'copy-end':
        this.popHead();
        return this.onResponse(f);
    }
  }

  private onQueryReply(f: TypedFrame, head: PendingQuery): void {
    let bytes: Buffer | null = null;
    if (head.renamed) {
      if (f.type === 'C') head.completed = (head.completed ?? 0) + 1;
      else if (f.type === 'E') {
        const r = head.renamed;
        if (r.ops) this.events.sqlStatementsFailed(this, r.ops, head.completed ?? 0);
        bytes = rewriteErrorFields('E', f.payload, r.names, (p) => mapPosition(p, r.spans));
      }
    }
    if (head.tags && f.type === 'C') {
      const tag = head.tags.shift() ?? 'pass';
      if (tag === 'RESET') this.sink.add(commandComplete('RESET'));
      else if (tag === 'pass') this.sink.addFrame(f);
    } else if (!head.swallow) {
      if (bytes === null) this.sink.addFrame(f);
      else this.sink.add(bytes);
    }
    if (head.check && f.type === 'D' && f.partial !== true) head.check.rows.push(decodeTextRow(f.payload));
    if (head.captureLsn && f.type === 'D' && f.partial !== true) {
      const lsn = parseLsn(decodeFirstText(f.payload));
      if (lsn !== null) this.events.commitPosition(this, lsn);
      head.lsn = lsn;
    }
    if (f.type === 'E') head.failed = true;
    else if (f.type === 'C' && !head.swallow) this.events.commandComplete(this, f);
    else if (f.type === 'G') this.copyIn = true;
    if (head.done !== undefined) ownResult(head, f);
    if (f.type === 'Z') {
      this.pending.shift();
      this.copyIn = false;
      if (head.capture) this.horizon?.endCapture(head.capture, head.lsn ?? null);
      if (head.done !== undefined) {
        const status = f.chunk[f.start + 5] as number;
        head.done({
          rows: head.rows ?? [],
          error: head.error ?? null,
          status: status === 0x54 ? 'T' : status === 0x45 ? 'E' : 'I',
        });
      }
      this.events.readyForQuery(this, f, head);
    }
  }

  /** Whether the reply now expected goes to the client (not a swallowed internal reply). */
  private forwardsToClient(): boolean {
    const h = this.pending[0];
    if (!h) return true;
    if ((h.k === 'query' || h.k === 'parse' || h.k === 'close') && h.swallow) return false;
    return true;
  }

  /** Sync messages the client sent between an Execute that started COPY IN and CopyDone are ignored by the server. */
  private dropSyncsSentDuringCopy(): void {
    for (let i = 1; i < this.pending.length; i++) {
      const e = this.pending[i]!;
      if (e.k === 'copy-end') return;
      if (e.k === 'sync') this.pending.splice(i--, 1);
    }
  }

  private popHead(): void {
    this.pending.shift();
    this.emitSynthetic();
  }

  /** After an error in an extended-protocol message the server skips everything up to Sync. */
  private onExtendedError(f: TypedFrame): void {
    this.sink.addFrame(f);
    this.pending.shift();
    while (this.pending.length > 0 && this.pending[0]!.k !== 'sync') this.pending.shift();
  }
}

/**
 * Replies that may precede a shutdown FATAL and carry no effect: ParseComplete, BindComplete,
 * ParameterDescription, NoData, RowDescription and DataRow.
 */
const ROW_PRELUDE: ReadonlySet<string> = new Set(['1', '2', 't', 'n', 'T', 'D']);

/** FATAL errors by which a server says it is going away (shutdown, crash, recovery). */
function isServerGoingAway(payload: Buffer): boolean {
  const e = decodeErrorResponse(payload);
  if (!e.ok) return false;
  const code = e.value.fields.find((x) => x.code === 'C')?.value;
  return code === '57P01' || code === '57P02' || code === '57P03';
}

/** The first column of a DataRow as text (for the proxy's own one-value queries). */
function decodeFirstText(payload: Buffer): string | null {
  if (payload.length < 6 || payload.readUInt16BE(0) < 1) return null;
  const len = payload.readInt32BE(2);
  return len < 0 ? null : payload.toString('utf8', 6, 6 + len);
}

/** An own Query's outcome so far (ownQueryThen): its rows, its first error. */
function ownResult(head: PendingQuery, f: TypedFrame): void {
  if (f.type === 'D' && f.partial !== true) (head.rows ??= []).push(decodeTextRow(f.payload));
  else if (f.type === 'E' && head.error === null) head.error = Buffer.from(f.chunk.subarray(f.start, f.end));
}
