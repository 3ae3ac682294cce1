/**
 * A client's session after authentication: the transaction-pooling engine. Client messages are
 * forwarded to a server connection taken from the pool when the first one that needs a server
 * arrives, and the connection goes back to the pool at ReadyForQuery with status idle once every
 * response the client waits for has come (never mid-pipeline, never inside a transaction or a
 * COPY). What drivers must not notice is tracked here, per client:
 *
 * - named prepared statements (protocol Parse/Bind/Describe/Close, and SQL PREPARE/EXECUTE) get
 *   server-side names derived from their text, are re-prepared on a connection that lacks them,
 *   and a Parse the connection already holds is answered with a synthetic ParseComplete;
 * - SET/RESET of session parameters (and the start-up parameters) are replayed on whichever
 *   connection the client gets, so no client ever sees another's settings; RESET restores the
 *   client's start-up values (reset-rewrite.ts), and a SET is recorded as the value it left
 *   (settings-record.ts);
 * - state that cannot be replayed (SET ROLE, temporary tables, session advisory locks, WITH HOLD
 *   cursors, LISTEN outside the fan-out) pins the connection to the client for the rest of the
 *   session, and it is reset with DISCARD ALL before anyone else uses it.
 *
 * Responses are matched to requests with a queue of expected replies, one entry per message that
 * produces a reply, in order; synthetic replies wait in the same queue so that the client sees
 * them exactly where PostgreSQL would have sent them.
 */
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TypedFrame } from '../protocol/framer.js';
import {
  decodeBind,
  decodeClose,
  decodeDescribe,
  decodeParse,
  decodeQuery,
} from '../protocol/frontend-messages.js';
import { commandCompleteIs, readyForQueryStatus } from '../protocol/backend-messages.js';
import type { TransactionStatus } from '../protocol/backend-messages.js';
import { buildErrorResponse, decodeErrorResponse } from '../protocol/error-response.js';
import { SqlState } from '../protocol/sqlstate.js';
import { cannotChangeSession, sessionEffects } from '../sql/session-effects.js';
import type { SessionEffect } from '../sql/session-effects.js';
import { mapPosition, renamePreparedRefs, renamePreparedRefsAt } from '../sql/rename-prepared.js';
import type { RenameSpan } from '../sql/rename-prepared.js';
import {
  hiddenEffectRisk,
  mayHideEffects,
  runsUserCode,
  searchPathShadowsBuiltins,
} from '../sql/session-safety.js';
import { quoteSettingName, stateCheckFinding, stateCheckQuery } from './backend/state-check.js';
import type { ServerConn } from './backend/server-conn.js';
import { isDdl } from './backend/hidden-code.js';
import type { HiddenCodeRegistry } from './backend/hidden-code.js';
import { ServerLoginError, decodeTextRow } from './backend/server-conn.js';
import type { Keeper, Pool } from './backend/pool.js';
import { OutputBatch } from './batch.js';
import { restoreStatements, restoreValue, rewriteResets } from './reset-rewrite.js';
import type { TagAction } from './reset-rewrite.js';
import { PROXY_SETTINGS } from './frontend/startup-params.js';
import { committedSettings } from './settings-record.js';
import {
  CLOSE_COMPLETE,
  PARSE_COMPLETE,
  commandComplete,
  queryMessage,
  readyForQuery,
  renameBind,
  renameParse,
  renameTarget,
  rewriteErrorFields,
} from './rewrite.js';
import type { ClientId, PoolMode } from './types.js';
import { ReadPause } from './frontend/read-pause.js';
import { LARGE_MESSAGE_BYTES } from './frontend/message-budget.js';
import { now } from './types.js';
import type { ListenerHub } from './listener-hub.js';
import type { Consistency, ReadRouter, ReplicaTarget } from './read-router.js';
import { parseLsn } from '../protocol/lsn.js';
import { CONSISTENCY_LEVELS } from './read-router.js';
import type { CommitHorizon } from './commit-horizon.js';
import { laterLsn } from './commit-horizon.js';
import type { Classification } from '../sql/classify.js';
import { decodeText, encodeText, hasRawBytes } from '../protocol/sql-text.js';
import {
  encodingTag,
  refusedEncodingQuery,
  sessionEncoding,
  refusedEncodingSet,
  unsafeEncodingFatal,
  unsafeEncodingStatus,
} from './client-encoding.js';

const TRACE = process.env.PGSCALE_TRACE === '1';

/** COMMIT, END, COMMIT AND CHAIN (not COMMIT PREPARED, which commits another transaction). */
const COMMIT_TEXT = /^\s*(commit|end)\b(?!\s+prepared)/i;

type Pending =
  | {
      k: 'query';
      swallow: boolean;
      failed: boolean;
      wasInBlock: boolean;
      captureLsn?: boolean;
      /** The capture's token with the commit horizon (0: none), and the position it read. */
      capture?: number;
      lsn?: bigint | null;
      /** RESETs rewritten to restore start-up values: each CommandComplete's fate (reset-rewrite.ts). */
      tags?: TagAction[];
      /**
       * The session-state check: its rows, and what made it necessary. `discardOnly`: no check,
       * only DISCARD SEQUENCES before the connection changes hands (sequence state, see seqDirty).
       */
      check?: {
        rows: (string | null)[][];
        cause: string;
        tracked: ReadonlyMap<string, string>;
        discardOnly?: boolean;
      };
      /** Prepared-statement names of the text were renamed: how to show the client its own. */
      renamed?: RenamedText;
      /** CommandCompletes so far: the statement an error comes from (renamed texts only). */
      completed?: number;
    }
  | { k: 'parse'; swallow: boolean; serverName: string | null }
  | { k: 'bind' }
  | { k: 'describe'; statement: boolean; sawDescription: boolean }
  | { k: 'execute' }
  | { k: 'close'; swallow: boolean }
  | { k: 'sync' }
  | { k: 'synthetic'; bytes: Buffer }
  | { k: 'copy-end' };

interface ClientStatement {
  /** May run on a replica (classified at Parse). */
  read: boolean;
  /** SET/RESET effects of the statement's text, applied when a portal of it is executed. */
  effects: SessionEffect[];
  /** Why executing it may change session state the proxy cannot see (then checked), or null. */
  risk: string | null;
  serverName: string;
  /** The Parse message under the server-side name, to re-prepare on another connection. */
  parse: Buffer;
  /** A CREATE, ALTER or DROP: the hidden-code registry reloads after its transaction. */
  ddl: boolean;
  /** Calls nextval or setval in its text (a write to a relation with a sequence is seen at Bind). */
  seq: boolean;
  /** Its text, decoded from `parse` the first time the hidden-code registry needs it. */
  text?: string;
}

interface SqlStatement {
  serverName: string;
  /** The PREPARE statement under the server-side name. */
  prepare: string;
  /** The PREPARE statement as the client wrote it (under its own name, once pinned). */
  original: string;
}

/** A change one statement of a Query made to the client's SQL statement records. */
interface SqlOp {
  /** The statement's index in its text (sessionEffects order). */
  index: number;
  name: string;
  /** The record before the change (DEALLOCATE), or undefined (a new PREPARE). */
  before: SqlStatement | undefined;
  serverName: string;
  prepare: boolean;
}

/** A Query text whose prepared-statement names were renamed for the server. */
interface RenamedText {
  /** Server name → client name, to put back in error messages. */
  names: Map<string, string>;
  spans: RenameSpan[];
  /** Record changes, undone for the statements the server did not run (an error stops it). */
  ops: SqlOp[] | null;
}

export interface SessionHost {
  readonly id: ClientId;
  readonly socket: Socket;
  /** Closes the client connection after sending `fatal` (an ErrorResponse), if given. */
  terminate(fatal?: Buffer): void;
  /** Stops reading the client for a reason; it is read again when no reason is left. */
  pauseReading(reason: ReadPause): void;
  resumeReading(reason: ReadPause): void;
  /** Every message given to the session so far has left the process (their memory budget ends). */
  inputFlushed(): void;
}

export interface SessionOptions {
  pool: Pool;
  mode: PoolMode;
  maxPreparedStatements: number;
  listeners: ListenerHub | null;
  /** Session settings from the start-up packet (lowercase name → SQL literal). */
  startupSettings: ReadonlyMap<string, string>;
  /** The proxy's own settings given at start-up (`-c pgscale.consistency=primary`). */
  startupProxySettings?: ReadonlyMap<string, string>;
  /** Read/write splitting: absent when there are no replicas or pooling is per session. */
  router?: ReadRouter | null;
  /** Shared by every session of the proxy (a per-session closure would cost memory per client). */
  classifier?: { classify(sql: string): Classification } | null;
  consistency?: Consistency;
  /** The primary's commit horizon (causal, linearizable): present when the database has replicas. */
  horizon?: CommitHorizon | null;
  /** The database's relations with hidden code (views, triggers…): naming one means a check. */
  hiddenCode?: HiddenCodeRegistry | null;
}

