/**
 * The classifier's fast path: answers the obvious cases from the tokens alone, without the WASM
 * parser. It must never answer differently from the parser on text the parser accepts (the unit
 * test checks this over the whole corpus), so it only takes shapes whose class cannot depend on
 * anything it does not see:
 * - one SELECT with no `(` (so no function call, sub-select or DISTINCT ON), no FOR (locking
 *   clauses) and no INTO (SELECT INTO creates a table): a read;
 * - a statement starting with INSERT, UPDATE or DELETE: a write, and so is any text it begins,
 *   since one write makes the whole Query a write;
 * - BEGIN/START TRANSACTION with nothing but READ ONLY or READ WRITE, COMMIT/END, ROLLBACK/ABORT
 *   with an optional WORK or TRANSACTION.
 * A trailing `;` is allowed; anything else (including unterminated quotes) goes to the parser.
 * Malformed SELECTs that pass (`SELECT FROM WHERE`) are called reads: the replica reports the
 * same syntax error the primary would.
 */
import { K } from './token.js';
import type { TokenList } from './token-list.js';
import type { StatementClass } from './classification.js';

export interface FastAnswer {
  readonly cls: StatementClass;
  readonly reason: string;
}

const SEMICOLON = 0x3b;
const OPEN_PAREN = 0x28;

export function fastPathClass(tokens: TokenList): FastAnswer | null {
  if (tokens.count === 0 || tokens.unterminated) return null;
  const first = tokens.word(0);
  switch (first) {
    case 'insert':
    case 'update':
    case 'delete':
      return { cls: 'write', reason: first.toUpperCase() };
    case 'select':
      return simpleSelect(tokens) ? { cls: 'read', reason: 'SELECT' } : null;
    case 'begin':
    case 'start':
    case 'commit':
    case 'end':
    case 'rollback':
    case 'abort':
      return transactionControl(tokens, first);
    default:
      return null;
  }
}

/** Index past the last token, ignoring trailing semicolons; -1 if a `;` appears earlier. */
function statementEnd(tokens: TokenList): number {
  let last = tokens.count;
  while (last > 0 && tokens.isChar(last - 1, SEMICOLON)) last--;
  for (let i = 0; i < last; i++) if (tokens.isChar(i, SEMICOLON)) return -1;
  return last;
}

function simpleSelect(tokens: TokenList): boolean {
  const last = statementEnd(tokens);
  if (last < 0) return false;
  for (let i = 1; i < last; i++) {
    const code = tokens.code(i);
    if (code === K.other) return false;
    if (code === K.punct && tokens.isChar(i, OPEN_PAREN)) return false;
    if (code === K.ident && (tokens.isWord(i, 'for') || tokens.isWord(i, 'into'))) return false;
  }
  return true;
}

function transactionControl(tokens: TokenList, first: string): FastAnswer | null {
  const last = statementEnd(tokens);
  if (last < 0) return null;
  let i = 1;
  if (first === 'start') {
    if (!tokens.isWord(1, 'transaction')) return null;
    i = 2;
  } else if (tokens.isWord(1, 'work') || tokens.isWord(1, 'transaction')) {
    i = 2;
  }
  const begins = first === 'begin' || first === 'start';
  const label = first === 'start' ? 'START TRANSACTION' : 'BEGIN';
  if (i === last) {
    if (begins) return { cls: 'transaction-begin', reason: label };
    return { cls: 'transaction-end', reason: first === 'commit' || first === 'end' ? 'COMMIT' : 'ROLLBACK' };
  }
  if (begins && i + 2 === last && tokens.isWord(i, 'read')) {
    if (tokens.isWord(i + 1, 'only'))
      return { cls: 'transaction-begin-read-only', reason: `${label} READ ONLY` };
    if (tokens.isWord(i + 1, 'write')) return { cls: 'transaction-begin', reason: label };
  }
  return null;
}
