/**
 * Transaction control and API calls sent with the extended protocol, for the shard steps: a BEGIN
 * prepared and executed (pgbench -M extended/prepared, pgjdbc, which sends its BEGIN in the same
 * batch as the first statement) is held back like a simple-protocol BEGIN, so the transaction is
 * placed by its first statement; and a Citus API call arrives as Parse/Bind/Execute (pgjdbc) with
 * its arguments as Bind parameters. Pure: which messages make the batch, and the replies.
 */
import { encodeBackendMessage } from '../../protocol/backend-messages.js';
import type { TypedFrame } from '../../protocol/framer.js';
import { bindNames, decodeDescribe, decodeExecute, decodeParse } from '../../protocol/frontend-messages.js';
import { commandComplete, readyForQuery } from '../rewrite.js';

/** The messages of one BEGIN at the head of the inbox: [Parse], Bind, [Describe], Execute, [Sync]. */
export interface BeginBatch {
  /** How many messages it takes. */
  readonly count: number;
  /** The statement's text (BEGIN …). */
  readonly text: string;
  /** Its replies, in order (ending with ReadyForQuery 'T' when the batch takes its Sync). */
  readonly replies: readonly Buffer[];
  /** The batch parsed the unnamed statement. */
  readonly unnamedParse: boolean;
  /** A named Parse in the batch: the record must learn the statement (its name, the Parse). */
  readonly parsed: { readonly name: string; readonly frame: TypedFrame; readonly query: string } | null;
  /**
   * Only Parse and Describe of the statement, then Flush or Sync (postgres.js learns a statement
   * that way before it runs it): nothing is executed (`allowDescribe` only).
   */
  readonly describeOnly?: boolean;
}

const PARSE_COMPLETE = encodeBackendMessage({ name: 'ParseComplete' });
const BIND_COMPLETE = encodeBackendMessage({ name: 'BindComplete' });
const NO_DATA = encodeBackendMessage({ name: 'NoData' });
const NO_PARAMS = encodeBackendMessage({ name: 'ParameterDescription', typeOids: [] });

/**
 * A batch at the head of `inbox` that only runs a statement whose text `isBegin` accepts; 'wait'
 * when it is cut short (more is coming); null when the head is not one. `textOf` gives the text
 * of the statement a Bind names (the session's boundText, null: unknown).
 */
export function beginBatch(
  inbox: readonly TypedFrame[],
  textOf: (bind: TypedFrame) => string | null,
  isBegin: (text: string) => boolean,
  allowDescribe = false,
): BeginBatch | 'wait' | null {
  let i = 0;
  let text: string | null = null;
  let statement = '';
  const replies: Buffer[] = [];
  let parsed: BeginBatch['parsed'] = null;
  let f = inbox[i];
  if (f === undefined) return 'wait';
  if (f.type === 'P') {
    const p = decodeParse(f.payload);
    if (!p.ok || !isBegin(p.value.query) || p.value.paramTypes.length > 0) return null;
    text = p.value.query;
    statement = p.value.statement;
    if (statement !== '') parsed = { name: statement, frame: f, query: text };
    replies.push(PARSE_COMPLETE);
    f = inbox[++i];
    if (f === undefined) return 'wait';
    if (allowDescribe && f.type === 'D') {
      // Described before it is bound (postgres.js): no parameters, no rows.
      const d = decodeDescribe(f.payload);
      if (!d.ok || d.value.target !== 'statement' || d.value.targetName !== statement) return null;
      replies.push(NO_PARAMS, NO_DATA);
      f = inbox[++i];
      if (f === undefined) return 'wait';
      if (f.type === 'H' || f.type === 'S') {
        return {
          count: i + 1,
          text,
          replies: f.type === 'S' ? [...replies, readyForQuery('T')] : replies,
          parsed,
          unnamedParse: parsed === null,
          describeOnly: true,
        };
      }
    }
  }
  if (f.type !== 'B') return null;
  // A Bind first: its statement's text decides (the common case: not a BEGIN) before its names.
  const bound = text === null ? textOf(f) : null;
  if (text === null && (bound === null || !isBegin(bound))) return null;
  const names = bindNames(f.chunk, f.start + 5, f.end);
  if (names === null) return null;
  if (text === null) {
    text = bound!;
    statement = names.statement;
  } else if (names.statement !== statement) return null;
  const portal = names.portal;
  replies.push(BIND_COMPLETE);
  f = inbox[++i];
  if (f === undefined) return 'wait';
  if (f.type === 'D') {
    const d = decodeDescribe(f.payload);
    if (!d.ok) return null;
    if (d.value.target === 'portal' && d.value.targetName === portal) replies.push(NO_DATA);
    else if (d.value.target === 'statement' && d.value.targetName === statement)
      replies.push(NO_PARAMS, NO_DATA);
    else return null;
    f = inbox[++i];
    if (f === undefined) return 'wait';
  }
  if (f.type !== 'E') return null;
  const e = decodeExecute(f.payload);
  if (!e.ok || e.value.portal !== portal) return null;
  replies.push(commandComplete('BEGIN'));
  f = inbox[++i];
  if (f === undefined) return 'wait';
  if (f.type === 'S') {
    replies.push(readyForQuery('T'));
    i++;
  }
  return { count: i, text, replies, parsed, unnamedParse: replies[0] === PARSE_COMPLETE && parsed === null };
}

/**
 * An API call's text with its Bind parameters written in as literals (`$1` → `'users'`), so the
 * call reads as the simple-protocol one does; parameters inside quotes are left alone.
 */
export function withParams(sql: string, params: readonly (string | null)[]): string {
  let out = '';
  let quote: string | null = null;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i]!;
    if (quote !== null) {
      out += c;
      if (c === quote) quote = null;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      out += c;
      continue;
    }
    if (c === '$') {
      const m = /^\$(\d+)/.exec(sql.slice(i));
      if (m) {
        const v = params[Number(m[1]) - 1];
        out += v === undefined || v === null ? 'NULL' : `'${v.replace(/'/g, "''")}'`;
        i += m[0].length - 1;
        continue;
      }
    }
    out += c;
  }
  return out;
}
