/**
 * Messages the proxy answers itself (Route kind `local`, route.ts): the proxy's own settings,
 * LISTEN/UNLISTEN served by the fan-out connection, Close of a named statement, a Parse the pool's
 * connections already hold, Flush and Sync with nothing in flight. Each answer goes to the client in
 * order with the replies still due.
 */
import type { TypedFrame } from '../../protocol/framer.js';
import { decodeClose } from '../../protocol/frontend-messages.js';
import { buildErrorResponse } from '../../protocol/error-response.js';
import { SqlState } from '../../protocol/sqlstate.js';
import type { SessionEffect } from '../../sql/session-effects.js';
import { PROXY_SETTINGS } from '../frontend/startup-params.js';
import type { NotificationSink } from '../listener-hub.js';
import { CLOSE_COMPLETE, PARSE_COMPLETE, commandComplete, readyForQuery, renameParse } from '../rewrite.js';
import { EMPTY_SET } from './client-record.js';
import type { ForwardContext } from './context.js';
import { extendedEffects } from './forward-extended.js';
import type { LocalAnswer, MessageClass } from './route.js';
import type { Analyzer } from '../../sql/analyze.js';
import { PROXY_SETTING_TEXT, effectsOf, plainText } from './text-facts.js';

export interface LocalContext extends ForwardContext {
  /** Adds bytes for the client behind every reply still due. */
  replyInOrder(bytes: Buffer): void;
  /** Stops taking the client's messages until `answer` settles, then sends its bytes. */
  waitFor(answer: Promise<Buffer[]>): void;
  /** The session, as the fan-out knows it. */
  readonly subscriber: NotificationSink;
}

/** The one SET/RESET of a Query text, when it is the only statement. */
export function onlyEffect(a: Analyzer, query: string): SessionEffect | null {
  const effects = effectsOf(a, query);
  return effects.length === 1 ? effects[0]! : null;
}

/** A Query that sets or resets one of the proxy's own settings (and nothing else). */
export function isProxySetting(a: Analyzer, query: string): boolean {
  if (plainText(query) || !PROXY_SETTING_TEXT.test(query)) return false;
  const e = onlyEffect(a, query);
  return e !== null && (e.kind === 'set' || e.kind === 'reset') && e.name.startsWith('pgscale.');
}

/** A Query that is only LISTEN or UNLISTEN. */
export function isListen(a: Analyzer, query: string): boolean {
  if (plainText(query) || !/listen/i.test(query)) return false;
  const e = onlyEffect(a, query);
  return e !== null && (e.kind === 'listen' || e.kind === 'unlisten');
}

/**
 * Answers `answer` for `f`. `query`: the Query's text (proxy-setting, listen); `serverName`: the
 * Parse's statement name on servers (parse-known).
 */
export function answerLocally(
  ctx: LocalContext,
  answer: LocalAnswer,
  f: TypedFrame,
  query: string,
  serverName: string,
  cls: MessageClass,
): void {
  switch (answer) {
    case 'proxy-setting':
      return answerProxySetting(ctx, onlyEffect(ctx.analyzer, query)!);
    case 'listen':
      return answerListen(ctx, onlyEffect(ctx.analyzer, query)!);
    case 'close-statement': {
      const c = decodeClose(f.payload);
      if (c.ok) ctx.record.ownStatements().delete(c.value.targetName);
      return ctx.replyInOrder(CLOSE_COMPLETE);
    }
    case 'flush':
      return;
    case 'parse-known': {
      // A statement some connection of the pool has already prepared: answered here, prepared on
      // whichever connection the Bind lands (pgbench and pgjdbc prepare with a blocking Parse+Sync;
      // needing a server just to say ParseComplete can deadlock a busy pool).
      const p = ctx.record.parseOf(f, ctx.analyzer);
      if (!p.ok) return;
      const facts = p.value.facts;
      ctx.record.ownStatements().set(p.value.statement, {
        serverName,
        parse: renameParse(f.payload, serverName),
        effects: extendedEffects(ctx, facts.effects),
        risk: facts.risk,
        ddl: facts.ddl,
        seq: facts.sequenceCall,
        cls,
      });
      return ctx.replyInOrder(PARSE_COMPLETE);
    }
    case 'idle-sync':
      // Nothing is running: a Sync alone only asks for ReadyForQuery.
      return ctx.replyInOrder(readyForQuery('I'));
  }
}

/**
 * `SET pgscale.target = primary` and friends are the proxy's own: answered here (PostgreSQL would
 * even reject the unquoted keyword `primary`), in order with the replies still due.
 */
function answerProxySetting(ctx: LocalContext, e: SessionEffect): void {
  if (e.kind !== 'set' && e.kind !== 'reset') return;
  const r = ctx.record;
  let reply: Buffer;
  if (e.kind === 'set') {
    const v = e.value.replace(/^'(.*)'$/s, '$1').toLowerCase();
    const allowed = PROXY_SETTINGS[e.name];
    if (!allowed || !allowed.includes(v)) {
      reply = buildErrorResponse(
        'ERROR',
        SqlState.INVALID_PARAMETER_VALUE,
        allowed
          ? `invalid value for parameter "${e.name}": "${v}" (accepted: ${allowed.join(', ')})`
          : `unrecognized configuration parameter "${e.name}"`,
      );
    } else {
      r.ownProxySettings().set(e.name, v);
      reply = commandComplete('SET');
    }
  } else {
    // RESET goes back to the start-up value, as PostgreSQL's RESET does.
    const v = r.startupProxySettings?.get(e.name);
    if (v !== undefined) r.ownProxySettings().set(e.name, v);
    else r.ownProxySettings().delete(e.name);
    reply = commandComplete('RESET');
  }
  ctx.replyInOrder(Buffer.concat([reply, readyForQuery(ctx.tx.status)]));
}

/** LISTEN/UNLISTEN alone in a Query outside a transaction: served by the fan-out connection. */
function answerListen(ctx: LocalContext, e: SessionEffect): void {
  const hub = ctx.opts.listeners!;
  const r = ctx.record;
  if (e.kind === 'listen') {
    r.ownChannels().add(e.channel);
    ctx.waitFor(
      hub
        .subscribe(e.channel, ctx.subscriber)
        .then((ok) => [
          ok
            ? commandComplete('LISTEN')
            : buildErrorResponse(
                'ERROR',
                SqlState.CONNECTION_FAILURE,
                'LISTEN failed: the listener connection is unavailable',
              ),
          readyForQuery('I'),
        ]),
    );
    return;
  }
  if (e.kind !== 'unlisten') return;
  if (e.channel === '*') {
    for (const ch of r.channels) hub.unsubscribe(ch, ctx.subscriber);
    r.channels = EMPTY_SET;
  } else {
    r.ownChannels().delete(e.channel);
    hub.unsubscribe(e.channel, ctx.subscriber);
  }
  ctx.replyInOrder(commandComplete('UNLISTEN'));
  ctx.replyInOrder(readyForQuery('I'));
}
