/**
 * What a server leg waits for: one entry per message that produces a reply, in the order the
 * server answers (src/proxy/session/server-leg.ts). Synthetic replies (answered by the proxy) wait
 * in the same queue, so that the client sees them exactly where PostgreSQL would have sent them.
 * Also the records a Query's prepared-statement renaming leaves behind, which a reply may undo.
 */
import type { RenameSpan } from '../../sql/rename-prepared.js';
import type { TagAction } from '../reset-rewrite.js';

/** A client's SQL PREPARE, as the proxy keeps it (transaction mode renames it on servers). */
export interface SqlStatement {
  serverName: string;
  /** The PREPARE statement under the server-side name. */
  prepare: string;
  /** The PREPARE statement as the client wrote it (under its own name, once pinned). */
  original: string;
}

/** A change one statement of a Query made to the client's SQL statement records. */
export interface SqlOp {
  /** The statement's index in its text (sessionEffects order). */
  index: number;
  name: string;
  /** The record before the change (DEALLOCATE), or undefined (a new PREPARE). */
  before: SqlStatement | undefined;
  serverName: string;
  prepare: boolean;
}

/** A Query text whose prepared-statement names were renamed for the server. */
export interface RenamedText {
  /** Server name → client name, to put back in error messages. */
  names: Map<string, string>;
  spans: RenameSpan[];
  /** Record changes, undone for the statements the server did not run (an error stops it). */
  ops: SqlOp[] | null;
}

/** The session-state check's rows, and what made it necessary (backend/state-check.ts). */
export interface StateCheck {
  rows: (string | null)[][];
  cause: string;
  tracked: ReadonlyMap<string, string>;
  /** No check, only DISCARD SEQUENCES before the connection changes hands (sequence state). */
  discardOnly?: boolean;
}

export interface PendingQuery {
  k: 'query';
  /** The proxy's own Query: its replies never reach the client. */
  swallow: boolean;
  failed: boolean;
  wasInBlock: boolean;
  captureLsn?: boolean;
  /** The capture's token with the commit horizon (0: none), and the position it read. */
  capture?: number;
  lsn?: bigint | null;
  /** RESETs rewritten to restore start-up values: each CommandComplete's fate (reset-rewrite.ts). */
  tags?: TagAction[];
  check?: StateCheck;
  /** Prepared-statement names of the text were renamed: how to show the client its own. */
  renamed?: RenamedText;
  /** CommandCompletes so far: the statement an error comes from (renamed texts only). */
  completed?: number;
  /** The proxy's own Query whose outcome it needs (multi-group.ts): told at its ReadyForQuery. */
  done?: ((r: OwnQueryResult) => void) | undefined;
  /** Its rows and first error so far (own queries with `done` only). */
  rows?: (string | null)[][] | undefined;
  error?: Buffer | null | undefined;
}

/** What an own Query with `done` gives back. */
export interface OwnQueryResult {
  /** Its DataRows, as text. */
  readonly rows: readonly (string | null)[][];
  /** Its ErrorResponse, whole (null: none). */
  readonly error: Buffer | null;
  /** The transaction status its ReadyForQuery reported. */
  readonly status: 'I' | 'T' | 'E';
}

export type Pending =
  | PendingQuery
  | { k: 'parse'; swallow: boolean; serverName: string | null }
  | { k: 'bind' }
  | { k: 'describe'; statement: boolean; sawDescription: boolean }
  | { k: 'execute' }
  | { k: 'close'; swallow: boolean }
  | { k: 'sync' }
  | { k: 'synthetic'; bytes: Buffer }
  | { k: 'copy-end' };

/**
 * A PendingQuery with every field present, in one order: every query entry then has one shape,
 * and the reply path reads them without polymorphic lookups (this is made per Query).
 */
export function pendingQuery(
  swallow: boolean,
  wasInBlock: boolean,
  more: {
    captureLsn?: boolean;
    capture?: number;
    tags?: TagAction[];
    check?: StateCheck;
    renamed?: RenamedText;
  } = NOTHING_MORE,
): PendingQuery {
  return {
    k: 'query',
    swallow,
    failed: false,
    wasInBlock,
    captureLsn: more.captureLsn ?? false,
    capture: more.capture ?? 0,
    lsn: null,
    tags: more.tags,
    check: more.check,
    renamed: more.renamed,
    completed: 0,
    done: undefined,
    rows: undefined,
    error: undefined,
  };
}

const NOTHING_MORE = {};

/** A Query of the proxy's own whose replies are swallowed. */
export function ownQuery(): PendingQuery {
  return pendingQuery(true, false);
}

/** A Query of the proxy's own whose outcome `done` is told (its replies never reach the client). */
export function ownQueryThen(done: (r: OwnQueryResult) => void): PendingQuery {
  const q = pendingQuery(true, true);
  q.done = done;
  q.error = null;
  return q;
}

/**
 * Whether the last reply due is a ReadyForQuery (a simple Query or a Sync ends the list): then the
 * connection is idle again once the list has been answered.
 */
export function endsWithReadyForQuery(pending: readonly Pending[]): boolean {
  for (let i = pending.length - 1; i >= 0; i--) {
    const p = pending[i]!;
    if (p.k === 'synthetic' || p.k === 'copy-end') continue;
    return p.k === 'query' || p.k === 'sync';
  }
  return false;
}
