/**
 * For each statement of a simple-protocol Query text, what it does to session state (see
 * `SessionEffect`). A lexer-level reading of the first words of each statement plus a scan of
 * all its tokens for calls that pin the session; it never throws, takes time linear in the text,
 * and answers `other` for whatever it does not recognise. Statements the server would reject
 * still get an answer; the caller learns from the server's reply whether they ran.
 */
import type { SessionEffect } from './session-effect.js';
import type { LexOptions } from './token.js';
import type { TokenList } from './token-list.js';
import { lex } from './lexer.js';
import { eachStatement } from './split.js';
import { StatementTokens, STAR } from './statement-tokens.js';
import { setEffect, resetEffect } from './set-statement.js';
import { preparedRef } from './prepared-refs.js';
import { findStickyCall } from './sticky-calls.js';
import { createsTemp, declaresWithHold, selectsIntoTemp } from './temp-objects.js';
import { doBlockStickyReason } from './do-block.js';

export type { SessionEffect } from './session-effect.js';

const OTHER: SessionEffect = { kind: 'other' };

/**
 * Words without which no statement can have an effect beyond `other`, `begin`, `commit`,
 * `rollback` or `notify` (SET/RESET are handled apart, since `UPDATE … SET` is everywhere), and
 * characters that let text hide a word from a plain search: `\` (escapes in E'' strings, which a
 * DO body may use) and `&` (U&"…" identifiers and U&'…' strings with Unicode escapes). Matching is
 * ASCII-case-insensitive like PostgreSQL's own keyword folding.
 */
export const MAY_TRACK =
  /listen|prepare|execute|deallocate|discard|temp|hold|load|advisory|set_config|[\\&]|^\s*(?:(?:set|reset|do)(?![a-z0-9_$\u0080-\uffff])|--|\/\*)/i;
/** A `;` that ends a statement with more text after it than trailing white space. */
export const INNER_SEMICOLON = /;(?!\s*$)/;

/**
 * True when every statement of `sql` is certain to be `other`, `begin`, `commit`, `rollback` or
 * `notify` — effects a caller that tracks session state ignores — so that lexing it can be
 * skipped. A cheap, conservative pre-check for the proxy's hot path: most application queries
 * (`SELECT …`, `UPDATE … SET …`, `INSERT …`) contain none of the words or characters that could
 * make a statement change session state. False means "lex it", not "it changes the session".
 * Only one statement is judged this way (plus a trailing `;`): after a `;` the next statement's
 * first word could be SET, behind a comment.
 */
export function cannotChangeSession(sql: string): boolean {
  return !MAY_TRACK.test(sql) && !INNER_SEMICOLON.test(sql);
}

/** One effect per non-empty statement of `sql`, in order. */
export function sessionEffects(sql: string, options: LexOptions = {}): SessionEffect[] {
  return sessionEffectsOf(lex(sql, options));
}

/** The same, for text already lexed (the proxy lexes each Query once). */
export function sessionEffectsOf(tokens: TokenList): SessionEffect[] {
  const options: LexOptions = { standardConformingStrings: tokens.standardConformingStrings };
  const out: SessionEffect[] = [];
  eachStatement(tokens, (first, last) =>
    out.push(statementEffect(new StatementTokens(tokens, first, last), options)),
  );
  return out;
}

function statementEffect(s: StatementTokens, options: LexOptions): SessionEffect {
  const effect = classify(s, options);
  // A PREPARE's body does not run until EXECUTE, so a lock call inside it is not taken yet.
  if (effect.kind === 'prepare' || effect.kind === 'sticky') return effect;
  const reason = findStickyCall(s);
  return reason === null ? effect : { kind: 'sticky', reason };
}

function classify(s: StatementTokens, options: LexOptions): SessionEffect {
  const f = s.first;
  switch (s.word(f)) {
    case 'set':
      return setEffect(s);
    case 'reset':
      return resetEffect(s);
    case 'listen':
    case 'notify':
      return channelEffect(s, s.word(f) === 'listen' ? 'listen' : 'notify');
    case 'unlisten':
      return s.charOf(f + 1) === STAR && f + 2 === s.last
        ? { kind: 'unlisten', channel: '*' }
        : channelEffect(s, 'unlisten');
    case 'prepare':
    case 'execute':
    case 'deallocate':
    case 'explain':
      return preparedEffect(s);
    case 'create': {
      const temp = createsTemp(s, f);
      return temp === null ? preparedEffect(s) : sticky(temp);
    }
    case 'discard':
      return discardEffect(s);
    case 'begin':
      return { kind: 'begin' };
    case 'start':
      return s.isWord(f + 1, 'transaction') ? { kind: 'begin' } : OTHER;
    case 'commit':
    case 'end':
      return s.isWord(f + 1, 'prepared') ? OTHER : { kind: 'commit' };
    case 'rollback':
    case 'abort':
      return rollbackEffect(s);
    case 'declare':
      return declaresWithHold(s) ? sticky('DECLARE ... WITH HOLD') : OTHER;
    case 'load':
      return sticky('LOAD');
    case 'do': {
      const reason = doBlockStickyReason(s, options);
      return reason === null ? OTHER : sticky(reason);
    }
    default: {
      const reason = selectsIntoTemp(s);
      return reason === null ? OTHER : sticky(reason);
    }
  }
}

function channelEffect(s: StatementTokens, kind: 'listen' | 'unlisten' | 'notify'): SessionEffect {
  const channel = s.name(s.first + 1);
  return channel === undefined ? OTHER : { kind, channel };
}

function preparedEffect(s: StatementTokens): SessionEffect {
  const ref = preparedRef(s);
  if (ref === null) return OTHER;
  if (ref.op === 'deallocate_all') return { kind: 'deallocate', name: null };
  const name = s.name(ref.nameToken) ?? '';
  if (ref.op === 'prepare') return { kind: 'prepare', name, text: s.text() };
  return { kind: ref.op, name };
}

const DISCARDS = {
  all: 'all',
  plans: 'plans',
  sequences: 'sequences',
  temp: 'temp',
  temporary: 'temp',
} as const;

function discardEffect(s: StatementTokens): SessionEffect {
  const w = s.word(s.first + 1);
  const what =
    w !== undefined && Object.hasOwn(DISCARDS, w) ? DISCARDS[w as keyof typeof DISCARDS] : undefined;
  return what === undefined || s.first + 2 !== s.last ? OTHER : { kind: 'discard', what };
}

/** ROLLBACK/ABORT [WORK|TRANSACTION] [AND [NO] CHAIN]; ROLLBACK ... TO savepoint and PREPARED are not. */
function rollbackEffect(s: StatementTokens): SessionEffect {
  if (s.isWord(s.first + 1, 'prepared')) return OTHER;
  for (let i = s.first + 1; i < s.last; i++) if (s.isWord(i, 'to')) return OTHER;
  return { kind: 'rollback' };
}

function sticky(reason: string): SessionEffect {
  return { kind: 'sticky', reason };
}
