/**
 * `COPY … FROM STDIN` into a distributed or reference table, run by the sharding host: the
 * client's data is cut into rows (copy-rows.ts), each row of a distributed table goes to the
 * group holding its shard (a reference table's rows go to every group), and the groups' COPYs
 * run in parallel, each in its own transaction as the client's user, fed as the client sends.
 * At the client's CopyDone the groups that received rows commit together (two-phase commit when
 * there are several, every-group-2pc.ts); the row count is their sum (a reference table's: one
 * copy's). A bad row — refused by its group, or a NULL or unreadable key here — fails the whole
 * COPY: every group rolls back, as one PostgreSQL would.
 *
 * Memory stays bounded: each group's queue holds at most HIGH_WATER bytes; past that the client
 * is not read (write() answers false) until the groups have taken the data.
 */
import { randomBytes } from 'node:crypto';
import { encodeBackendMessage } from '../protocol/backend-messages.js';
import { buildErrorResponse } from '../protocol/error-response.js';
import { type CopyOptions } from './copy-options.js';
import {
  BINARY_TRAILER,
  CopyFormatError,
  CopyRowSplitter,
  type CopyKey,
  type CopySink,
} from './copy-rows.js';
import { pgGroupSession } from './distribute-copy.js';
import { abortAll } from './distribute-2pc.js';
import { compareCopies, errorOf, type PgGroupSession } from './every-group.js';
import { prepareAndCommitInOrder } from './every-group-2pc.js';
import { hashRemainder, HashInputError } from './hash.js';
import { DistributeError, quoteIdent } from './table-ddl.js';
import type { Catalog, DistributedTable } from './types.js';

/** What a COPY into a catalog table needs to be split (made by the router from the plan). */
export interface CopyInWork {
  /** The client's COPY statement, run as written on each group. */
  readonly sql: string;
  readonly table: DistributedTable;
  readonly options: CopyOptions;
  /** The distribution column's place among the COPY's columns (null: a reference table). */
  readonly keyIndex: number | null;
  /** FORCE_NOT_NULL / FORCE_NULL name the distribution column (csv). */
  readonly keyForced: { readonly notNull: boolean; readonly null: boolean };
  /** How many columns the COPY has (its CopyInResponse lists a format per column). */
  readonly columnCount: number;
  /**
   * The COPY is the first statement of the client's transaction block (psycopg2's default, a
   * `BEGIN` held by the proxy): at CopyDone the groups' transactions stay open until the client's
   * COMMIT or ROLLBACK (commit() / rollBack()); replies end with ReadyForQuery 'T' or 'E'.
   */
  readonly inTransaction?: boolean;
}

export interface CopyInEnv {
  readonly catalog: () => Catalog | null;
  /** Superuser sessions on these groups' primaries (in the given order); `close` ends them. */
  openSessions(
    groups: readonly string[],
  ): Promise<{ readonly sessions: readonly PgGroupSession[]; close(): Promise<void> }>;
  /** Told when some groups' COMMIT PREPARED did not complete (recovery finishes them). */
  readonly onPending?: (groups: readonly string[]) => void;
}

/** A COPY in progress: the session feeds it the client's CopyData. */
export interface CopyInStream {
  /** One CopyData payload. false: hold the client back until onDrain. */
  write(data: Buffer): boolean;
  onDrain(cb: () => void): void;
  /** The COPY failed already (a group refused a row): the next message gets its error. */
  readonly failed: boolean;
  /** The client's CopyDone: the replies (CommandComplete or the error, then ReadyForQuery). */
  finish(): Promise<Buffer[]>;
  /** inTransaction: the COPY is done and its groups' transactions wait for commit() or rollBack(). */
  readonly pending: boolean;
  /** inTransaction, after a finish() that succeeded: the client's COMMIT (replies end with 'I'). */
  commit(): Promise<Buffer[]>;
  /** inTransaction: the client's ROLLBACK, or the end of its failed transaction block. */
  rollBack(): Promise<Buffer[]>;
  /**
   * The client's CopyFail with its message (or it left): every group rolls back; the replies
   * (57014, or `error` when the COPY failed for another reason, a protocol violation).
   */
  abort(message: string, error?: { readonly sqlstate: string; readonly message: string }): Promise<Buffer[]>;
}