export class Session implements Keeper {
  server: ServerConn | null = null;
  txStatus: TransactionStatus = 'I';
  /** Pinned: holds a connection for the whole session (session mode, or untrackable state). */
  pinned: boolean;
  pinReason: string | null = null;
  private pending: Pending[] = [];
  private inbox: TypedFrame[] = [];
  private acquiring = false;
  /** Waiting for the LISTEN fan-out before answering: later messages wait in order. */
  private blocked = false;
  private closed = false;
  private copyIn = false;
  private readonly out = new OutputBatch();
  private readonly toServer = new OutputBatch();
  // Assigned in the constructor, not as a class field: a class-field arrow function is given its
  // name at run time, which costs each instance a property store (~250 bytes per client).
  private readonly onServerFramesBound: (frames: TypedFrame[]) => void;
  /** Client reads paused while waiting for a server. */
  private paused = false;
  /** The client's session settings: the start-up packet's own map until the client changes one. */
  private settings: ReadonlyMap<string, string>;
  /** A ROLLBACK tag since the last ReadyForQuery: the whole transaction, or to a savepoint. */
  private rolledBack = false;
  /** Settings changed inside the current transaction: kept on commit, dropped on rollback. */
  private txSettings: SessionEffect[] = [];
  // Per-client maps start as one shared empty map and are made on their first entry: an idle
  // client then costs no map it never uses (10,000 idle clients are a normal sight for a pooler).
  private statements: ReadonlyMap<string, ClientStatement> = EMPTY_MAP;
  /** Effects of the unnamed statement and of bound portals (extended protocol SET/RESET). */
  private unnamedEffects: SessionEffect[] = [];
  private unnamedRisk: string | null = null;
  /** The unnamed statement's text, kept only while some relation of the database hides code. */
  private unnamedText = '';
  private unnamedDdl = false;
  /** The unnamed statement calls nextval or setval. */
  private unnamedSeq = false;
  /**
   * The unnamed statement's Parse in this attachment, not yet bound; when the connection goes
   * back unbound (psql's \gdesc: Parse, Sync, then Describe in a second round trip), a copy is
   * kept in unnamedSaved and parsed again on the next connection before a Describe or Bind of it.
   */
  private unnamedFrame: TypedFrame | null = null;
  private unnamedSaved: Buffer | null = null;
  /** The attached connection holds the client's unnamed statement. */
  private unnamedHere = false;
  /**
   * SQL PREPARE names reach the server as the client wrote them: always in session mode (the
   * client owns its connection), and in transaction mode once the client is pinned.
   */
  private sqlOwnNames: boolean;
  /**
   * The attached connection may hold sequence state of this client (nextval/setval ran, or a
   * write to a relation whose column takes a sequence value): currval() and lastval() must
   * never read another client's. The client keeps the connection (like after user code, below);
   * before anyone else gets it, DISCARD SEQUENCES (then the client's currval says 55000, as
   * PostgreSQL does in a session without a nextval).
   */
  private seqDirty = false;
  /** This transaction ran DDL the hidden-code registry cannot see before it commits. */
  private ddlInTx = false;
  /**
   * Something ran since attaching that may have changed session state out of the proxy's sight
   * (a user function, DO, EXECUTE…): the server's session is checked before the connection goes
   * back to the pool, and the connection is pinned if the client left state there.
   */
  private checkCause: string | null = null;
  /**
   * Holding on to the connection after such a transaction, unchecked, until the client needs it
   * again (no check at all) or another client needs a connection (then check, release or pin).
   */
  private keeping = false;
  /** The running check was asked for by the pool (someone waits): release after it, if clean. */
  private handingOver = false;
  private checkSentAt = 0;
  /** A DISCARD ALL was sent in the current Query: its CommandComplete clears our records. */
  private discardAllSent = false;
  private portalEffects: ReadonlyMap<string, SessionEffect[]> = EMPTY_MAP;
  private sqlStatements: ReadonlyMap<string, SqlStatement> = EMPTY_MAP;
  channels: ReadonlySet<string> = EMPTY_SET;
  private attachedAt = 0;
  /** The pool the attached server came from (the primary's, or a replica's). */
  private attachedPool: Pool | null = null;
  private attachedReplica: ReplicaTarget | null = null;
  /** A COMMIT sent in a transaction block has not been answered yet (cancels are withheld). */
  private commitInFlight = false;
  /** WAL position of this client's last commit on the primary (read-your-writes). */
  private wroteLsn: bigint | null = null;
  /** On the primary for something not known to be a read: learn the commit position at release. */
  private needLsn = false;
  /** A write is waiting while the replica finishes earlier reads; then the primary takes over. */
  private switching = false;
  /** On a replica: what was forwarded since attaching, to replay elsewhere if the replica goes away. */
  private replay: TypedFrame[] | null = null;
  /** The client's SQL statements when the replica was attached: a replay starts from them. */
  private replaySqlStatements: ReadonlyMap<string, SqlStatement> = EMPTY_MAP;
  private replaySqlOwnNames = false;
  /** Whether the client has been sent any reply since attaching (then a replay is impossible). */
  private replied = false;
  /** The proxy's own settings (pgscale.target, pgscale.consistency): never sent to servers. */
  private proxySettings: ReadonlyMap<string, string> = EMPTY_MAP;
  /** Reads served by replicas / by the primary, for SHOW CLIENTS. */
  readonly routing = { replica: 0, primary: 0 };
  private queryStartedAt = 0;
  /** Bytes and counts for SHOW CLIENTS / STATS. */
  readonly counters = { queries: 0, xacts: 0, waitUs: 0 };
  lastActivity = now();
  /** The Query frame decoded last and its decoding: up to four checks look at each Query. */
  private queryFrame: TypedFrame | null = null;
  private queryDecoded: ReturnType<typeof decodeQuery> | null = null;

  constructor(
    private readonly host: SessionHost,
    private readonly opts: SessionOptions,
  ) {
    this.settings = opts.startupSettings;
    this.proxySettings = opts.startupProxySettings ?? EMPTY_MAP;
    this.onServerFramesBound = (frames) => this.onServerFrames(frames);
    this.pinned = opts.mode === 'session';
    this.sqlOwnNames = this.pinned;
    if (this.pinned) this.pinReason = 'session pool mode';
  }

  // The maps behind the per-client fields, each made on its first entry (see EMPTY_MAP).
  private ownStatements(): Map<string, ClientStatement> {
    if (this.statements === EMPTY_MAP) this.statements = new Map();
    return this.statements as Map<string, ClientStatement>;
  }

  private ownPortalEffects(): Map<string, SessionEffect[]> {
    if (this.portalEffects === EMPTY_MAP) this.portalEffects = new Map();
    return this.portalEffects as Map<string, SessionEffect[]>;
  }

  private ownSqlStatements(): Map<string, SqlStatement> {
    if (this.sqlStatements === EMPTY_MAP) this.sqlStatements = new Map();
    return this.sqlStatements as Map<string, SqlStatement>;
  }

  private ownProxySettings(): Map<string, string> {
    if (this.proxySettings === EMPTY_MAP || this.proxySettings === this.opts.startupProxySettings)
      this.proxySettings = new Map(this.proxySettings);
    return this.proxySettings as Map<string, string>;
  }

  private ownChannels(): Set<string> {
    if (this.channels === EMPTY_SET) this.channels = new Set();
    return this.channels as Set<string>;
  }

  /** This session calls `host.inputFlushed()` (a getter: no field per client). */
  get reportsInputFlushed(): boolean {
    return true;
  }

  get pool(): Pool {
    return this.opts.pool;
  }

  get state(): 'active' | 'waiting' | 'idle' {
    return this.acquiring ? 'waiting' : this.server ? 'active' : 'idle';
  }

  // ------------------------------------------------------------------ client → server

  onClientFrames(frames: TypedFrame[]): void {
    if (TRACE) process.stderr.write(`C${this.host.id}> ${frames.map((f) => f.type).join('')}\n`);
    this.lastActivity = now();
    this.inbox.push(...frames);
    if (this.acquiring) this.pauseClient();
    this.drain();
  }

  private drain(): void {
    if (this.keeping && this.inbox.length > 0) {
      this.stopKeeping();
      if (
        this.server &&
        this.txStatus === 'I' &&
        this.pending.length === 0 &&
        !this.seqDirty &&
        (this.attachedReplica ? this.router !== null : this.wantsReplica())
      ) {
        // Kept after user code (or while the hidden-code registry loads), and the next work must
        // be routed again: on a replica, each read needs the replica its consistency level asks
        // for (a kept replica may be behind the client's or the proxy's last commit); on the
        // primary, a read a replica can serve must not lose read scaling. Checked (as for a
        // hand-over), released, then routed. Not with sequence state (seqDirty): currval must
        // find it, so the client stays.
        this.switching = true;
        if (this.checkCause === null) this.releaseServer();
        else {
          this.checkState(this.server);
          return;
        }
      }
    }
    // While the connection is being checked to be handed over, what the client sends next waits:
    // sent behind the check, it would keep the connection from the client it was checked for.
    while (this.inbox.length > 0 && !this.closed && !this.blocked && !this.handingOver) {
      const f = this.inbox[0]!;
      if (f.type === 'X') {
        this.inbox = [];
        this.flushClient();
        this.close();
        // PostgreSQL closes the connection on Terminate; a client left open would keep its slot.
        this.host.terminate();
        return;
      }
      if (this.tryProxySetting(f)) {
        this.inbox.shift();
        continue;
      }
      if (!this.server && !this.handleWithoutServer(f)) {
        this.attach();
        this.flushClient();
        return;
      }
      if (this.server && this.attachedReplica && this.needsPrimary(f)) {
        // A write behind reads on a replica: let the replica finish, then move to the primary.
        this.switching = true;
        if (this.pending.length === 0 && this.txStatus === 'I' && this.checkCause === null)
          this.releaseServer();
        else {
          if (this.pending.length === 0 && this.txStatus === 'I') this.checkState(this.server);
          break;
        }
        continue;
      }
      this.inbox.shift();
      if (this.server) {
        // A large message is not kept for a replay: its memory must end once it is forwarded.
        if (this.replay !== null) {
          if (f.bytes.length > LARGE_MESSAGE_BYTES) this.replay = null;
          else this.replay.push(f);
        }
        // A write on the primary: learn the commit position before releasing, even when the
        // connection was attached for something else (a capture already done). Reads that the
        // primary serves (weight, fallback) need none.
        if (!this.needLsn && !this.attachedReplica && this.capturesCommits() && this.classOf(f) === 'write') {
          this.needLsn = true;
        }
        this.forward(f);
      }
    }
    // Do not keep the last Query (and the chunk it views) alive while the client idles.
    this.queryFrame = null;
    this.queryDecoded = null;
    this.flushServer();
    this.flushClient();
  }

  /** Tells the client connection when what it gave us has left the process (message budget). */
  private reportFlushed(): void {
    if (this.inbox.length > 0 || this.blocked) return;
    const s = this.server;
    if (s && (!this.toServer.empty || s.socket.writableNeedDrain)) return;
    this.host.inputFlushed();
  }

  /**
   * A replica went away (shutdown, crash) before this client got any reply: nothing it did there
   * can have had an effect, since reads are all that go to replicas, so the same messages are
   * replayed on another server and the client never notices.
   */
  private retryElsewhere(s: ServerConn): boolean {
    const replica = this.attachedReplica;
    if (!replica || this.replied || this.replay === null || this.txStatus !== 'I' || this.closed)
      return false;
    replica.monitor.healthy = false; // out of the read set until its next good check
    replica.outstanding--;
    const frames = this.replay;
    this.replay = null;
    this.sqlStatements = this.replaySqlStatements;
    this.sqlOwnNames = this.replaySqlOwnNames;
    this.replaySqlStatements = EMPTY_MAP;
    this.toServer.clear();
    this.pending = [];
    this.copyIn = false;
    s.setHandler(null);
    s.setLostHandler(null);
    s.destroy();
    this.server = null;
    this.attachedPool = null;
    this.attachedReplica = null;
    this.inbox.unshift(...frames);
    this.drain();
    return true;
  }

  /** decodeQuery, once per frame (the text is decoded and UTF-8-checked only once). */
  private decodeQuery(f: TypedFrame): ReturnType<typeof decodeQuery> {
    if (this.queryFrame !== f || this.queryDecoded === null) {
      this.queryFrame = f;
      this.queryDecoded = decodeQuery(f.payload);
    }
    return this.queryDecoded;
  }

  // ------------------------------------------------------------------ routing

