/**
 * What one SQL statement does to session state, as the transaction-pooling proxy needs to know
 * it: settings to replay on the next server connection, LISTEN channels and prepared statements
 * to track, transaction boundaries, and "sticky" state it cannot replay, after which the server
 * connection must be reset (DISCARD ALL) before another client uses it.
 */

export type SessionEffect =
  /** SET [SESSION] name {TO|=} value: name lowercased, value the SQL text after TO/= as written. */
  | { readonly kind: 'set'; readonly name: string; readonly value: string }
  | { readonly kind: 'reset'; readonly name: string }
  | { readonly kind: 'reset_all' }
  /**
   * SET LOCAL, SET TRANSACTION, SET CONSTRAINTS: gone when the transaction ends. `SET LOCAL
   * search_path` (or `SET LOCAL SCHEMA`) keeps its value (the shard planner follows it).
   */
  | { readonly kind: 'local'; readonly searchPath?: string }
  | { readonly kind: 'listen'; readonly channel: string }
  /** channel is '*' for UNLISTEN *. */
  | { readonly kind: 'unlisten'; readonly channel: string }
  | { readonly kind: 'notify'; readonly channel: string }
  /** text is the whole PREPARE statement, ready to replay. */
  | { readonly kind: 'prepare'; readonly name: string; readonly text: string }
  | { readonly kind: 'execute'; readonly name: string }
  /** name null for DEALLOCATE ALL. */
  | { readonly kind: 'deallocate'; readonly name: string | null }
  | { readonly kind: 'discard'; readonly what: 'all' | 'plans' | 'sequences' | 'temp' }
  | { readonly kind: 'begin' }
  | { readonly kind: 'commit' }
  | { readonly kind: 'rollback' }
  | { readonly kind: 'sticky'; readonly reason: string }
  | { readonly kind: 'other' };