export type CopyInStart =
  | { readonly ok: true; readonly stream: CopyInStream; readonly response: Buffer }
  | { readonly ok: false; readonly replies: Buffer[] };

/** Bytes queued per group before the client is held back. */
const HIGH_WATER = 1 << 20;
const READY = encodeBackendMessage({ name: 'ReadyForQuery', status: 'I' });
const READY_IN_TX = encodeBackendMessage({ name: 'ReadyForQuery', status: 'T' });
const READY_FAILED = encodeBackendMessage({ name: 'ReadyForQuery', status: 'E' });

/** One group's data, queued for its COPY (an async iterable it pulls from). */
class GroupFeed implements AsyncIterable<Buffer> {
  queued = 0;
  rows = 0;
  private readonly items: Buffer[] = [];
  private closed = false;
  private error: Error | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly drained: () => void) {}

  push(b: Buffer): void {
    if (this.closed) return;
    this.items.push(b);
    this.queued += b.length;
    this.poke();
  }

  close(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    if (error) {
      this.error = error;
      this.items.length = 0;
      this.queued = 0;
    }
    this.poke();
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    for (;;) {
      const b = this.items.shift();
      if (b !== undefined) {
        this.queued -= b.length;
        if (this.queued < HIGH_WATER / 2) this.drained();
        yield b;
        continue;
      }
      if (this.error) throw this.error;
      if (this.closed) return;
      await new Promise<void>((res) => (this.wake = res));
    }
  }
}

interface GroupCopy {
  readonly session: PgGroupSession;
  readonly feed: GroupFeed;
  done: Promise<number>;
}

/**
 * Starts the COPY on every group concerned. When all are ready, the client gets `response`
 * (CopyInResponse) and feeds the stream; if one refuses the statement, its error is the reply.
 */
export async function startCopyIn(work: CopyInWork, user: string, env: CopyInEnv): Promise<CopyInStart> {
  const catalog = env.catalog();
  if (catalog === null)
    return {
      ok: false,
      replies: [
        errorReply('57P03', 'the sharding catalog is not loaded'),
        work.inTransaction ? READY_FAILED : READY,
      ],
    };
  const coloc = catalog.colocations.get(work.table.colocationId);
  const groups =
    work.keyIndex === null || coloc === undefined
      ? [...catalog.groups]
      : catalog.groups.filter((g) => coloc.placement.includes(g));
  let opened: Awaited<ReturnType<CopyInEnv['openSessions']>>;
  try {
    opened = await env.openSessions(groups);
  } catch (e) {
    return { ok: false, replies: [errorOf(e), work.inTransaction ? READY_FAILED : READY] };
  }
  const stream = new CopyRun(work, user, catalog, opened.sessions, () => opened.close(), env);
  const failure = await stream.start();
  if (failure !== null) return { ok: false, replies: failure };
  const response = encodeBackendMessage({
    name: 'CopyInResponse',
    format: work.options.format === 'binary' ? 1 : 0,
    columnFormats: new Array<number>(work.columnCount).fill(work.options.format === 'binary' ? 1 : 0),
  });
  return { ok: true, stream, response };
}

class CopyRun implements CopyInStream, CopySink {
  private readonly copies: GroupCopy[] = [];
  private readonly byGroup = new Map<string, GroupCopy>();
  private readonly splitter: CopyRowSplitter;
  private error: unknown = null;
  private drainCb: (() => void) | null = null;
  private settled: Promise<Buffer[]> | null = null;
  private rolledBack: Promise<Buffer[]> | null = null;
  /** inTransaction: the COPY is done and the groups' transactions wait for the client's end. */
  private open = false;
  /** Rows cut in the current write(), by group, sent together at its end. */
  private readonly batch = new Map<GroupCopy, Buffer[]>();

  constructor(
    private readonly work: CopyInWork,
    private readonly user: string,
    private readonly catalog: Catalog,
    sessions: readonly PgGroupSession[],
    private readonly close: () => Promise<void>,
    private readonly env: CopyInEnv,
  ) {
    this.splitter = new CopyRowSplitter(work.options, work.keyIndex, work.keyForced);
    for (const session of sessions) {
      const c: GroupCopy = { session, feed: new GroupFeed(() => this.drained()), done: Promise.resolve(0) };
      this.copies.push(c);
      this.byGroup.set(session.group, c);
    }
  }

