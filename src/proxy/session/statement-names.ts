/**
 * Server-side names of the client's prepared statements in transaction pooling: derived from the
 * text, so the same statement has the same name on every server connection, and a connection that
 * already holds it needs no second Parse.
 */
import { createHash } from 'node:crypto';
import { encodeText, hasRawBytes } from '../../protocol/sql-text.js';
import { renamePreparedRefs } from '../../sql/rename-prepared.js';

function hash(s: string): string {
  // Raw bytes of a client not in UTF8 (sql-text.ts) are hashed as they came: as UTF-8 they
  // would all be U+FFFD, and two different statements would share a name.
  return createHash('sha256')
    .update(hasRawBytes(s) ? encodeText(s) : s)
    .digest('hex')
    .slice(0, 32);
}

/**
 * Server-side name of a protocol-level statement: same text and types, same name, on every
 * connection. `tag`: the client's encoding for non-ASCII text of a client not in UTF8 (encodingTag).
 */
export function protocolStatementName(query: string, types: readonly number[], tag = ''): string {
  return `pgscale_p_${hash(`${tag === '' ? '' : `${tag}\0`}${types.join(',')}\0${query}`)}`;
}

/**
 * Server-side name of an SQL PREPARE: the same name and text give the same name on every
 * connection (and two names of one text stay apart, so that one's DEALLOCATE keeps the other).
 */
export function sqlStatementName(name: string, prepareText: string, tag: string): string {
  return `pgscale_s_${hash(`${tag === '' ? '' : `${tag}\0`}${name}\0${renamePreparedRefs(prepareText, () => 'x')}`)}`;
}

/** `text` with the prepared-statement name `from` renamed `to` (PREPARE, EXECUTE, DEALLOCATE). */
export function renameIn(text: string, from: string, to: string): string {
  return renamePreparedRefs(text, (n) => (n === from ? to : undefined));
}
