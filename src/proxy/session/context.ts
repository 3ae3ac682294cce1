/**
 * What the message translators (forward-query.ts, forward-extended.ts, server-prep.ts) may use of
 * a session: its options, the client's record, the running transaction's state, and two actions.
 * An interface, so that they never import the session (which imports them).
 */
import type { TransactionStatus } from '../../protocol/backend-messages.js';
import type { TypedFrame } from '../../protocol/framer.js';
import type { SessionEffect } from '../../sql/session-effects.js';
import type { Analyzer } from '../../sql/analyze.js';
import type { HiddenCodeRegistry } from '../backend/hidden-code.js';
import type { Pool } from '../backend/pool.js';
import type { CommitHorizon } from '../commit-horizon.js';
import type { ListenerHub } from '../listener-hub.js';
import type { Consistency, ReadRouter } from '../read-router.js';
import type { MessageClass } from './route.js';
import type { PoolMode } from '../types.js';
import type { ClientRecord } from './client-record.js';
import type { SessionSharding } from './shard-target.js';

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
  /**
   * Read/write splitting on: every text's class comes from this analysis (shared by the proxy's
   * sessions, one cache). Absent, every message is a write, and a default analysis serves the rest.
   */
  analyzer?: Analyzer | null;
  consistency?: Consistency;
  /** The primary's commit horizon (causal, linearizable): present when the database has replicas. */
  horizon?: CommitHorizon | null;
  /** The database's relations with hidden code (views, triggers…): naming one means a check. */
  hiddenCode?: HiddenCodeRegistry | null;
  /** The replication group the database lives in (its key among the transaction's legs). */
  group?: string;
  /** The database has distributed or reference tables: where each statement's shards are. */
  sharding?: SessionSharding | null;
  /**
   * Sharding: read scaling on a group other than the database's own — that group's read router
   * and commit horizon, or null when it has no replicas (its reads then go to its primary).
   */
  groupReads?: ((group: string) => GroupReads | null) | null;
}

export interface GroupReads {
  readonly router: ReadRouter;
  readonly horizon: CommitHorizon | null;
}

/** The pooled transaction's state: from attaching a server to giving it back. */
export class TxState {
  status: TransactionStatus = 'I';
  /** Settings changed inside the current transaction: kept on commit, dropped on rollback. */
  settings: SessionEffect[] = [];
  /** A ROLLBACK tag since the last ReadyForQuery: the whole transaction, or to a savepoint. */
  rolledBack = false;
  /**
   * Something ran since attaching that may have changed session state out of the proxy's sight
   * (a user function, DO, EXECUTE…): the server's session is checked before the connection goes
   * back to the pool, and the connection is pinned if the client left state there.
   */
  checkCause: string | null = null;
  /**
   * The attached connection may hold sequence state of this client (nextval/setval ran, or a
   * write to a relation whose column takes a sequence value): currval() and lastval() must never
   * read another client's. The client keeps the connection; before anyone else gets it, DISCARD
   * SEQUENCES (then the client's currval says 55000, as PostgreSQL does in a session without one).
   */
  seqDirty = false;
  /** This transaction ran DDL the hidden-code registry cannot see before it commits. */
  ddlInTx = false;
  /** A COMMIT sent in a transaction block has not been answered yet (cancels are withheld). */
  commitInFlight = false;
  /** A DISCARD ALL was sent in the current Query: its CommandComplete clears our records. */
  discardAllSent = false;
  /** On the primary for something not known to be a read: learn the commit position at release. */
  needLsn = false;
  /** A write was sent in this transaction (sharding: a read across groups would not see it). */
  wrote = false;
  /** SET LOCAL (not search_path), SET TRANSACTION or SET CONSTRAINTS ran in this transaction. */
  localSet = false;
}

export interface ForwardContext {
  readonly opts: SessionOptions;
  /** The analysis of statement texts (opts.analyzer, or the process's default). */
  readonly analyzer: Analyzer;
  readonly record: ClientRecord;
  readonly tx: TxState;
  readonly counters: { queries: number; xacts: number; waitUs: number };
  /** Pins the client to its connection for good (reason shown in SHOW CLIENTS). */
  pin(reason: string): void;
  /** Where the message (Parse, Query) may run. */
  classOf(f: TypedFrame): MessageClass;
  /** Ends the client's connection after sending `fatal`. */
  terminate(fatal: Buffer): void;
}