  private get router(): ReadRouter | null {
    return this.pinned ? null : (this.opts.router ?? null);
  }

  /** The session's own choice (SET pgscale.target / pgscale.consistency), without quotes. */
  private setting(name: string): string | undefined {
    return this.proxySettings.get(name);
  }

  /**
   * `SET pgscale.target = primary` and friends are the proxy's own: answered here (PostgreSQL
   * would even reject the unquoted keyword `primary`), in order with the replies still due.
   */
  private tryProxySetting(f: TypedFrame): boolean {
    if (f.type !== 'Q') return false;
    const q = this.decodeQuery(f);
    if (!q.ok || !/pgscale\./i.test(q.value.query)) return false;
    const effects = cachedEffects(q.value.query);
    if (effects.length !== 1) return false;
    const e = effects[0]!;
    if ((e.kind !== 'set' && e.kind !== 'reset') || !e.name.startsWith('pgscale.')) return false;
    let reply: Buffer;
    if (e.kind === 'set') {
      const v = e.value.replace(/^'(.*)'$/s, '$1').toLowerCase();
      const allowed = PROXY_SETTINGS[e.name];
      if (!allowed || !allowed.includes(v)) {
        reply = buildErrorResponse(
          'ERROR',
          SqlState.INVALID_PARAMETER_VALUE,
          allowed
            ? `invalid value for parameter "${e.name}": "${v}" (accepted: ${allowed.join(', ')})`
            : `unrecognized configuration parameter "${e.name}"`,
        );
      } else {
        this.ownProxySettings().set(e.name, v);
        reply = commandComplete('SET');
      }
    } else {
      // RESET goes back to the start-up value, as PostgreSQL's RESET does.
      const v = this.opts.startupProxySettings?.get(e.name);
      if (v !== undefined) this.ownProxySettings().set(e.name, v);
      else this.ownProxySettings().delete(e.name);
      reply = commandComplete('RESET');
    }
    const bytes = Buffer.concat([reply, readyForQuery(this.txStatus)]);
    if (this.pending.length > 0) this.pending.push({ k: 'synthetic', bytes });
    else this.out.add(bytes);
    return true;
  }

  private consistency(): Consistency {
    const v = this.setting('pgscale.consistency') as Consistency | undefined;
    return v !== undefined && CONSISTENCY_LEVELS.includes(v)
      ? v
      : (this.opts.consistency ?? 'read-your-writes');
  }

  /**
   * Whether the WAL position after this client's write transactions is learnt: for its own later
   * reads (read-your-writes and up) and for the proxy's commit horizon (causal reads of every
   * client). A client at eventual skips it, unless the proxy's level is causal.
   */
  private capturesCommits(): boolean {
    if (this.router === null && !this.opts.horizon) return false;
    return this.consistency() !== 'eventual' || this.opts.consistency === 'causal';
  }

  /**
   * Asks the primary's WAL position after a write transaction, on the same connection before
   * anyone else can use it. Registered with the commit horizon in the same turn of the event loop
   * as the commit's ReadyForQuery is queued for the client: no client can have heard of the commit
   * before a causal read would wait for this answer (CommitHorizon.settled).
   */
  private captureCommit(): void {
    this.needLsn = false;
    this.ownQueryDestroysUnnamed();
    this.sendToServer(queryMessage('SELECT pg_current_wal_lsn()'));
    this.pending.push({
      k: 'query',
      swallow: true,
      failed: false,
      wasInBlock: false,
      captureLsn: true,
      capture: this.opts.horizon?.beginCapture() ?? 0,
      lsn: null,
    });
    this.flushServer();
  }

  /** The connection is gone with captures unanswered: the horizon stops waiting for them. */
  private abandonCaptures(): void {
    const h = this.opts.horizon;
    if (!h) return;
    for (const p of this.pending) if (p.k === 'query' && p.capture) h.endCapture(p.capture, null);
  }

  /** 'read' when the message may run on a replica, 'write' when it must run on the primary, else null. */
  private classOf(f: TypedFrame): 'read' | 'write' | null {
    const classifier = this.opts.classifier;
    if (!classifier) return 'write';
    let sql: string | null = null;
    if (f.type === 'Q') {
      const q = this.decodeQuery(f);
      if (q.ok) sql = q.value.query;
    } else if (f.type === 'P') {
      const p = decodeParse(f.payload);
      if (p.ok) sql = p.value.query;
    } else if (f.type === 'B') {
      const b = decodeBind(f.payload);
      if (b.ok && b.value.statement !== '') {
        const st = this.statements.get(b.value.statement);
        return st ? (st.read ? 'read' : 'write') : null;
      }
      return null;
    } else if (f.type === 'F') {
      return 'write';
    } else {
      return null;
    }
    if (sql === null) return 'write';
    const c = classifier.classify(sql);
    const target = c.hint ?? this.setting('pgscale.target') ?? 'any';
    if (target === 'primary') return 'write';
    if (target === 'replica') return 'read';
    if (c.cls === 'read' || c.cls === 'transaction-begin-read-only') return 'read';
    if (c.cls === 'session' || c.cls === 'transaction-end') return null;
    return 'write';
  }

  private needsPrimary(f: TypedFrame): boolean {
    return this.classOf(f) === 'write';
  }

  /** Where the next attachment goes: a replica only if what is queued is all reads (or neutral). */
  private wantsReplica(): boolean {
    if (!this.router || this.consistency() === 'primary') return false;
    let reads = 0;
    for (const f of this.inbox) {
      const c = this.classOf(f);
      if (c === 'write') return false;
      if (c === 'read') reads++;
    }
    return reads > 0;
  }

  /**
   * Answers what needs no server when none is attached; false when a server is needed. The
   * caller takes the message off the inbox either way.
   */
  private handleWithoutServer(f: TypedFrame): boolean {
    if (f.type === 'C') {
      const c = decodeClose(f.payload);
      if (c.ok && c.value.target === 'statement' && c.value.targetName !== '') {
        this.ownStatements().delete(c.value.targetName);
        this.out.add(CLOSE_COMPLETE);
        return true;
      }
    }
    if (f.type === 'Q' && this.opts.listeners && this.txStatus === 'I') {
      const q = this.decodeQuery(f);
      if (q.ok && this.tryListen(q.value.query)) {
        return true;
      }
    }
    if (f.type === 'H') {
      return true;
    }
    if (f.type === 'P' && !this.pinned && this.txStatus === 'I') {
      // A statement some connection of the pool has already prepared: answer here and prepare
      // it on whichever connection the Bind lands (pgbench and pgjdbc prepare with a blocking
      // Parse+Sync; needing a server just to say ParseComplete can deadlock a busy pool).
      const p = decodeParse(f.payload);
      if (p.ok && p.value.statement !== '') {
        const serverName = protocolStatementName(
          p.value.query,
          p.value.paramTypes,
          this.tagOf(p.value.query),
        );
        if (this.opts.pool.knownStatements.has(serverName)) {
          this.ownStatements().set(p.value.statement, {
            serverName,
            parse: renameParse(f.payload, serverName),
            effects: this.extendedEffects(p.value.query),
            risk: cachedRisk(p.value.query),
            ddl: isDdl(p.value.query),
            seq: SEQUENCE_CALL.test(p.value.query),
            read: this.classOf(f) === 'read',
          });
          this.out.add(PARSE_COMPLETE);
          return true;
        }
      }
    }
    if (f.type === 'S' && this.txStatus === 'I' && this.pending.length === 0) {
      // Nothing is running: a Sync alone only asks for ReadyForQuery.
      this.out.add(readyForQuery('I'));
      return true;
    }
    return false;
  }

  /** LISTEN/UNLISTEN alone in a Query outside a transaction: served by the fan-out connection. */
  private tryListen(sql: string): boolean {
    const hub = this.opts.listeners;
    if (!hub) return false;
    if (!/listen/i.test(sql)) return false;
    // The fan-out connection speaks UTF8: a client in another encoding listens on its own
    // connection (pinned), so channel names and payloads reach it in its encoding.
    if (sessionEncoding(this.txSettings, this.settings, this.opts.startupSettings) !== '') return false;
    const effects = cachedEffects(sql);
    if (effects.length !== 1) return false;
    const e = effects[0]!;
    if (e.kind === 'listen') {
      this.ownChannels().add(e.channel);
      this.blocked = true;
      this.host.pauseReading(ReadPause.listen);
      void hub.subscribe(e.channel, this).then((ok) => {
        this.blocked = false;
        if (this.closed) return;
        this.host.resumeReading(ReadPause.listen);
        this.out.add(
          ok
            ? commandComplete('LISTEN')
            : buildErrorResponse(
                'ERROR',
                SqlState.CONNECTION_FAILURE,
                'LISTEN failed: the listener connection is unavailable',
              ),
        );
        this.out.add(readyForQuery('I'));
        this.drain();
        this.flushClient();
      });
      return true;
    }
    if (e.kind === 'unlisten') {
      if (e.channel === '*') {
        for (const ch of this.channels) hub.unsubscribe(ch, this);
        this.channels = EMPTY_SET;
      } else {
        this.ownChannels().delete(e.channel);
        hub.unsubscribe(e.channel, this);
      }
      this.out.add(commandComplete('UNLISTEN'));
      this.out.add(readyForQuery('I'));
      return true;
    }
    return false;
  }

  /** A notification from the fan-out connection. */
  deliverNotification(bytes: Buffer): void {
    this.out.add(bytes);
    if (!this.server || this.pending.length === 0) this.flushClient();
  }

  private attach(): void {
    if (this.acquiring || this.closed) return;
    this.acquiring = true;
    const t0 = now();
    const router = this.router;
    if (router && this.wantsReplica()) {
      const consistency = this.consistency();
      const horizon = this.opts.horizon ?? null;
      if (consistency === 'linearizable' && horizon) {
        // Where the primary stands now (one question per batch of reads), then a replica there.
        void horizon.position().then((pos) => {
          if (pos === null) return this.acquireFrom(this.opts.pool, null, t0);
          const minLsn = laterLsn(pos, this.wroteLsn);
          return router
            .forRead(consistency, minLsn)
            .then(({ pool, replica }) => this.acquireFrom(pool, replica, t0));
        });
        return;
      }
      if (consistency === 'causal' && horizon) {
        // Commits whose position is being asked may already be acknowledged: wait for those.
        const settled = horizon.settled(router.settings.rywWaitMs);
        if (settled) {
          void settled.then((ok) =>
            ok
              ? this.routeRead(router, consistency, laterLsn(this.wroteLsn, horizon.lsn), t0)
              : this.acquireFrom(this.opts.pool, null, t0),
          );
          return;
        }
      }
      const minLsn =
        consistency === 'eventual'
          ? null
          : consistency === 'causal'
            ? laterLsn(this.wroteLsn, horizon?.lsn ?? null)
            : this.wroteLsn;
      this.routeRead(router, consistency, minLsn, t0);
    } else {
      this.acquireFrom(this.opts.pool, null, t0);
    }
  }

