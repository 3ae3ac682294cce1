/**
 * What the session asks of a statement text, from its one analysis (src/sql/analyze.ts). Each
 * question has a cheap pre-check in front: most application texts plainly carry no session effect,
 * no hidden code and no DDL, and those (simple-protocol texts with literals differ every time) are
 * answered without touching the analysis cache at all.
 */
import { Analyzer } from '../../sql/analyze.js';
import { NO_EFFECTS } from '../../sql/analyze.js';
import { cannotChangeSession } from '../../sql/session-effects.js';
import type { SessionEffect } from '../../sql/session-effects.js';
import { mayHideEffects } from '../../sql/session-safety.js';

/** For sessions given no analyzer (no read/write splitting): the default function policy. */
export const DEFAULT_ANALYZER = new Analyzer();

/** The session effects of each statement of the text (empty when it plainly has none). */
export function effectsOf(a: Analyzer, sql: string): readonly SessionEffect[] {
  return cannotChangeSession(sql) ? NO_EFFECTS : a.analyze(sql).effects;
}

/** Why running the text may change session state out of the proxy's sight, or null. */
export function riskOf(a: Analyzer, sql: string): string | null {
  return mayHideEffects(sql) ? a.analyze(sql).risk : null;
}

/** A CREATE, ALTER or DROP (the hidden-code registry reloads after its transaction). */
export function ddlOf(a: Analyzer, sql: string): boolean {
  return DDL_TEXT.test(sql) && a.analyze(sql).ddl;
}

const DDL_TEXT = /\b(?:create|alter|drop)\b/i;

/** Calls that leave sequence state in the session (currval, lastval read it). */
export const SEQUENCE_CALL = /nextval|setval/i;

/** COMMIT, END, COMMIT AND CHAIN (not COMMIT PREPARED, which commits another transaction). */
export const COMMIT_TEXT = /^\s*(commit|end)\b(?!\s+prepared)/i;

/** A text reading the session's prepared statements: only a connection of its own lists them right. */
export const LISTS_STATEMENTS = /pg_prepared_statements/i;
