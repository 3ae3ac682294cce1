/**
 * Whether running a statement may leave state in the server's session that the proxy cannot see
 * (then the session is checked before the connection changes hands), or sequence state of the
 * client (then DISCARD SEQUENCES first), given the database's hidden-code registry.
 */
import { encodingTag } from '../client-encoding.js';
import type { ForwardContext } from './context.js';
import { SEQUENCE_CALL, plainText } from './text-facts.js';

export const SHADOWED = 'a call under a search_path that puts a schema before pg_catalog';

/** The search_path in force lets user functions shadow built-ins (ClientRecord.shadowsBuiltins). */
export function shadowsBuiltins(ctx: ForwardContext): boolean {
  return ctx.record.shadowsBuiltins(ctx.tx.settings, ctx.opts.hiddenCode?.defaultPathShadows ?? false);
}

/** A write that may reach a relation whose column takes a sequence value (defaults, identity). */
export function writesSequenceRelation(ctx: ForwardContext, text: string): boolean {
  const hidden = ctx.opts.hiddenCode;
  if (!hidden || text === '') return false;
  if (!hidden.sequenceRiskOfText(text, ctx.tx.ddlInTx)) return false;
  // Without read/write splitting the class is not computed: a write, to be safe.
  return !ctx.opts.analyzer || ctx.analyzer.analyze(text).classification.cls !== 'read';
}

/** Running `sql` may leave sequence state in the server's session (see TxState.seqDirty). */
export function mayUseSequence(ctx: ForwardContext, sql: string): boolean {
  if (!plainText(sql) && SEQUENCE_CALL.test(sql)) return true;
  return ctx.opts.hiddenCode?.mayHaveSequences === true && writesSequenceRelation(ctx, sql);
}

/** The encoding tag for a statement name of this text (client-encoding.ts). */
export function tagOf(ctx: ForwardContext, text: string): string {
  return encodingTag(text, ctx.tx.settings, ctx.record.settings, ctx.opts.startupSettings);
}
