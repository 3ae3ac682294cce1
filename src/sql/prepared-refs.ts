/**
 * Finds the token that names an SQL-level prepared statement in PREPARE, EXECUTE, DEALLOCATE,
 * EXPLAIN ... EXECUTE and CREATE TABLE ... AS EXECUTE. Both the session-state analysis (which
 * names a client has prepared) and the renamer (which gives each client's names a unique
 * spelling on shared server connections) need the same answer, so it lives here once.
 * https://www.postgresql.org/docs/current/sql-prepare.html
 */
import { K } from './token.js';
import type { StatementTokens } from './statement-tokens.js';
import { OPEN } from './statement-tokens.js';

export type PreparedRef =
  | { readonly op: 'prepare' | 'execute' | 'deallocate'; readonly nameToken: number }
  | { readonly op: 'deallocate_all' };

/** What the statement does with a prepared statement, or null when it names none. */
export function preparedRef(s: StatementTokens): PreparedRef | null {
  const f = s.first;
  switch (s.word(f)) {
    case 'prepare':
      // PREPARE TRANSACTION 'gid' is two-phase commit; TRANSACTION followed by anything else is
      // a statement that happens to be called "transaction".
      if (s.isWord(f + 1, 'transaction') && s.code(f + 2) === K.string) return null;
      return named(s, 'prepare', f + 1);
    case 'execute':
      return named(s, 'execute', f + 1);
    case 'deallocate': {
      // DEALLOCATE [PREPARE] name | ALL; "DEALLOCATE prepare" alone deallocates one called prepare.
      const i = s.isWord(f + 1, 'prepare') && s.name(f + 2) !== undefined ? f + 2 : f + 1;
      return s.isWord(i, 'all') ? { op: 'deallocate_all' } : named(s, 'deallocate', i);
    }
    case 'explain': {
      const i = afterExplainOptions(s);
      if (s.isWord(i, 'execute')) return named(s, 'execute', i + 1);
      return s.isWord(i, 'create') ? createTableAsExecute(s, i) : null;
    }
    case 'create':
      return createTableAsExecute(s, f);
    default:
      return null;
  }
}

function named(s: StatementTokens, op: 'prepare' | 'execute' | 'deallocate', i: number): PreparedRef | null {
  return s.name(i) !== undefined ? { op, nameToken: i } : null;
}

/** First token of the statement EXPLAIN explains: after `(options)` or ANALYZE/VERBOSE words. */
export function afterExplainOptions(s: StatementTokens): number {
  let i = s.first + 1;
  if (s.charOf(i) === OPEN) return s.skipParens(i);
  while (s.isAnyWord(i, ['analyze', 'analyse', 'verbose'])) i++;
  return i;
}

const TABLE_PREFIX = ['global', 'local', 'temp', 'temporary', 'unlogged'];

/** CREATE [GLOBAL|LOCAL] [TEMP|UNLOGGED] TABLE ... AS EXECUTE name, starting at CREATE. */
function createTableAsExecute(s: StatementTokens, create: number): PreparedRef | null {
  let i = create + 1;
  while (s.isAnyWord(i, TABLE_PREFIX)) i++;
  if (!s.isWord(i, 'table')) return null;
  // AS EXECUTE can only appear at the top level of the statement, never inside parentheses.
  for (i++; i < s.last; i++) {
    if (s.charOf(i) === OPEN) i = s.skipParens(i) - 1;
    else if (s.isWord(i, 'as') && s.isWord(i + 1, 'execute')) return named(s, 'execute', i + 2);
  }
  return null;
}
