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