  /** A read to a replica that has replayed `minLsn` (now, or after a bounded wait), or the primary. */
  private routeRead(router: ReadRouter, consistency: Consistency, minLsn: bigint | null, t0: number): void {
    const now = router.readNow(consistency, minLsn);
    if (now) this.acquireFrom(now.pool, now.replica, t0);
    else
      void router
        .forRead(consistency, minLsn)
        .then(({ pool, replica }) => this.acquireFrom(pool, replica, t0));
  }

  /**
   * Stops reading the client while it waits for a server (its messages queue in the kernel).
   * Called only once the client sends more while waiting: most clients send one request and wait
   * for its reply, and pausing and resuming a socket costs a nextTick and two events per wait.
   */
  private pauseClient(): void {
    if (this.paused) return;
    this.paused = true;
    this.host.pauseReading(ReadPause.waitingForServer);
  }

  private acquireFrom(pool: Pool, replica: ReplicaTarget | null, t0: number): void {
    const ready = pool.tryAcquire();
    if (ready) {
      this.onAcquired(pool, replica, t0, ready);
      return;
    }
    pool.acquireThen(
      (server) => this.onAcquired(pool, replica, t0, server),
      (e: unknown) => {
        if (replica && !this.closed) {
          // The replica cannot take a connection: the primary serves the read.
          replica.monitor.healthy = false;
          this.acquireFrom(this.opts.pool, null, t0);
          return;
        }
        this.acquiring = false;
        const fatal =
          e instanceof ServerLoginError
            ? e.errorResponse
            : buildErrorResponse('FATAL', SqlState.CONNECTION_FAILURE, 'could not get a server connection');
        this.host.terminate(fatal);
      },
    );
  }

  private onAcquired(pool: Pool, replica: ReplicaTarget | null, t0: number, server: ServerConn): void {
    this.acquiring = false;
    this.counters.waitUs += Math.round((now() - t0) * 1000);
    if (this.closed) {
      pool.release(server);
      return;
    }
    this.server = server;
    this.attachedPool = pool;
    this.attachedReplica = replica;
    this.switching = false;
    this.replay = replica ? [] : null;
    // A replay forwards the same PREPAREs again: they must not meet the records they made.
    if (replica) {
      this.replaySqlStatements = this.sqlStatements.size === 0 ? EMPTY_MAP : new Map(this.sqlStatements);
      this.replaySqlOwnNames = this.sqlOwnNames;
    }
    this.replied = false;
    if (replica) {
      replica.outstanding++;
      replica.readsServed++;
      this.routing.replica++;
    } else {
      this.routing.primary++;
    }
    this.attachedAt = now();
    this.unnamedHere = false;
    server.setHandler(this.onServerFramesBound);
    server.setLostHandler(() => this.onServerLost(server));
    this.syncSettings(server);
    if (this.paused) {
      this.paused = false;
      this.host.resumeReading(ReadPause.waitingForServer);
    }
    this.drain();
  }

  /** The encoding tag for a statement name of this text (client-encoding.ts). */
  private tagOf(text: string): string {
    return encodingTag(text, this.txSettings, this.settings, this.opts.startupSettings);
  }