  get failed(): boolean {
    return this.error !== null;
  }

  get pending(): boolean {
    return this.open;
  }

  /** Each group: a transaction as the user, then its COPY until the server asks for data. */
  async start(): Promise<Buffer[] | null> {
    const starts = this.copies.map(async (c) => {
      const client = c.session.client;
      await client.query('BEGIN');
      await client.query(`SET ROLE ${quoteIdent(this.user)}`);
      let ready!: () => void;
      const started = new Promise<void>((res) => (ready = res));
      c.done = pgGroupSession(c.session.group, client).copyIn(this.work.sql, c.feed, ready);
      // A group that refuses a row fails the whole COPY at once (its feed is no longer read).
      c.done.catch((e: unknown) => this.fail(e));
      await Promise.race([started, c.done]);
    });
    const settled = await Promise.allSettled(starts);
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed === undefined) return null;
    // The first failure in time is the reply (a group refusing the statement ends the others' starts).
    this.error ??= failed.reason;
    return this.rollback();
  }

  write(data: Buffer): boolean {
    if (this.error !== null) return true;
    try {
      this.splitter.push(data, this);
      this.flushBatch();
    } catch (e) {
      this.fail(e);
      return true;
    }
    return this.copies.every((c) => c.feed.queued < HIGH_WATER);
  }

  onDrain(cb: () => void): void {
    this.drainCb = cb;
    this.drained();
  }

  private drained(): void {
    if (this.drainCb === null) return;
    if (this.error === null && !this.copies.every((c) => c.feed.queued < HIGH_WATER)) return;
    const cb = this.drainCb;
    this.drainCb = null;
    cb();
  }

  // ------------------------------------------------------------------ CopySink

  header(bytes: Buffer): void {
    for (const c of this.copies) c.feed.push(bytes);
  }

  row(bytes: Buffer, key: CopyKey): void {
    if (this.work.keyIndex === null) {
      for (const c of this.copies) this.queue(c, bytes);
      return;
    }
    this.queue(this.groupOf(key), bytes);
  }

  private queue(c: GroupCopy, bytes: Buffer): void {
    c.feed.rows++;
    const list = this.batch.get(c);
    if (list === undefined) this.batch.set(c, [bytes]);
    else list.push(bytes);
  }

  private flushBatch(): void {
    for (const [c, list] of this.batch) c.feed.push(list.length === 1 ? list[0]! : Buffer.concat(list));
    this.batch.clear();
  }

  private groupOf(key: CopyKey): GroupCopy {
    const t = this.work.table;
    if (key === null)
      throw new DistributeError(
        '23502',
        `the partition column of table ${t.rel.schema}.${t.rel.name} cannot be NULL`,
      );
    if (key === 'default')
      throw new DistributeError(
        '0A000',
        `COPY into distributed table "${t.rel.name}" cannot take the DEFAULT marker in its distribution column "${t.column ?? ''}"`,
      );
    const coloc = this.catalog.colocations.get(t.colocationId)!;
    // A stored value: the column's type modifier applies first (numeric rounding, char(n) …).
    const r = hashRemainder(t.type!, key, coloc.shardCount, t.typmod ?? -1);
    const c = this.byGroup.get(coloc.placement[r]!);
    if (c === undefined)
      throw new DistributeError('XX000', `group ${coloc.placement[r]} is not open for this COPY`);
    return c;
  }

  // ------------------------------------------------------------------ the end

  private fail(e: unknown): void {
    if (this.error !== null) return;
    this.error = e;
    this.batch.clear();
    for (const c of this.copies) c.feed.close(new Error('COPY failed on another group'));
    this.drained();
    // Locks end now, not at the client's CopyDone.
    this.settled = this.rollback();
  }

  finish(): Promise<Buffer[]> {
    if (this.settled !== null) return this.settled;
    this.settled = this.complete();
    return this.settled;
  }

  abort(message: string, error?: { readonly sqlstate: string; readonly message: string }): Promise<Buffer[]> {
    if (this.settled !== null) return this.settled;
    this.error ??=
      error !== undefined
        ? new DistributeError(error.sqlstate, error.message)
        : new DistributeError('57014', `COPY from stdin failed: ${message}`);
    for (const c of this.copies) c.feed.close(new Error(error?.message ?? message));
    this.settled = this.rollback();
    return this.settled;
  }

  private async complete(): Promise<Buffer[]> {
    try {
      this.splitter.end(this);
      this.flushBatch();
      if (this.work.options.format === 'binary') for (const c of this.copies) c.feed.push(BINARY_TRAILER);
    } catch (e) {
      this.fail(e);
      return this.settled!;
    }
    for (const c of this.copies) c.feed.close();
    const counts = await Promise.allSettled(this.copies.map((c) => c.done));
    const bad = counts.find((r) => r.status === 'rejected');
    if (bad !== undefined || this.error !== null) {
      this.error ??= (bad as PromiseRejectedResult).reason;
      return this.rollback();
    }
    const n = counts.map((r) => (r as PromiseFulfilledResult<number>).value);
    const reference = this.work.keyIndex === null;
    const total = reference ? (n[0] ?? 0) : n.reduce((a, b) => a + b, 0);
    const tag = encodeBackendMessage({ name: 'CommandComplete', tag: `COPY ${total}` });
    try {
      await Promise.all(this.copies.map((c) => c.session.client.query('RESET ROLE')));
      if (reference)
        await compareCopies(
          this.copies.map((c) => c.session),
          [this.work.table.rel],
        );
    } catch (e) {
      this.error ??= e;
      return this.rollback();
    }
    if (this.work.inTransaction === true) {
      this.open = true;
      return [tag, READY_IN_TX];
    }
    const outcome = await this.commitPhase();
    return outcome === null ? [tag, READY] : outcome;
  }

  commit(): Promise<Buffer[]> {
    if (!this.open) return this.rollBack();
    this.open = false;
    return this.commitPhase().then(
      (failed) => failed ?? [encodeBackendMessage({ name: 'CommandComplete', tag: 'COMMIT' }), READY],
    );
  }

  async rollBack(): Promise<Buffer[]> {
    this.open = false;
    await this.rollback();
    return [encodeBackendMessage({ name: 'CommandComplete', tag: 'ROLLBACK' }), READY];
  }

  /**
   * The groups that received rows commit together (2PC when several); the others roll back.
   * null when committed; else the error's replies (ending with ReadyForQuery 'I').
   */
  private async commitPhase(): Promise<Buffer[] | null> {
    const reference = this.work.keyIndex === null;
    const used = reference ? this.copies : this.copies.filter((c) => c.feed.rows > 0);
    const unused = this.copies.filter((c) => !used.includes(c));
    try {
      await abortAll(
        unused.map((c) => c.session),
        [],
        '',
      );
      if (used.length === 1) await used[0]!.session.client.query('COMMIT');
      else if (used.length > 1) {
        const out = await prepareAndCommitInOrder(
          used.map((c) => c.session),
          randomBytes(6).toString('hex'),
        );
        if (out.pendingGroups.length > 0) this.env.onPending?.(out.pendingGroups);
      }
      return null;
    } catch (e) {
      // prepareAndCommitInOrder has rolled back (or left the decision to recovery): only the error is left.
      await abortAll(
        this.copies.map((c) => c.session),
        [],
        '',
      );
      return [replyOf(e), READY];
    } finally {
      await this.close().catch(() => undefined);
    }
  }

  /** Every group rolls back (once); the reply is the first error. */
  private rollback(): Promise<Buffer[]> {
    this.rolledBack ??= this.rollbackNow();
    return this.rolledBack;
  }

  private async rollbackNow(): Promise<Buffer[]> {
    await Promise.allSettled(this.copies.map((c) => c.done));
    await abortAll(
      this.copies.map((c) => c.session),
      [],
      '',
    );
    await this.close().catch(() => undefined);
    const error = this.error ?? new DistributeError('57014', 'COPY was rolled back');
    return [replyOf(error), this.work.inTransaction === true ? READY_FAILED : READY];
  }
}

function errorReply(sqlstate: string, message: string): Buffer {
  return buildErrorResponse('ERROR', sqlstate, message);
}

function replyOf(e: unknown): Buffer {
  if (e instanceof HashInputError) return buildErrorResponse('ERROR', e.sqlstate, e.message, e.detail);
  if (e instanceof CopyFormatError) return errorReply(e.sqlstate, e.message);
  return errorOf(e);
}
