/**
 * The classifier's vocabulary: what a statement (or a whole Query text) is, for routing. Kept
 * apart from classify.ts so that the fast path and the parse-tree walk can name it without
 * importing the classifier that imports them.
 */
import type { RoutingHint } from './hints.js';

export type StatementClass =
  | 'read'
  | 'write'
  | 'transaction-begin-read-only'
  | 'transaction-begin'
  | 'transaction-end'
  /** Routing-neutral: SET/RESET, DISCARD, PREPARE/DEALLOCATE, SAVEPOINT family, FETCH/MOVE/CLOSE. */
  | 'session';

export interface Classification {
  readonly cls: StatementClass;
  /** Why, for logs and SHOW: e.g. 'SELECT', 'FOR UPDATE', 'function nextval', 'INSERT', 'unparsable'. */
  readonly reason: string;
  /** The first `pgscale:` hint in a comment; reported, not applied. */
  readonly hint: RoutingHint | null;
}
