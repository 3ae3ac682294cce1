/**
 * The words of a sharded session's steps (shard-steps.ts): the refusals' messages, the patterns
 * of transaction control the proxy answers itself, and the statements it sends a server in the
 * client's place (a failing DO block; a Query or Parse rewritten for the global tables).
 */
import { TypedMessage } from '../../protocol/framer.js';
import type { TypedFrame } from '../../protocol/framer.js';
import { decodeParse, encodeFrontendMessage } from '../../protocol/frontend-messages.js';
import type { ShardTarget } from './shard-target.js';

export const CROSS_GROUP =
  'an extended-protocol pipeline runs on one group until its Sync: a statement on the shards of another group must follow a Sync';

/** A Query that only starts a transaction block (its options are kept: sent as written). */
export const BEGIN_ONLY = /^\s*(begin|start\s+transaction)\b[^;'"$]*;?\s*$/i;
/** A Query that only ends one. */
export const TX_END = /^\s*(commit|end|rollback|abort)\b(?:\s+(?:work|transaction))?\s*;?\s*$/i;
export const ABORTED = 'current transaction is aborted, commands ignored until end of transaction block';
/** Messages that never decide a transaction's group: they follow what came before them. */
export const DATA_FREE: ReadonlySet<string> = new Set(['D', 'E', 'C', 'H', 'S', 'd', 'c', 'f']);

export const GLOBAL_AFTER_WRITE =
  "this read needs several groups, and this transaction has written: reads across groups run over the global tables, which see committed rows only, not this transaction's writes; read before writing, or after COMMIT";
export const GLOBAL_REPREPARE =
  'this prepared statement reads several groups with these parameters, but it was prepared before they were known (a Parse without its Bind): prepare it again together with its Bind, or send it unprepared';
export const HELD_COPY =
  'a transaction block that ran a COPY into a sharded table can only end (COMMIT or ROLLBACK): its other statements would need a transaction on several groups';
export const PINNED_GROUP =
  'this session keeps one server connection (session pooling, or session state such as temporary tables): statements on shards of other groups need transaction pooling';

export function nullIfNeedsParams(t: ShardTarget): ShardTarget | null {
  return t.kind === 'needs-params' ? null : t;
}

/** A statement that fails with `sqlstate` and `message` on the server (a transaction there aborts). */
export function raiseSql(sqlstate: string, message: string): string {
  const lit = (v: string) => `'${v.replace(/'/g, "''")}'`;
  const body = `BEGIN RAISE EXCEPTION USING ERRCODE = ${lit(sqlstate)}, MESSAGE = ${lit(message.replace(/\$/g, ''))}; END`;
  return `DO $pgscale$${body}$pgscale$`;
}

/**
 * The client's Query or Parse `f` with its text replaced by `text` (a read rewritten for the
 * global tables), and the name of the statement a Parse prepares; null for any other message.
 */
export function withText(
  f: TypedFrame,
  text: string,
): { frame: TypedFrame; statement: string | null } | null {
  if (f.type === 'Q')
    return { frame: TypedMessage.of(encodeFrontendMessage({ name: 'Query', query: text })), statement: null };
  if (f.type !== 'P') return null;
  const p = decodeParse(f.payload);
  if (!p.ok) return null;
  const { statement, paramTypes } = p.value;
  return {
    frame: TypedMessage.of(encodeFrontendMessage({ name: 'Parse', statement, query: text, paramTypes })),
    statement,
  };
}
