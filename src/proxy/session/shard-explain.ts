/**
 * EXPLAIN in a sharded session (docs/sharding.md, "Seeing the route"): the route the router gives
 * an EXPLAIN (its group, shards and reason) is noted when the statement is routed, and written
 * into the reply (explain-note.ts): on the leg that runs it (armed just before it is forwarded),
 * or into the sharding host's replies for a statement on every group. Only a Query or a Bind whose
 * text starts with EXPLAIN is looked at further than one regular expression.
 */
import type { TypedFrame } from '../../protocol/framer.js';
import { mayBeExplain } from '../../sharding/explain-route.js';
import type { ClientRecord } from './client-record.js';
import { ExplainRewrite, type ExplainNote } from './explain-note.js';
import type { ServerLeg } from './server-leg.js';
import { bindParams, type SessionSharding } from './shard-target.js';

/** What the note needs of the session. */
export interface ExplainSession {
  readonly record: ClientRecord;
  queryOf(f: TypedFrame): { ok: true; value: { query: string } } | { ok: false };
}

/** The route note of message `f` when it runs an EXPLAIN (a Query, or a Bind of one), else null. */
export function explainNoteOf(
  s: ExplainSession,
  sharding: SessionSharding,
  f: TypedFrame,
  /** The text of the statement a Bind names (boundText). */
  textOf: (bind: TypedFrame) => string | null,
  /** mayBeExplain, or what remembers it per text. */
  mayExplain: (text: string) => boolean = mayBeExplain,
): ExplainNote | null {
  if (sharding.explain === undefined) return null;
  if (f.type === 'Q') {
    const q = s.queryOf(f);
    if (!q.ok || !mayBeExplain(q.value.query)) return null;
    return sharding.explain(q.value.query, []);
  }
  if (f.type !== 'B') return null;
  const text = textOf(f);
  if (text === null || !mayExplain(text)) return null;
  const params = bindParams(f);
  return params === null ? null : sharding.explain(text, params);
}

/** Arms `leg` with the note: the statement forwarded next has its DataRows rewritten. */
export function armExplain(leg: ServerLeg, note: ExplainNote): void {
  leg.explainArmed = new ExplainRewrite(note, {
    group: leg.group,
    server: leg.replica === null ? 'primary' : 'replica',
  });
}

/** The sharding host's replies for an EXPLAIN of a statement on every group, with the route. */
export function explainHostReplies(note: ExplainNote | null, home: string, replies: Buffer[]): Buffer[] {
  if (note === null) return replies;
  return new ExplainRewrite(note, { group: home, server: 'primary' }).rewriteReplies(replies);
}
