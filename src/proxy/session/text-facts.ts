/**
 * What the session asks of a statement text, from its one analysis (src/sql/analyze.ts). Each
 * question has a cheap pre-check in front: most application texts plainly carry no session effect,
 * no hidden code and no DDL, and those (simple-protocol texts with literals differ every time) are
 * answered without touching the analysis cache at all.
 */
import { Analyzer } from '../../sql/analyze.js';
import { NO_EFFECTS } from '../../sql/analyze.js';
import { INNER_SEMICOLON, MAY_TRACK, cannotChangeSession } from '../../sql/session-effects.js';
import type { SessionEffect } from '../../sql/session-effects.js';
import { HIDING_WORDS, mayHideEffects } from '../../sql/session-safety.js';

/** For sessions given no analyzer (no read/write splitting): the default function policy. */
export const DEFAULT_ANALYZER = new Analyzer();

/** The session effects of each statement of the text (empty when it plainly has none). */
export function effectsOf(a: Analyzer, sql: string): readonly SessionEffect[] {
  return plainText(sql) || cannotChangeSession(sql) ? NO_EFFECTS : a.analyze(sql).effects;
}

/** Why running the text may change session state out of the proxy's sight, or null. */
export function riskOf(a: Analyzer, sql: string): string | null {
  return !plainText(sql) && mayHideEffects(sql) ? a.analyze(sql).risk : null;
}

/** A CREATE, ALTER or DROP (the hidden-code registry reloads after its transaction). */
export function ddlOf(a: Analyzer, sql: string): boolean {
  return !plainText(sql) && DDL_TEXT.test(sql) && a.analyze(sql).ddl;
}

const DDL_TEXT = /\b(?:create|alter|drop)\b/i;

/** Calls that leave sequence state in the session (currval, lastval read it). */
export const SEQUENCE_CALL = /nextval|setval/i;

/** The proxy's own settings (SET pgscale.target…). */
export const PROXY_SETTING_TEXT = /pgscale\./i;

/**
 * Everything any check of this module (and the session's pre-checks) looks for, in one pattern:
 * what may track session state (MAY_TRACK, which holds LISTEN), a second statement, a `(` or a
 * word that may hide code, DDL, sequence calls, pg_prepared_statements and the proxy's settings.
 * A text matching none of it (most simple-protocol texts: `SELECT … WHERE aid = 42`) is answered
 * by one scan instead of one per question.
 */
const ANY_CHECKED = new RegExp(
  [
    MAY_TRACK.source,
    INNER_SEMICOLON.source,
    '\\(',
    HIDING_WORDS.source,
    DDL_TEXT.source,
    SEQUENCE_CALL.source,
    'pg_prepared_statements',
    PROXY_SETTING_TEXT.source,
  ].join('|'),
  'i',
);

let lastText: string | null = null;
let lastPlain = false;

/**
 * True when `sql` holds nothing any text check looks for (see ANY_CHECKED): then it has no
 * session effects, no risk, no DDL, no sequence call, and is no LISTEN or proxy setting. The last
 * answer is kept: the session asks about one text several times in a row.
 */
export function plainText(sql: string): boolean {
  if (sql === lastText) return lastPlain;
  lastPlain = !ANY_CHECKED.test(sql);
  lastText = sql;
  return lastPlain;
}

/** COMMIT, END, COMMIT AND CHAIN (not COMMIT PREPARED, which commits another transaction). */
export const COMMIT_TEXT = /^\s*(commit|end)\b(?!\s+prepared)/i;

/** A text reading the session's prepared statements: only a connection of its own lists them right. */
export const LISTS_STATEMENTS = /pg_prepared_statements/i;
