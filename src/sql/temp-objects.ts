/**
 * Spots statements that create session-lifetime objects the proxy cannot carry to another
 * server connection: temporary tables, views and sequences (CREATE [GLOBAL|LOCAL] TEMP ...,
 * SELECT ... INTO TEMP, anything created in the pg_temp schema) and cursors declared WITH HOLD.
 * https://www.postgresql.org/docs/current/sql-createtable.html#SQL-CREATETABLE-TEMPORARY
 * https://www.postgresql.org/docs/current/sql-declare.html
 */
import { K } from './token.js';
import type { StatementTokens } from './statement-tokens.js';
import { DOT, OPEN, SEMICOLON } from './statement-tokens.js';

const TEMP = ['temp', 'temporary'];

/** For a statement starting with CREATE at `create`: why it makes a temporary object, or null. */
export function createsTemp(s: StatementTokens, create: number): string | null {
  let i = create + 1;
  if (s.isWord(i, 'or') && s.isWord(i + 1, 'replace')) i += 2;
  if (s.isAnyWord(i, ['global', 'local'])) i++;
  if (s.isAnyWord(i, TEMP)) return `CREATE TEMP ${(s.word(i + 1) ?? '').toUpperCase()}`.trimEnd();
  // Naming the temporary schema makes the object temporary too: CREATE TABLE pg_temp.t (...);
  // a view that reads pg_temp objects becomes a temporary view.
  // Stops at `;` so that scanning the many statements of a DO body stays linear.
  for (let j = i; j < s.last && s.charOf(j) !== SEMICOLON; j++) {
    if (s.charOf(j + 1) === DOT && /^pg_temp(_\d+)?$/.test(s.name(j) ?? '')) return 'object in pg_temp';
  }
  return null;
}

/**
 * SELECT ... INTO [GLOBAL|LOCAL] TEMP[ORARY] [TABLE] t creates a temporary table. Not looked for
 * in INSERT and MERGE, where `INTO temp` names an ordinary table called temp.
 */
export function selectsIntoTemp(s: StatementTokens): string | null {
  const w = s.word(s.first);
  if (!(w === 'select' || w === 'with' || w === 'table' || w === 'values' || s.charOf(s.first) === OPEN)) {
    return null;
  }
  for (let i = s.first; i < s.last; i++) {
    if (!s.isWord(i, 'into')) continue;
    const j = s.isAnyWord(i + 1, ['global', 'local']) ? i + 2 : i + 1;
    if (s.isAnyWord(j, TEMP) && isNameToken(s, s.isWord(j + 1, 'table') ? j + 2 : j + 1)) {
      return 'SELECT INTO TEMP';
    }
  }
  return null;
}

function isNameToken(s: StatementTokens, i: number): boolean {
  const c = s.code(i);
  return (
    (c === K.ident && !s.isAnyWord(i, ['select', 'values', 'default', 'as', 'overriding'])) ||
    c === K.quotedIdent
  );
}

/** DECLARE name ... WITH HOLD FOR query: the options all come before FOR. */
export function declaresWithHold(s: StatementTokens): boolean {
  for (let i = s.first + 1; i < s.last && !s.isWord(i, 'for'); i++) {
    if (s.isWord(i, 'with') && s.isWord(i + 1, 'hold')) return true;
  }
  return false;
}
