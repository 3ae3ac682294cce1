/**
 * Where a sharded session's client message must run (ShardSteps, shard-steps.ts): a Query by its
 * text, a Parse by the Bind that follows it in the same batch, a Bind by its statement's text and
 * values; and, for a held-back BEGIN, the group of the first queued statement that names one.
 */
import type { TypedFrame } from '../../protocol/framer.js';
import { decodeParse } from '../../protocol/frontend-messages.js';
import type { StepHost } from './shard-api.js';
import { nullIfNeedsParams } from './shard-step-texts.js';
import { bindAfter, bindParams, boundText } from './shard-target.js';
import type { ShardTarget } from './shard-target.js';

const NO_PARAMS: readonly never[] = [];

/** The group of the first message queued that names one (a pipeline's first statement on shards). */
export function placeAhead(x: StepHost): string | null {
  for (let i = 1; i < x.s.inbox.length; i++) {
    const g = x.s.inbox[i]!;
    if (g.type !== 'Q' && g.type !== 'P' && g.type !== 'B') continue;
    const t = targetAt(x, g, i);
    if (t === 'wait' || t === null) continue;
    if (t.kind === 'group') return t.group;
    if (t.kind === 'home') return x.s.homeGroup;
    return null;
  }
  return null;
}

/** Where the message `f` at `at` in the inbox must run by its shards; null: anywhere; 'wait': more input first. */
export function targetAt(x: StepHost, f: TypedFrame, at: number): ShardTarget | null | 'wait' {
  switch (f.type) {
    case 'Q': {
      const q = x.s.queryOf(f);
      return q.ok ? x.sharding.target(q.value.query, NO_PARAMS, x.searchPath()) : null;
    }
    case 'P': {
      const p = at === 0 ? x.s.record.parseOf(f, x.s.analyzer) : decodeParse(f.payload);
      if (!p.ok) return null;
      const { statement, query } = p.value;
      if (statement === '' && at === 0) x.unnamedText = query;
      const t = x.sharding.target(query, null, x.searchPath());
      if (t.kind !== 'needs-params') return t;
      // Its shards depend on its parameters: route it with the Bind that follows. Without one
      // in this batch it may go anywhere (a Describe round); a Bind later re-prepares it where
      // its shards are. Until a Sync or Flush shows the batch is complete, wait for more.
      const b = bindAfter(x.s.inbox, at + 1, statement);
      if (b !== null) {
        const params = bindParams(b);
        return params === null ? null : nullIfNeedsParams(x.sharding.target(query, params, x.searchPath()));
      }
      for (let i = at + 1; i < x.s.inbox.length; i++) {
        const type = x.s.inbox[i]!.type;
        if (type === 'S' || type === 'H' || type === 'Q') return null;
      }
      return 'wait';
    }
    case 'B': {
      const text = at === 0 ? x.boundText(f) : boundText(x.s.record, f, x.unnamedText);
      if (text === null) return null;
      const params = bindParams(f);
      return params === null ? null : nullIfNeedsParams(x.sharding.target(text, params, x.searchPath()));
    }
    default:
      return null;
  }
}