  /** Replays the client's session settings on a connection that holds other ones. */
  private syncSettings(server: ServerConn): void {
    if (sameSettings(server.settings, this.settings)) return; // the usual case: nothing to send
    const stmts: string[] = [];
    for (const k of server.settings.keys()) {
      if (!this.settings.has(k)) stmts.push(`RESET ${quoteName(k)}`);
    }
    for (const [k, v] of this.settings) {
      if (server.settings.get(k) !== v) stmts.push(`SET ${quoteName(k)} = ${v}`);
    }
    if (stmts.length === 0) return;
    server.settings = new Map(this.settings);
    // The server reads a Query in the encoding in force when it arrives: the client's encoding
    // goes first, alone, so that the values after it are read as the client wrote them.
    const enc = stmts.findIndex((x) => /^(SET|RESET) "?client_encoding\b/.test(x));
    if (enc >= 0 && stmts.length > 1) {
      this.sendToServer(queryMessage(stmts.splice(enc, 1)[0]!));
      this.pending.push({ k: 'query', swallow: true, failed: false, wasInBlock: false });
    }
    this.sendToServer(queryMessage(stmts.join('; ')));
    this.pending.push({ k: 'query', swallow: true, failed: false, wasInBlock: false });
  }

  /**
   * Queues bytes for the attached server; flushServer() writes them. A pipeline's messages
   * (Bind, Describe, Execute, Sync…) that arrived in one chunk thus leave in one write.
   */
  private sendToServer(buf: Buffer): void {
    this.opts.pool.stats.bytesReceived += buf.length;
    this.toServer.add(buf);
  }

  private flushServer(): void {
    const s = this.server;
    if (!s || this.toServer.empty) return this.reportFlushed();
    if (!this.toServer.flush(s.socket)) {
      // The server reads slower than the client writes: stop reading the client until it drains.
      this.host.pauseReading(ReadPause.serverBusy);
      s.socket.once('drain', () => {
        this.host.resumeReading(ReadPause.serverBusy);
        if (!this.closed) this.reportFlushed();
      });
      return;
    }
    this.reportFlushed();
  }

  private forward(f: TypedFrame): void {
    const server = this.server!;
    if (this.pinned && !this.sqlOwnNames) this.ownSqlNames();
    switch (f.type) {
      case 'Q':
        return this.forwardQuery(f, server);
      case 'P':
        return this.forwardParse(f, server);
      case 'B': {
        const b = decodeBind(f.payload);
        if (b.ok) {
          const eff =
            b.value.statement === ''
              ? this.unnamedEffects
              : (this.statements.get(b.value.statement)?.effects ?? []);
          if (eff.length > 0) this.ownPortalEffects().set(b.value.portal, eff);
          else this.ownPortalEffects().delete(b.value.portal);
          const risk =
            b.value.statement === ''
              ? this.unnamedRisk
              : (this.statements.get(b.value.statement)?.risk ?? null);
          const hidden = this.opts.hiddenCode;
          const named = b.value.statement !== '';
          if (hidden && (named ? this.statements.get(b.value.statement)?.ddl : this.unnamedDdl))
            this.ddlInTx = true;
          if (this.checkCause === null && !this.pinned) {
            // The text is needed only when some relation of the database hides code.
            const text =
              hidden && (this.ddlInTx || !hidden.empty)
                ? named
                  ? this.statementText(b.value.statement)
                  : this.unnamedText
                : '';
            this.checkCause =
              risk ??
              (text ? hidden!.riskOfText(text, this.ddlInTx) : null) ??
              (this.shadowsBuiltins() ? SHADOWED : null);
          }
          if (!this.seqDirty && !this.pinned) {
            const st = named ? this.statements.get(b.value.statement) : undefined;
            if (named ? st?.seq : this.unnamedSeq) this.seqDirty = true;
            else if (hidden?.mayHaveSequences)
              this.seqDirty = this.writesSequenceRelation(
                named ? this.statementText(b.value.statement) : this.unnamedText,
              );
          }
          if (!named) {
            this.reparseUnnamed();
            this.unnamedFrame = null;
          }
        }
        if (b.ok && b.value.statement !== '') {
          const name = this.ensurePrepared(b.value.statement, server);
          if (name) {
            this.sendToServer(renameBind(f.payload, name));
            this.pending.push({ k: 'bind' });
            return;
          }
        }
        this.sendToServer(f.bytes);
        this.pending.push({ k: 'bind' });
        return;
      }
      case 'D': {
        const d = decodeDescribe(f.payload);
        const statement = d.ok && d.value.target === 'statement';
        if (statement && d.value.targetName === '') this.reparseUnnamed();
        if (d.ok && statement && d.value.targetName !== '') {
          const name = this.ensurePrepared(d.value.targetName, server);
          if (name) {
            this.sendToServer(renameTarget('D', name));
            this.pending.push({ k: 'describe', statement, sawDescription: false });
            return;
          }
        }
        this.sendToServer(f.bytes);
        this.pending.push({ k: 'describe', statement, sawDescription: false });
        return;
      }
      case 'C': {
        const c = decodeClose(f.payload);
        if (
          c.ok &&
          c.value.target === 'statement' &&
          c.value.targetName !== '' &&
          this.opts.mode === 'session'
        ) {
          // The client's own connection: the name is the server's.
          if (this.statements.has(c.value.targetName)) this.ownStatements().delete(c.value.targetName);
          this.sendToServer(f.bytes);
          this.pending.push({ k: 'close', swallow: false });
          return;
        }
        if (c.ok && c.value.target === 'statement' && c.value.targetName !== '') {
          // Server statements are shared by text; the client's name just goes away.
          this.ownStatements().delete(c.value.targetName);
          this.pending.push({ k: 'synthetic', bytes: CLOSE_COMPLETE });
          this.emitSynthetic();
          return;
        }
        this.sendToServer(f.bytes);
        this.pending.push({ k: 'close', swallow: false });
        return;
      }
      case 'E': {
        let eff: SessionEffect[] | undefined;
        if (this.portalEffects.size > 0) {
          const portal = decodeText(f.payload.subarray(0, Math.max(0, f.payload.indexOf(0))));
          eff = this.portalEffects.get(portal);
          if (eff) this.txSettings.push(...eff);
        }
        // A query is counted when it runs (each Execute), not when it is prepared (Parse).
        this.counters.queries++;
        this.opts.pool.stats.queries++;
        this.sendToServer(f.bytes);
        this.pending.push({ k: 'execute' });
        if (eff) this.restoreAfterExecute(eff);
        return;
      }
      case 'S':
        this.sendToServer(f.bytes);
        // PostgreSQL ignores Sync during COPY IN from an extended-protocol Execute.
        if (!this.copyIn) this.pending.push({ k: 'sync' });
        return;
      case 'H':
        this.sendToServer(f.bytes);
        return;
      case 'd':
        this.sendToServer(f.bytes);
        return;
      case 'c':
      case 'f':
        this.sendToServer(f.bytes);
        this.pending.push({ k: 'copy-end' });
        return;
      case 'F':
        // A fast-path function call runs whatever function the client names.
        this.checkCause ??= 'FunctionCall message';
        this.sendToServer(f.bytes);
        this.pending.push({ k: 'query', swallow: false, failed: false, wasInBlock: this.txStatus !== 'I' });
        return;
      default:
        this.host.terminate(
          buildErrorResponse(
            'FATAL',
            SqlState.PROTOCOL_VIOLATION,
            `invalid frontend message type "${f.type}"`,
          ),
        );
    }
  }

  private forwardQuery(f: TypedFrame, server: ServerConn): void {
    const q = this.decodeQuery(f);
    if (!q.ok) {
      this.host.terminate(buildErrorResponse('FATAL', q.sqlstate, q.message));
      return;
    }
    let sql = q.value.query;
    const effects = cachedEffects(sql);
    const refused = effects.map(refusedEncodingSet).find((c) => c !== null);
    if (refused) {
      // An encoding the proxy cannot analyse: the server refuses the SET (see client-encoding.ts).
      this.sendToServer(queryMessage(refusedEncodingQuery(refused)));
      this.pending.push({ k: 'query', swallow: false, failed: false, wasInBlock: this.txStatus !== 'I' });
      return;
    }
    let restoreAfter = false;
    if (!this.sqlOwnNames) this.pinForSqlNames(sql, effects);
    // A simple Query destroys the unnamed statement (PostgreSQL protocol docs, Parse).
    this.unnamedFrame = null;
    this.unnamedSaved = null;
    this.unnamedHere = false;
    /** Per statement of this text: the server name its prepared-statement name becomes. */
    let renames: (string | undefined)[] | null = null;
    /** Record changes of this text, undone from the statement that fails (prepared-sql.ts). */
    let ops: SqlOp[] | null = null;
    for (let i = 0; i < effects.length; i++) {
      const e = effects[i]!;
      switch (e.kind) {
        case 'set':
        case 'reset':
          this.txSettings.push(e);
          break;
        case 'reset_all':
          this.txSettings.push(e);
          this.proxySettings = this.opts.startupProxySettings ?? EMPTY_MAP;
          break;
        case 'prepare': {
          if (this.sqlOwnNames) break;
          const known = this.sqlStatements.get(e.name);
          if (known) {
            // The client already has this name: the server says 42P05 for it (renamed back).
            this.ensureSqlPrepared(e.name, server);
            (renames ??= [])[i] = known.serverName;
            break;
          }
          const serverName = sqlStatementName(e.name, e.text, this.tagOf(e.text));
          (ops ??= []).push({ index: i, name: e.name, before: undefined, serverName, prepare: true });
          this.ownSqlStatements().set(e.name, {
            serverName,
            prepare: renameIn(e.text, e.name, serverName),
            // The whole Query when it holds only this statement: the server shows that text.
            original: effects.length === 1 ? q.value.query : e.text,
          });
          (renames ??= [])[i] = serverName;
          if (server.prepared.has(serverName)) {
            this.sendToServer(queryMessage(`DEALLOCATE ${serverName}`));
            this.pending.push({ k: 'query', swallow: true, failed: false, wasInBlock: false });
          }
          server.prepared.set(serverName, true);
          break;
        }
        case 'execute':
          if (!this.sqlOwnNames && this.ensureSqlPrepared(e.name, server))
            (renames ??= [])[i] = this.sqlStatements.get(e.name)!.serverName;
          break;
        case 'deallocate':
          if (e.name === null) {
            // DEALLOCATE ALL drops protocol-level statements too.
            this.sqlStatements = EMPTY_MAP;
            this.statements = EMPTY_MAP;
            server.prepared.clear();
          } else if (!this.sqlOwnNames) {
            const s = this.sqlStatements.get(e.name);
            if (s && this.ensureSqlPrepared(e.name, server)) {
              (ops ??= []).push({
                index: i,
                name: e.name,
                before: s,
                serverName: s.serverName,
                prepare: false,
              });
              (renames ??= [])[i] = s.serverName;
              server.prepared.delete(s.serverName);
              this.ownSqlStatements().delete(e.name);
            }
          }
          break;
        case 'discard':
          if (e.what === 'all') {
            // Forgotten only once the server says DISCARD ALL ran: inside a transaction block it
            // fails (25001) and the connection keeps every statement (onCommandComplete).
            this.discardAllSent = true;
            this.txSettings.push({ kind: 'reset_all' });
            this.proxySettings = this.opts.startupProxySettings ?? EMPTY_MAP;
            restoreAfter = true;
          } else if (e.what === 'sequences') {
            // The client dropped its own sequence state: nothing left to keep for it.
            this.seqDirty = false;
          }
          break;
        case 'listen':
          this.pin('LISTEN');
          break;
        case 'sticky':
          this.pin(e.reason);
          break;
        default:
          break;
      }
    }
    const hidden = this.opts.hiddenCode;
    if (hidden && isDdl(sql)) this.ddlInTx = true;
    if (!this.pinned && this.checkCause === null) {
      this.checkCause =
        cachedRisk(sql) ??
        hidden?.riskOfText(sql, this.ddlInTx) ??
        (mayHideEffects(sql) && this.shadowsBuiltins() ? SHADOWED : null);
    }
    if (!this.pinned && !this.seqDirty) this.seqDirty = this.mayUseSequence(sql);
    let renamed: RenamedText | undefined;
    if (renames !== null) {
      const r = renamePreparedRefsAt(sql, (_name, i) => renames[i]);
      sql = r.text;
      renamed = { names: new Map(), spans: r.spans, ops };
      renames.forEach((serverName, i) => {
        const e = effects[i];
        if (serverName !== undefined && e && 'name' in e && e.name !== null)
          renamed!.names.set(serverName, e.name);
      });
    }
    // RESET restores the client's start-up values, not the server connection's (reset-rewrite.ts).
    // Applied after the renaming, which keeps the statements where they are; the positions of an
    // error in a text doing both are then approximate.
    const resets = rewriteResets(sql, effects, this.opts.startupSettings);
    if (resets) sql = resets.sql;
    this.sendToServer(renames !== null || resets ? queryMessage(sql) : f.bytes);
    this.counters.queries++;
    this.opts.pool.stats.queries++;
    this.queryStartedAt = now();
    if (this.txStatus !== 'I' && COMMIT_TEXT.test(sql)) this.commitInFlight = true;
    this.pending.push({
      k: 'query',
      swallow: false,
      failed: false,
      wasInBlock: this.txStatus !== 'I',
      ...(resets ? { tags: resets.tags } : {}),
      ...(renamed ? { renamed, completed: 0 } : {}),
    });
    // DISCARD ALL runs alone (never in a multi-statement text): the start-up values follow it.
    if (restoreAfter) this.sendRestore();
  }

  /**
   * An extended-protocol RESET cannot be rewritten into several statements: the start-up values
   * follow its Execute as a Query, before the client's Sync. If the Execute fails, the server skips
   * that Query with everything else up to the Sync (onExtendedError drops its entry too). A Query
   * ends the implicit transaction of the messages before it, so in a pipeline without BEGIN the
   * statements before the RESET are committed at that point rather than at the Sync.
   */
  private restoreAfterExecute(eff: readonly SessionEffect[]): void {
    if (eff.some((e) => e.kind === 'reset_all')) {
      this.proxySettings = this.opts.startupProxySettings ?? EMPTY_MAP;
      return this.sendRestore();
    }
    const names: string[] = [];
    for (const e of eff) if (e.kind === 'reset') names.push(e.name);
    if (names.length > 0) this.sendRestore(names);
  }

  /**
   * Gives the attached connection the client's start-up values right behind a DISCARD ALL or an
   * extended-protocol RESET (reset-rewrite.ts), in the same round trip; the replies are swallowed.
   */
  private sendRestore(names?: readonly string[]): void {
    const startup = this.opts.startupSettings;
    let stmts: string[];
    if (names) {
      stmts = [];
      for (const n of names) {
        const v = restoreValue(startup, n);
        if (v !== undefined) stmts.push(`SET ${quoteName(n)} TO ${v}`);
      }
    } else stmts = restoreStatements(startup);
    if (stmts.length === 0) return;
    this.ownQueryDestroysUnnamed();
    // The encoding goes alone, first: the server reads a Query in the encoding in force on arrival.
    if (stmts.length > 1 && stmts[0]!.startsWith('SET client_encoding')) {
      this.sendToServer(queryMessage(stmts.shift()!));
      this.pending.push({ k: 'query', swallow: true, failed: false, wasInBlock: false });
    }
    this.sendToServer(queryMessage(stmts.join('; ')));
    this.pending.push({ k: 'query', swallow: true, failed: false, wasInBlock: false });
  }

  private forwardParse(f: TypedFrame, server: ServerConn): void {
    const p = decodeParse(f.payload);
    if (!p.ok) {
      this.host.terminate(buildErrorResponse('FATAL', p.sqlstate, p.message));
      return;
    }
    const effects = this.extendedEffects(p.value.query);
    if (!this.sqlOwnNames) {
      // A text that may reach the client's renamed SQL statements by their own names.
      if (!this.pinned && this.sqlStatements.size > 0 && runsUserCode(p.value.query))
        this.pin(SQL_NAMES_IN_USER_CODE);
      if (!this.pinned && LISTS_STATEMENTS.test(p.value.query)) this.pin(LISTS_STATEMENTS_REASON);
      if (this.pinned) this.ownSqlNames();
    }
    const risk = this.pinned ? null : cachedRisk(p.value.query);
    if (p.value.statement === '') {
      this.unnamedEffects = effects;
      this.unnamedRisk = risk;
      const hidden = this.opts.hiddenCode;
      this.unnamedDdl = hidden ? isDdl(p.value.query) : false;
      this.unnamedSeq = SEQUENCE_CALL.test(p.value.query);
      this.unnamedText =
        hidden && (this.unnamedDdl || this.ddlInTx || !hidden.empty || hidden.mayHaveSequences)
          ? p.value.query
          : '';
      // Kept in both modes: a Query of the proxy's own (a commit position) may destroy it on this
      // very connection, and psql describes it in a round trip of its own (ownQueryDestroysUnnamed).
      this.unnamedFrame = f;
      this.unnamedSaved = null;
      this.unnamedHere = true;
      this.sendToServer(f.bytes);
      this.pending.push({ k: 'parse', swallow: false, serverName: null });
      return;
    }
    if (this.opts.mode === 'session') {
      // The client owns its connection: its names are the server's, and a second Parse of a name
      // gets PostgreSQL's own 42P05. Only the effects are kept (a SET run through a portal).
      const name = p.value.statement;
      if (!this.statements.has(name))
        this.ownStatements().set(name, {
          serverName: name,
          parse: NO_BYTES,
          effects,
          risk: null,
          ddl: false,
          seq: false,
          read: false,
        });
      this.sendToServer(f.bytes);
      this.pending.push({ k: 'parse', swallow: false, serverName: null });
      return;
    }
    const serverName = protocolStatementName(p.value.query, p.value.paramTypes, this.tagOf(p.value.query));
    const parse = renameParse(f.payload, serverName);
    this.ownStatements().set(p.value.statement, {
      serverName,
      parse,
      effects,
      risk,
      ddl: isDdl(p.value.query),
      seq: SEQUENCE_CALL.test(p.value.query),
      read: this.classOf(f) === 'read',
    });
    if (server.prepared.has(serverName)) {
      server.prepared.delete(serverName);
      server.prepared.set(serverName, true); // most recently used
      this.pending.push({ k: 'synthetic', bytes: PARSE_COMPLETE });
      this.emitSynthetic();
      return;
    }
    this.evictIfFull(server);
    server.prepared.set(serverName, true);
    this.sendToServer(parse);
    this.pending.push({ k: 'parse', swallow: false, serverName });
  }

  /**
   * Session effects of an extended-protocol statement. SET/RESET are replayed like simple-protocol
   * ones (once executed); LISTEN and untrackable state pin the connection right away, since the
   * reply of a Parse cannot be faked into a fan-out subscription.
   */
  private extendedEffects(query: string): SessionEffect[] {
    const effects = cachedEffects(query);
    const tracked: SessionEffect[] = [];
    for (const e of effects) {
      if (e.kind === 'set' || e.kind === 'reset' || e.kind === 'reset_all') tracked.push(e);
      else if (e.kind === 'sticky') this.pin(e.reason);
      else if (e.kind === 'listen') this.pin('LISTEN (extended protocol)');
      else if (e.kind === 'execute' && this.sqlStatements.has(e.name))
        this.pin('EXECUTE of an SQL prepared statement (extended protocol)');
      else if (
        e.kind === 'prepare' ||
        e.kind === 'deallocate' ||
        (e.kind === 'discard' && e.what === 'all')
      ) {
        this.pin(`${e.kind.toUpperCase()} (extended protocol)`);
        // DISCARD ALL resets every setting too: to the client's start-up values (restoreAfterExecute).
        if (e.kind === 'discard') tracked.push({ kind: 'reset_all' });
      }
    }
    return tracked;
  }

  /** Makes sure the attached connection holds the client's statement; returns its server name. */
  private ensurePrepared(clientName: string, server: ServerConn): string | null {
    if (this.opts.mode === 'session') return null; // the client's names are the server's
    const st = this.statements.get(clientName);
    if (!st) return null; // unknown to us: the server will report 26000 itself
    if (server.prepared.has(st.serverName)) return st.serverName;
    this.evictIfFull(server);
    server.prepared.set(st.serverName, true);
    this.sendToServer(st.parse);
    this.pending.push({ k: 'parse', swallow: true, serverName: st.serverName });
    return st.serverName;
  }

  /**
   * Pins the client before a text the renaming cannot stay invisible to: state that pins anyway,
   * or user code (a DO block, a function, CALL) that may name one of its SQL prepared statements
   * in dynamic SQL, where the proxy cannot rename. A pinned client's statements then get their
   * own names on its connection (ownSqlNames).
   */
  private pinForSqlNames(sql: string, effects: readonly SessionEffect[]): void {
    if (!this.pinned) {
      for (const e of effects) {
        if (e.kind === 'sticky') this.pin(e.reason);
        else if (e.kind === 'listen') this.pin('LISTEN');
      }
      if (!this.pinned && this.sqlStatements.size > 0 && runsUserCode(sql)) this.pin(SQL_NAMES_IN_USER_CODE);
      if (!this.pinned && LISTS_STATEMENTS.test(sql)) this.pin(LISTS_STATEMENTS_REASON);
    }
    if (this.pinned) this.ownSqlNames();
  }

  /**
   * The client is pinned to its connection for good: its SQL prepared statements are prepared there
   * under the names it gave them, and from now on its PREPARE, EXECUTE and DEALLOCATE pass
   * through untouched, as in session mode.
   */
  private ownSqlNames(): void {
    this.sqlOwnNames = true;
    const server = this.server;
    let sent = false;
    if (server && server.prepared.size > 0) {
      // The connection is the client's until its reset: what other clients and the renaming left
      // there goes, so that pg_prepared_statements lists the client's statements once, under its
      // names (its protocol-level ones are parsed again when next used).
      this.sendToServer(queryMessage('DEALLOCATE ALL'));
      this.pending.push({ k: 'query', swallow: true, failed: false, wasInBlock: false });
      server.prepared.clear();
      sent = true;
    }
    for (const st of this.sqlStatements.values()) {
      // Alone in its Query: pg_prepared_statements shows the whole text that prepared it.
      this.sendToServer(queryMessage(st.original));
      this.pending.push({ k: 'query', swallow: true, failed: false, wasInBlock: false });
      sent = true;
    }
    this.sqlStatements = EMPTY_MAP;
    if (!sent) return;
    this.ownQueryDestroysUnnamed();
  }

  /**
   * A Query of the proxy's own (a commit position, start-up values, a state check) destroys the
   * client's unnamed statement on the server: parse it again if the client still uses it (psql's
   * `\gdesc` describes it in a round trip of its own, after such a Query may have run).
   */
  private ownQueryDestroysUnnamed(): void {
    if (this.unnamedFrame !== null && this.unnamedFrame.bytes.length <= LARGE_MESSAGE_BYTES)
      this.unnamedSaved = Buffer.from(this.unnamedFrame.bytes);
    this.unnamedFrame = null;
    this.unnamedHere = false;
  }

  /** Parses the client's unnamed statement again on a connection that does not hold it. */
  private reparseUnnamed(): void {
    if (this.unnamedHere || this.unnamedSaved === null) return;
    this.unnamedHere = true;
    this.sendToServer(this.unnamedSaved);
    this.pending.push({ k: 'parse', swallow: true, serverName: null });
  }

  /** The statements of `failedAt` and after did not run: their record changes are undone. */
  private undoSqlOps(ops: readonly SqlOp[], failedAt: number): void {
    const server = this.server;
    for (let i = ops.length - 1; i >= 0; i--) {
      const op = ops[i]!;
      if (op.index < failedAt) break;
      if (op.before) this.ownSqlStatements().set(op.name, op.before);
      else if (this.sqlStatements.has(op.name)) this.ownSqlStatements().delete(op.name);
      // A failed PREPARE left no statement (a stale copy was deallocated first); a DEALLOCATE
      // that did not run left it in place.
      if (op.prepare) server?.prepared.delete(op.serverName);
      else server?.prepared.set(op.serverName, true);
    }
  }

  /** A write that may reach a relation whose column takes a sequence value (defaults, identity). */
  private writesSequenceRelation(text: string): boolean {
    const hidden = this.opts.hiddenCode;
    if (!hidden || text === '') return false;
    if (!hidden.sequenceRiskOfText(text, this.ddlInTx)) return false;
    const c = this.opts.classifier?.classify(text);
    return c === undefined || c.cls !== 'read';
  }

  /** Running `sql` may leave sequence state in the server's session (see seqDirty). */
  private mayUseSequence(sql: string): boolean {
    if (SEQUENCE_CALL.test(sql)) return true;
    return this.opts.hiddenCode?.mayHaveSequences === true && this.writesSequenceRelation(sql);
  }

  private ensureSqlPrepared(clientName: string, server: ServerConn): boolean {
    const st = this.sqlStatements.get(clientName);
    if (!st) return false;
    if (!server.prepared.has(st.serverName)) {
      server.prepared.set(st.serverName, true);
      this.sendToServer(queryMessage(st.prepare));
      this.pending.push({ k: 'query', swallow: true, failed: false, wasInBlock: false });
    }
    return true;
  }

  private evictIfFull(server: ServerConn): void {
    const max = this.opts.maxPreparedStatements;
    if (max <= 0) return;
    while (server.prepared.size >= max) {
      const oldest = server.prepared.keys().next().value as string;
      server.prepared.delete(oldest);
      if (oldest.startsWith('pgscale_s_')) {
        this.sendToServer(queryMessage(`DEALLOCATE ${oldest}`));
        this.pending.push({ k: 'query', swallow: true, failed: false, wasInBlock: false });
      } else {
        this.sendToServer(renameTarget('C', oldest));
        this.pending.push({ k: 'close', swallow: true });
      }
    }
  }

  private pin(reason: string): void {
    if (!this.pinned) {
      this.pinned = true;
      this.pinReason = reason;
    }
    if (this.server) this.server.needsReset = true;
  }

  // ------------------------------------------------------------------ server → client

  private onServerFrames(frames: TypedFrame[]): void {
    if (TRACE)
      process.stderr.write(
        `S>C${this.host.id} ${frames
          .map((f) => f.type)
          .join('')
          .replace(/D{5,}/g, 'D…')} pending=${this.pending.map((p) => p.k).join(',')}\n`,
      );
    for (const f of frames) {
      this.opts.pool.stats.bytesSent += f.bytes.length;
      switch (f.type) {
        case 'S': {
          const unsafe = unsafeEncodingStatus(f.payload);
          if (unsafe) {
            // Set behind the classifier's back (set_config, a function): nothing after it can be
            // analysed safely, so the session ends (its server connection is dropped, not reused).
            this.flushClient();
            this.host.terminate(unsafeEncodingFatal(unsafe));
            return;
          }
          this.out.add(f.bytes);
          continue;
        }
        case 'N':
        case 'A':
          this.out.add(f.bytes);
          continue;
        default:
          if (
            this.replay !== null &&
            !this.replied &&
            f.type === 'E' &&
            isServerGoingAway(f.payload) &&
            this.server
          ) {
            if (this.retryElsewhere(this.server)) return;
          }
          if (this.replay !== null && !this.replied && this.forwardsToClient()) this.replied = true;
          this.onResponse(f);
      }
      if (this.closed && this.server === null) return;
    }
    this.flushClient();
  }

  private onResponse(f: TypedFrame): void {
    const head = this.pending[0];
    if (!head) {
      // Unsolicited (a FATAL before the server goes away): the client should know.
      this.out.add(f.bytes);
      return;
    }
    switch (head.k) {
      case 'query': {
        let bytes = f.bytes;
        if (head.renamed) {
          if (f.type === 'C') head.completed = (head.completed ?? 0) + 1;
          else if (f.type === 'E') {
            const r = head.renamed;
            if (r.ops) this.undoSqlOps(r.ops, head.completed ?? 0);
            bytes = rewriteErrorFields('E', f.payload, r.names, (p) => mapPosition(p, r.spans)) ?? bytes;
          }
        }
        if (head.tags && f.type === 'C') {
          const tag = head.tags.shift() ?? 'pass';
          if (tag === 'RESET') this.out.add(commandComplete('RESET'));
          else if (tag === 'pass') this.out.add(bytes);
        } else if (!head.swallow) this.out.add(bytes);
        if (head.check && f.type === 'D' && f.partial !== true)
          head.check.rows.push(decodeTextRow(f.payload));
        if (head.captureLsn && f.type === 'D' && f.partial !== true) {
          const lsn = parseLsn(decodeFirstText(f.payload));
          if (lsn !== null && (this.wroteLsn === null || lsn > this.wroteLsn)) this.wroteLsn = lsn;
          head.lsn = lsn;
        }
        if (f.type === 'E') head.failed = true;
        else if (f.type === 'C' && !head.swallow) this.onCommandComplete(f);
        else if (f.type === 'G') this.copyIn = true;
        if (f.type === 'Z') {
          this.pending.shift();
          this.copyIn = false;
          if (head.capture) this.opts.horizon?.endCapture(head.capture, head.lsn ?? null);
          this.onReadyForQuery(f, head);
        }
        return;
      }
      case 'sync':
        this.out.add(f.bytes);
        if (f.type === 'Z') {
          this.pending.shift();
          this.onReadyForQuery(f, null);
        }
        return;
      case 'parse':
        if (f.type === 'E') {
          if (head.serverName && this.server) this.server.prepared.delete(head.serverName);
          return this.onExtendedError(f);
        }
        if (head.serverName) this.opts.pool.rememberStatement(head.serverName);
        if (!head.swallow) this.out.add(f.bytes);
        return this.popHead();
      case 'close':
        if (f.type === 'E') return this.onExtendedError(f);
        if (!head.swallow) this.out.add(f.bytes);
        return this.popHead();
      case 'bind':
        if (f.type === 'E') return this.onExtendedError(f);
        this.out.add(f.bytes);
        return this.popHead();
      case 'describe':
        if (f.type === 'E') return this.onExtendedError(f);
        this.out.add(f.bytes);
        if (f.type === 't') return; // ParameterDescription: RowDescription or NoData follows
        return this.popHead();
      case 'execute':
        if (f.type === 'E') {
          this.copyIn = false;
          return this.onExtendedError(f);
        }
        this.out.add(f.bytes);
        if (f.type === 'G') {
          this.copyIn = true;
          this.dropSyncsSentDuringCopy();
          return;
        }
        if (f.type === 'C' || f.type === 'I' || f.type === 's') {
          if (f.type === 'C') this.onCommandComplete(f);
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

  /** Emits synthetic replies (and skips markers) now at the head of the queue. */
  private emitSynthetic(): void {
    while (this.pending.length > 0) {
      const h = this.pending[0]!;
      if (h.k === 'synthetic') this.out.add(h.bytes);
      else if (h.k !== 'copy-end') return;
      this.pending.shift();
    }
  }

  /** After an error in an extended-protocol message the server skips everything up to Sync. */
  private onExtendedError(f: TypedFrame): void {
    this.out.add(f.bytes);
    this.pending.shift();
    while (this.pending.length > 0 && this.pending[0]!.k !== 'sync') this.pending.shift();
  }

  private onCommandComplete(f: TypedFrame): void {
    if (this.discardAllSent && this.server && commandCompleteIs(f.bytes, 'DISCARD ALL')) {
      this.server.prepared.clear();
      this.server.settings = new Map();
      this.statements = EMPTY_MAP;
      this.sqlStatements = EMPTY_MAP;
    }
    // Only two tags matter here; most are SELECT n, INSERT 0 n… and need no decoding.
    const rollback = commandCompleteIs(f.bytes, 'ROLLBACK');
    // ROLLBACK TO SAVEPOINT has the same tag: ReadyForQuery tells them apart (onReadyForQuery).
    if (rollback) this.rolledBack = true;
    if (rollback || commandCompleteIs(f.bytes, 'COMMIT')) {
      this.counters.xacts++;
      this.opts.pool.stats.xacts++;
    }
  }

  private onReadyForQuery(f: TypedFrame, query: Extract<Pending, { k: 'query' }> | null): void {
    const status = readyForQueryStatus(f.bytes);
    if (status === null) return;
    this.commitInFlight = false;
    if (query?.swallow) {
      if (query.check && this.server) {
        const c = query.check;
        const found = c.discardOnly
          ? null
          : stateCheckFinding(c.rows, this.server.target.user, c.tracked, query.failed);
        if (found !== null) {
          this.pin(`session state left by ${c.cause}: ${found}`);
          // The connection stays with this client: whoever waits needs another keeper's.
          this.handingOver = false;
          (this.attachedPool ?? this.opts.pool).returned(this);
        }
      }
      this.emitSynthetic();
      const handOver = query.check !== undefined && this.handingOver;
      if (handOver && !query.check!.discardOnly)
        (this.attachedPool ?? this.opts.pool).noteCheck(now() - this.checkSentAt);
      this.maybeRelease(status);
      // Asked back while the client had already sent more: it queues for a connection again.
      if (query.check && (this.switching || handOver) && this.pending.length === 0) this.drain();
      return;
    }
    if (query) this.opts.pool.stats.queryTimeUs += Math.round((now() - this.queryStartedAt) * 1000);
    this.discardAllSent = false;
    if (status === 'I' && this.ddlInTx) {
      // The schema may have changed: the registry reloads (fail safe meanwhile).
      this.ddlInTx = false;
      this.opts.hiddenCode?.changed();
    }
    if (this.rolledBack) {
      this.rolledBack = false;
      if (status === 'I') this.txSettings = [];
      else if (this.txSettings.length > 0 && !this.pinned) {
        // ROLLBACK TO SAVEPOINT undid some of this transaction's SETs, which the proxy does not
        // follow: the session-state check compares the record with the server before anyone else
        // gets the connection, and pins the client if they differ.
        this.checkCause ??= 'ROLLBACK TO SAVEPOINT after SET';
      }
    }
    if (status === 'I') {
      const failedImplicit = query !== null && query.failed && !query.wasInBlock;
      if (!failedImplicit) this.commitSettings();
      this.txSettings = [];
      if (this.txStatus === 'I' && query) {
        this.counters.xacts++;
        this.opts.pool.stats.xacts++;
      }
    }
    this.txStatus = status;
    this.emitSynthetic();
    this.maybeRelease(status);
  }

  private commitSettings(): void {
    if (this.txSettings.length > 0) {
      // What the server now holds, as the value each SET left (settings-record.ts).
      this.settings = committedSettings(
        this.settings,
        this.txSettings,
        this.opts.startupSettings,
        this.server?.params ?? null,
      );
    }
    // A transaction that changed nothing leaves the connection's record as it is (no copy per
    // transaction); anything else, or a record that drifted, is replaced by a copy.
    const s = this.server;
    if (s && (this.txSettings.length > 0 || !sameSettings(s.settings, this.settings)))
      s.settings = new Map(this.settings);
  }

  /** Gives the connection back when the client waits for nothing more and holds no transaction. */
  private maybeRelease(status: TransactionStatus): void {
    const s = this.server;
    if (s && this.closed) {
      // The client left while the proxy's own queries ran (see close()).
      if (this.pending.length > 0) return;
      if (this.pinned || this.checkCause !== null || status !== 'I') s.needsReset = true;
      else if (this.seqDirty) s.needsSequenceReset = true;
      this.releaseServer();
      return;
    }
    if (s && this.needLsn && status === 'I' && this.pending.length === 0 && !this.copyIn) {
      // After a write transaction, before anything else (the client may have sent more already,
      // and a pinned client keeps its connection): the commit position, for read-your-writes and
      // for the commit horizon.
      this.captureCommit();
      return;
    }
    if (!s || this.pinned || status !== 'I' || this.pending.length > 0 || this.copyIn) return;
    // A client that has sent more keeps its connection, unless it is being handed over.
    if (this.inbox.length > 0 && !this.switching && !this.handingOver) return;
    if (this.checkCause !== null || this.seqDirty) {
      if (this.switching) {
        this.checkState(s);
      } else {
        // Checking costs the server more than most transactions (pg_settings): keep the
        // connection instead, and check only when another client needs it and this client's
        // slice is over (giveBack, KEEP_SLICE_FACTOR).
        this.keeping = true;
        (this.attachedPool ?? this.opts.pool).keep(this);
      }
      return;
    }
    const handedOver = this.handingOver;
    this.releaseServer();
    // Handed over with more from the client waiting: it queues for a connection again.
    if (this.switching || (handedOver && this.inbox.length > 0)) this.drain();
  }

  /** Until when this client may keep its connection although others wait (pool.reclaim). */
  get keptUntil(): number {
    return this.attachedAt + (this.attachedPool ?? this.opts.pool).keepSliceMs;
  }

  /** Pool → keeper: someone waits for a connection; check this one and give it back if clean. */
  giveBack(): boolean {
    if (!this.keeping) return false;
    this.keeping = false;
    const s = this.server;
    if (!s || this.closed || this.pinned || this.pending.length > 0 || this.txStatus !== 'I') return false;
    this.handingOver = true;
    this.checkSentAt = now();
    this.checkState(s);
    return true;
  }

  /** The pool no longer counts on this client's check to serve someone who waits. */
  private endHandOver(): void {
    if (!this.handingOver) return;
    this.handingOver = false;
    (this.attachedPool ?? this.opts.pool).returned(this);
  }

  private stopKeeping(): void {
    if (!this.keeping) return;
    this.keeping = false;
    (this.attachedPool ?? this.opts.pool).unkeep(this);
  }

  /** A named statement's text, decoded again from its Parse (only with a hidden-code registry). */
  private statementText(name: string): string {
    const st = this.statements.get(name);
    if (!st) return '';
    if (st.text === undefined) {
      const d = decodeParse(st.parse.subarray(5));
      st.text = d.ok ? d.value.query : '';
    }
    return st.text;
  }

  /**
   * The search_path (as of this transaction) lets user functions shadow built-ins: the client's,
   * or else the default a role or the database sets (ALTER … SET, from the hidden-code registry).
   */
  private shadowsBuiltins(): boolean {
    const byDefault = this.opts.hiddenCode?.defaultPathShadows ?? false;
    for (let i = this.txSettings.length - 1; i >= 0; i--) {
      const e = this.txSettings[i]!;
      if (e.kind === 'reset_all' || (e.kind === 'reset' && e.name === 'search_path')) {
        // RESET gives the start-up search_path back (reset-rewrite.ts), or else the default a
        // role or the database sets.
        const v = this.opts.startupSettings.get('search_path');
        return v !== undefined ? searchPathShadowsBuiltins(v) : byDefault;
      }
      if (e.kind === 'set' && e.name === 'search_path') return searchPathShadowsBuiltins(e.value);
    }
    const v = this.settings.get('search_path');
    return v !== undefined ? searchPathShadowsBuiltins(v) : byDefault;
  }

  /**
   * Asks the server what its session holds (src/proxy/backend/state-check.ts) before giving the
   * connection back; the reply decides in onReadyForQuery whether it is pinned to this client.
   */
  private checkState(s: ServerConn): void {
    const cause = this.checkCause;
    this.checkCause = null;
    this.seqDirty = false;
    const tracked = s.settings;
    this.ownQueryDestroysUnnamed();
    if (cause === null) {
      // Only sequence state to drop: no check (the client's currval then says 55000).
      this.sendToServer(queryMessage('DISCARD SEQUENCES'));
      this.pending.push({
        k: 'query',
        swallow: true,
        failed: false,
        wasInBlock: false,
        check: { rows: [], cause: '', tracked, discardOnly: true },
      });
      this.flushServer();
      return;
    }
    (this.attachedPool ?? this.opts.pool).stats.stateChecks++;
    // User code may have called nextval: its sequence state goes too (the check's rows come first).
    this.sendToServer(queryMessage(`${stateCheckQuery(tracked)}; DISCARD SEQUENCES`));
    this.pending.push({
      k: 'query',
      swallow: true,
      failed: false,
      wasInBlock: false,
      check: { rows: [], cause, tracked },
    });
    this.flushServer();
  }

  private releaseServer(): void {
    const s = this.server;
    if (!s) return;
    this.opts.pool.stats.xactTimeUs += Math.round((now() - this.attachedAt) * 1000);
    const pool = this.attachedPool ?? this.opts.pool;
    if (this.attachedReplica) this.attachedReplica.outstanding--;
    this.detach(s);
    pool.release(s);
  }

  private detach(s: ServerConn): void {
    this.stopKeeping();
    this.endHandOver();
    this.seqDirty = false;
    if (this.unnamedFrame !== null) {
      // Parsed and not bound: the client may Describe or Bind it in its next round trip.
      const b = this.unnamedFrame.bytes;
      this.unnamedSaved = b.length <= LARGE_MESSAGE_BYTES ? Buffer.from(b) : null;
      this.unnamedFrame = null;
    }
    this.flushServer();
    s.setHandler(null);
    s.setLostHandler(null);
    this.server = null;
    this.attachedPool = null;
    this.attachedReplica = null;
  }

  private onServerLost(s: ServerConn): void {
    if (this.server !== s) return;
    if (this.closed) {
      // Lost while finishing what a departed client left in flight: the pool forgets it.
      this.abandonCaptures();
      this.releaseServer();
      return;
    }
    this.seqDirty = false; // its sequence state is gone with it
    if (this.switching && this.pending.length > 0 && this.pending.every((p) => p.k === 'query' && p.check)) {
      // Lost while only the proxy's check before a switch ran (drain): none of the client's work
      // was sent there, so it is routed again as if the connection had been given back.
      this.endHandOver();
      if (this.attachedReplica) {
        this.attachedReplica.outstanding--;
        this.attachedReplica.monitor.healthy = false;
      }
      this.pending = [];
      this.toServer.clear();
      this.server = null;
      this.attachedPool = null;
      this.attachedReplica = null;
      this.drain();
      return;
    }
    if (this.keeping && this.pending.length === 0) {
      // Kept while idle: nothing was in flight, so the client need not notice.
      this.stopKeeping();
      if (this.attachedReplica) this.attachedReplica.outstanding--;
      this.server = null;
      this.attachedPool = null;
      this.attachedReplica = null;
      return;
    }
    this.endHandOver();
    if (this.retryElsewhere(s)) return;
    this.abandonCaptures();
    if (this.attachedReplica) this.attachedReplica.outstanding--;
    this.toServer.clear();
    this.server = null;
    this.attachedPool = null;
    this.attachedReplica = null;
    this.flushClient();
    // Whatever was in flight is lost; the client must learn it rather than wait forever.
    this.host.terminate(
      buildErrorResponse(
        'FATAL',
        SqlState.ADMIN_SHUTDOWN,
        'server connection lost: the transaction or statement in progress was not completed',
      ),
    );
  }

  private flushClient(): void {
    if (this.closed) this.out.clear();
    if (this.out.empty) return;
    if (!this.out.flush(this.host.socket) && this.server) {
      // The client reads slower than the server sends: stop reading the server (backpressure).
      const s = this.server;
      s.socket.pause();
      this.host.socket.once('drain', () => s.socket.resume());
    }
  }

  /** The server connection's backend running this client's work now, for cancel requests. */
  cancelTarget(): ServerConn | null {
    // A COMMIT is never cancelled: all a cancel can do to it is end its wait for a synchronous
    // standby, and the client would then see success for a commit a failover may lose.
    if (this.commitInFlight) return null;
    return this.server && this.pending.length > 0 ? this.server : null;
  }

  /** Client gone: give the connection back in a clean state (the pool rolls back or resets). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.opts.listeners) for (const ch of this.channels) this.opts.listeners.unsubscribe(ch, this);
    const s = this.server;
    this.stopKeeping();
    this.inbox = [];
    this.out.clear();
    if (s && !this.copyIn && this.pending.length > 0 && endsWithReadyForQuery(this.pending)) {
      // Requests are in flight (the client's own, Terminate pipelined behind them, or the proxy's
      // state check or WAL position): let them finish, as PostgreSQL would run them had the client
      // been connected to it directly; their replies go nowhere (flushClient), and maybeRelease
      // gives the connection back at the last ReadyForQuery (rolled back or reset if need be).
      // Dropping the connection instead would cost the pool a server (issue #12 item 5).
      this.flushServer();
      return;
    }
    this.endHandOver();
    const pool = this.attachedPool ?? this.opts.pool;
    if (this.attachedReplica) this.attachedReplica.outstanding--;
    this.server = null;
    this.attachedPool = null;
    this.attachedReplica = null;
    if (!s) return;
    s.setHandler(null);
    s.setLostHandler(null);
    this.toServer.clear();
    if (this.pending.length > 0 || this.copyIn) {
      // Mid-COPY, or an extended-protocol batch without its Sync (a Sync would commit what the
      // client never finished): the reply stream cannot be resynchronised; drop the connection.
      this.abandonCaptures();
      s.destroy();
      pool.release(s);
      return;
    }
    // Leaving right after something unchecked ran (Terminate pipelined behind it): reset it.
    if (this.pinned || this.checkCause !== null) s.needsReset = true;
    else if (this.seqDirty) s.needsSequenceReset = true;
    pool.release(s);
  }
}

const EFFECTS_CACHE_SIZE = 2000;
/** Longer texts are lexed every time: 2,000 cached keys of up to max_packet_size would be unbounded. */
const EFFECTS_CACHE_MAX_KEY = 16 * 1024;
const effectsCache = new Map<string, readonly SessionEffect[]>();
const NO_EFFECTS: readonly SessionEffect[] = Object.freeze([]);

/**
 * sessionEffects by statement text, cached: drivers Parse the same few texts over and over. Texts
 * that plainly cannot touch session state (most queries; simple-protocol texts with literals differ
 * every time, so a cache would not help them) skip the lexer and the cache: empty, which every
 * caller here treats like a list of `other`.
 */
function cachedEffects(query: string): readonly SessionEffect[] {
  if (cannotChangeSession(query)) return NO_EFFECTS;
  let e = effectsCache.get(query);
  if (e) return e;
  e = sessionEffects(query);
  if (query.length > EFFECTS_CACHE_MAX_KEY) return e;
  if (effectsCache.size >= EFFECTS_CACHE_SIZE)
    effectsCache.delete(effectsCache.keys().next().value as string);
  effectsCache.set(query, e);
  return e;
}

const riskCache = new Map<string, string | null>();
const SHADOWED = 'a call under a search_path that puts a schema before pg_catalog';

/** hiddenEffectRisk by statement text, cached like cachedEffects (texts without `(` cost a regex test). */
function cachedRisk(query: string): string | null {
  if (!mayHideEffects(query)) return null;
  let r = riskCache.get(query);
  if (r !== undefined) return r;
  r = hiddenEffectRisk(query);
  if (riskCache.size >= EFFECTS_CACHE_SIZE) riskCache.delete(riskCache.keys().next().value as string);
  riskCache.set(query, r);
  return r;
}

/**
 * Whether the last reply due is a ReadyForQuery (a simple Query or a Sync ends the list): then the
 * connection is idle again once the list has been answered.
 */
function endsWithReadyForQuery(pending: readonly Pending[]): boolean {
  for (let i = pending.length - 1; i >= 0; i--) {
    const p = pending[i]!;
    if (p.k === 'synthetic' || p.k === 'copy-end') continue;
    return p.k === 'query' || p.k === 'sync';
  }
  return false;
}

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

/** Shared, empty and read-only (as types say; writing to it would be a bug, so it throws). */
class EmptyMap extends Map<never, never> {
  override set(): this {
    throw new Error('internal error: write to the shared empty map');
  }
}
class EmptySet extends Set<never> {
  override add(): this {
    throw new Error('internal error: write to the shared empty set');
  }
}
const EMPTY_MAP: ReadonlyMap<never, never> = new EmptyMap();
const EMPTY_SET: ReadonlySet<never> = new EmptySet();

function sameSettings(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

const quoteName = quoteSettingName;

function hash(s: string): string {
  // Raw bytes of a client not in UTF8 (sql-text.ts) are hashed as they came: as UTF-8 they
  // would all be U+FFFD, and two different statements would share a name.
  return createHash('sha256')
    .update(hasRawBytes(s) ? encodeText(s) : s)
    .digest('hex')
    .slice(0, 32);
}

/** Server-side name of a protocol-level statement: same text and types, same name, on every connection. */
/** `tag`: the client's encoding for non-ASCII text of a client not in UTF8 (encodingTag). */
export function protocolStatementName(query: string, types: readonly number[], tag = ''): string {
  return `pgscale_p_${hash(`${tag === '' ? '' : `${tag}\0`}${types.join(',')}\0${query}`)}`;
}

/**
 * Server-side name of an SQL PREPARE: the same name and text give the same name on every
 * connection (and two names of one text stay apart, so that one's DEALLOCATE keeps the other).
 */
function sqlStatementName(name: string, prepareText: string, tag: string): string {
  return `pgscale_s_${hash(`${tag === '' ? '' : `${tag}\0`}${name}\0${renamePreparedRefs(prepareText, () => 'x')}`)}`;
}

/** Calls that leave sequence state in the session (currval, lastval read it). */
const SEQUENCE_CALL = /nextval|setval/i;

const SQL_NAMES_IN_USER_CODE = 'user code after SQL PREPARE (its dynamic SQL may use the prepared names)';

const NO_BYTES = Buffer.alloc(0);

/** A text reading the session's prepared statements: only a connection of its own lists them right. */
const LISTS_STATEMENTS = /pg_prepared_statements/i;
const LISTS_STATEMENTS_REASON = "pg_prepared_statements (lists the session's own prepared statements)";

function renameIn(text: string, from: string, to: string): string {
  return renamePreparedRefs(text, (n) => (n === from ? to : undefined));
}
