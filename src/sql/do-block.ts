/**
 * Looks inside the code of a DO block for the session-state changes it can make where the proxy
 * cannot see them: the same function calls as at top level, CREATE TEMP, and PL/pgSQL SET/RESET
 * statements (which change the session, not just the block). This is a lexer-level heuristic
 * over the body text, one level deep: dynamic SQL built in strings (EXECUTE '...') is not read.
 * https://www.postgresql.org/docs/current/sql-do.html
 */
import type { LexOptions } from './token.js';
import { K } from './token.js';
import { lex } from './lexer.js';
import { StatementTokens, SEMICOLON } from './statement-tokens.js';
import { findStickyCall } from './sticky-calls.js';
import { createsTemp } from './temp-objects.js';

/** Words after which a PL/pgSQL statement starts. */
const STATEMENT_STARTERS = ['begin', 'then', 'else', 'loop'];

/** Why the DO statement `s` changes session state we cannot track, or null. */
export function doBlockStickyReason(s: StatementTokens, options: LexOptions): string | null {
  let body = -1;
  for (let i = s.first + 1; i < s.last && body < 0; i++) {
    if (s.code(i) === K.string || s.code(i) === K.dollarString) body = i;
  }
  if (body < 0) return null;
  const tokens = lex(s.value(body), options);
  const all = new StatementTokens(tokens, 0, tokens.count);
  const call = findStickyCall(all);
  if (call !== null) return `DO block: ${call}`;
  for (let i = 0; i < tokens.count; i++) {
    const startsStatement =
      i === 0 || all.charOf(i - 1) === SEMICOLON || all.isAnyWord(i - 1, STATEMENT_STARTERS);
    if (!startsStatement) continue;
    if (all.isWord(i, 'create')) {
      const temp = createsTemp(all, i);
      if (temp !== null) return `DO block: ${temp}`;
    }
    if (
      all.isAnyWord(i, ['set', 'reset']) &&
      !all.isAnyWord(i + 1, ['local', 'transaction', 'constraints'])
    ) {
      return `DO block: ${(all.word(i) ?? '').toUpperCase()}`;
    }
  }
  return null;
}
