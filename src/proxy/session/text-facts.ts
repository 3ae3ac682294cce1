/**
 * What the session needs to know of a statement text, each behind a cache: drivers send the same
 * few texts over and over.
 */
import { cannotChangeSession, sessionEffects } from '../../sql/session-effects.js';
import type { SessionEffect } from '../../sql/session-effects.js';
import { hiddenEffectRisk, mayHideEffects } from '../../sql/session-safety.js';

const EFFECTS_CACHE_SIZE = 2000;
/** Longer texts are lexed every time: 2,000 cached keys of up to max_packet_size would be unbounded. */
const EFFECTS_CACHE_MAX_KEY = 16 * 1024;
const effectsCache = new Map<string, readonly SessionEffect[]>();
const NO_EFFECTS: readonly SessionEffect[] = Object.freeze([]);

/**
 * sessionEffects by statement text, cached. Texts that plainly cannot touch session state (most
 * queries; simple-protocol texts with literals differ every time, so a cache would not help them)
 * skip the lexer and the cache: empty, which every caller treats like a list of `other`.
 */
export function cachedEffects(query: string): readonly SessionEffect[] {
  if (cannotChangeSession(query)) return NO_EFFECTS;
  let e = effectsCache.get(query);
  if (e) return e;
  e = sessionEffects(query);
  if (query.length > EFFECTS_CACHE_MAX_KEY) return e;
  if (effectsCache.size >= EFFECTS_CACHE_SIZE)
    effectsCache.delete(effectsCache.keys().next().value as string);
  effectsCache.set(query, e);
  return e;
}

const riskCache = new Map<string, string | null>();

/** hiddenEffectRisk by statement text, cached like cachedEffects (texts without `(` cost a regex test). */
export function cachedRisk(query: string): string | null {
  if (!mayHideEffects(query)) return null;
  let r = riskCache.get(query);
  if (r !== undefined) return r;
  r = hiddenEffectRisk(query);
  if (riskCache.size >= EFFECTS_CACHE_SIZE) riskCache.delete(riskCache.keys().next().value as string);
  riskCache.set(query, r);
  return r;
}

/** Calls that leave sequence state in the session (currval, lastval read it). */
export const SEQUENCE_CALL = /nextval|setval/i;

/** COMMIT, END, COMMIT AND CHAIN (not COMMIT PREPARED, which commits another transaction). */
export const COMMIT_TEXT = /^\s*(commit|end)\b(?!\s+prepared)/i;

/** A text reading the session's prepared statements: only a connection of its own lists them right. */
export const LISTS_STATEMENTS = /pg_prepared_statements/i;
