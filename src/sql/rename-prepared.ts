/**
 * Rewrites the names of SQL-level prepared statements in a Query text (PREPARE, EXECUTE,
 * EXPLAIN ... EXECUTE, CREATE TABLE ... AS EXECUTE, DEALLOCATE), leaving every other byte as
 * it was. Server connections are shared between clients in transaction pooling, so two clients'
 * `PREPARE q` must reach the server under different names; the caller's `rename` decides them.
 */
import type { LexOptions } from './token.js';
import { lex } from './lexer.js';
import { eachStatement } from './split.js';
import { StatementTokens } from './statement-tokens.js';
import { preparedRef } from './prepared-refs.js';
import { quoteIdentifier } from './quote-ident.js';

/**
 * `sql` with each prepared-statement name `n` replaced by `rename(n)` where that returns a
 * non-empty name different from `n` (quoted as needed). Names longer than 63 bytes are truncated
 * by the server (NAMEDATALEN), so `rename` should keep its names short enough to stay distinct.
 */
export function renamePreparedRefs(
  sql: string,
  rename: (name: string) => string | undefined,
  options: LexOptions = {},
): string {
  const tokens = lex(sql, options);
  let out = '';
  let pos = 0;
  eachStatement(tokens, (first, last) => {
    const s = new StatementTokens(tokens, first, last);
    const ref = preparedRef(s);
    if (ref === null || ref.op === 'deallocate_all') return;
    const name = s.name(ref.nameToken) ?? '';
    const renamed = rename(name);
    if (renamed === undefined || renamed === '' || renamed === name) return;
    out += sql.slice(pos, tokens.start(ref.nameToken)) + quoteIdentifier(renamed);
    pos = tokens.end(ref.nameToken);
  });
  return pos === 0 ? sql : out + sql.slice(pos);
}
/** Where a rename changed the text: offsets and lengths in characters (code points). */
export interface RenameSpan {
  /** First character of the new name in the rewritten text (0-based). */
  readonly start: number;
  readonly newLength: number;
  readonly oldLength: number;
}

/**
 * renamePreparedRefs with the rename decided per statement (`index` counts the text's non-empty
 * statements from 0, as sessionEffects does), returning the spans it changed so that a position
 * the server reports in the rewritten text can be mapped back to the client's (mapPosition).
 */
export function renamePreparedRefsAt(
  sql: string,
  rename: (name: string, index: number) => string | undefined,
  options: LexOptions = {},
): { text: string; spans: RenameSpan[] } {
  const tokens = lex(sql, options);
  let out = '';
  let pos = 0;
  let index = 0;
  let outChars = 0;
  const spans: RenameSpan[] = [];
  eachStatement(tokens, (first, last) => {
    const i = index++;
    const s = new StatementTokens(tokens, first, last);
    const ref = preparedRef(s);
    if (ref === null || ref.op === 'deallocate_all') return;
    const name = s.name(ref.nameToken) ?? '';
    const renamed = rename(name, i);
    if (renamed === undefined || renamed === '' || renamed === name) return;
    const before = sql.slice(pos, tokens.start(ref.nameToken));
    const quoted = quoteIdentifier(renamed);
    outChars += charCount(before);
    spans.push({
      start: outChars,
      newLength: charCount(quoted),
      oldLength: charCount(sql.slice(tokens.start(ref.nameToken), tokens.end(ref.nameToken))),
    });
    outChars += charCount(quoted);
    out += before + quoted;
    pos = tokens.end(ref.nameToken);
  });
  return pos === 0 ? { text: sql, spans } : { text: out + sql.slice(pos), spans };
}

/**
 * A 1-based character position in the rewritten text (an ErrorResponse's `P`) as a position in
 * the client's text: shifted by the renames before it, or the start of the name it falls in.
 */
export function mapPosition(position: number, spans: readonly RenameSpan[]): number {
  const i = position - 1;
  let shift = 0;
  for (const s of spans) {
    if (i < s.start) break;
    if (i < s.start + s.newLength) return s.start - shift + 1;
    shift += s.newLength - s.oldLength;
  }
  return position - shift;
}

function charCount(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // The second half of a surrogate pair is not a character of its own.
    if (c < 0xdc00 || c > 0xdfff || i === 0 || (s.charCodeAt(i - 1) & 0xfc00) !== 0xd800) n++;
  }
  return n;
}
