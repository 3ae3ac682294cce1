/**
 * The facts of a client message that routing needs (route.ts MessageFacts): where it may run (its
 * text's class from the one analysis, the client's hint and pgscale.target), and whether the proxy
 * can answer it itself. A Bind's class is the one its statement got at Parse.
 */
import type { TypedFrame } from '../../protocol/framer.js';
import { bindNames, decodeClose } from '../../protocol/frontend-messages.js';
import type { StatementFacts } from '../../sql/analyze.js';
import type { decodeQuery } from '../../protocol/frontend-messages.js';
import type { ForwardContext } from './context.js';
import { isListen, isProxySetting } from './local-answers.js';
import type { MessageClass, MessageFacts } from './route.js';
import { protocolStatementName } from './statement-names.js';
import { tagOf } from './statement-risk.js';

export interface FactsContext extends ForwardContext {
  /** The Query's text, decoded once per frame. */
  queryOf(f: TypedFrame): ReturnType<typeof decodeQuery>;
}

export type Facts = MessageFacts & {
  /** A Parse's statement name on servers, when computed (parse-known). */
  readonly serverName: string;
};

/**
 * One shape for every facts object, built field by field: an object spread compiles to a helper
 * that walks the properties, and this runs for every message (it cost 2.5× the hot path's CPU).
 */
function facts(
  type: string,
  cls: MessageClass,
  proxySetting = false,
  listen = false,
  closesNamedStatement = false,
  parseKnown = false,
  serverName = '',
): Facts {
  return { type, cls, proxySetting, listen, closesNamedStatement, parseKnown, serverName };
}

/** The facts of one message; `free`: no server is attached (local answers are possible). */
export function messageFacts(ctx: FactsContext, f: TypedFrame, free: boolean): Facts {
  const { opts, tx } = ctx;
  // Without replicas the class decides nothing (every route is the primary): not computed.
  const cls = opts.router || opts.horizon ? messageClass(ctx, f) : 'write';
  if (f.type === 'Q') {
    const q = ctx.queryOf(f);
    if (!q.ok) return constFacts('Q', cls);
    const sql = q.value.query;
    const listen = free && opts.listeners !== null && tx.status === 'I' && isListen(ctx.analyzer, sql);
    const proxySetting = isProxySetting(ctx.analyzer, sql);
    return proxySetting || listen ? facts('Q', cls, proxySetting, listen) : constFacts('Q', cls);
  }
  if (f.type === 'P' && free && !ctx.record.pinned && tx.status === 'I') {
    const p = ctx.record.parseOf(f, ctx.analyzer);
    if (p.ok && p.value.statement !== '') {
      const serverName = protocolStatementName(p.value.query, p.value.paramTypes, tagOf(ctx, p.value.query));
      return facts('P', cls, false, false, false, opts.pool.knownStatements.has(serverName), serverName);
    }
  }
  if (f.type === 'C' && free) {
    const c = decodeClose(f.payload);
    const named = c.ok && c.value.target === 'statement' && c.value.targetName !== '';
    return facts('C', cls, false, false, named);
  }
  return constFacts(f.type, cls);
}

/** Facts of messages without text (Bind, Describe, Execute, Sync…): shared, one per type and class. */
const CONST_FACTS: Record<MessageClass, (Facts | undefined)[]> = {
  read: [],
  write: [],
  neutral: [],
  'primary-read': [],
};

function constFacts(type: string, cls: MessageClass): Facts {
  // Message types are single bytes: an array indexed by the type's code, no hashing.
  const byType = CONST_FACTS[cls];
  return (byType[type.charCodeAt(0)] ??= Object.freeze(facts(type, cls)));
}

/** Only the class (for the messages queued before attaching). */
export function classFacts(ctx: FactsContext, f: TypedFrame): Facts {
  return constFacts(f.type, messageClass(ctx, f));
}

/** Where a message may run: a read (a replica may serve it), a write (the primary), or neutral. */
export function messageClass(ctx: FactsContext, f: TypedFrame): MessageClass {
  if (!ctx.opts.analyzer) return 'write';
  let facts: StatementFacts | null = null;
  if (f.type === 'Q') {
    const q = ctx.queryOf(f);
    if (q.ok) facts = ctx.analyzer.analyze(q.value.query);
  } else if (f.type === 'P') {
    const p = ctx.record.parseOf(f, ctx.analyzer);
    if (p.ok) facts = p.value.facts;
  } else if (f.type === 'B') {
    const b = bindNames(f.chunk, f.start + 5, f.end);
    if (b !== null && b.statement !== '') {
      const st = ctx.record.statements.get(b.statement);
      return st ? st.cls : 'neutral';
    }
    return 'neutral';
  } else if (f.type === 'F') {
    return 'write';
  } else {
    return 'neutral';
  }
  if (facts === null) return 'write';
  const c = facts.classification;
  const target = c.hint ?? ctx.record.proxySettings.get('pgscale.target') ?? 'any';
  const read = c.cls === 'read' || c.cls === 'transaction-begin-read-only';
  if (target === 'primary') return read ? 'primary-read' : 'write';
  if (target === 'replica') return 'read';
  if (read) return 'read';
  if (c.cls === 'session' || c.cls === 'transaction-end') return 'neutral';
  return 'write';
}
