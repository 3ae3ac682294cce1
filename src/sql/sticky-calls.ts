/**
 * Finds function calls that change session state behind the proxy's back: session-level
 * advisory locks (held until unlock or disconnect, unlike the _xact_ variants) and
 * set_config(name, value, is_local) with is_local not literally true (pg_dump's
 * `SELECT pg_catalog.set_config('search_path', '', false)` is the common case). A call is a name
 * token followed by `(`, so the same words inside strings or comments never count.
 * https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADVISORY-LOCKS
 */
import { K } from './token.js';
import type { StatementTokens } from './statement-tokens.js';
import { CLOSE, COMMA, OPEN } from './statement-tokens.js';

const SESSION_LOCKS = new Set([
  'pg_advisory_lock',
  'pg_advisory_lock_shared',
  'pg_try_advisory_lock',
  'pg_try_advisory_lock_shared',
]);

/** Spellings PostgreSQL's boolean input reads as true (prefixes of true/yes, on, 1). */
const TRUE_TEXT = new Set(['t', 'tr', 'tru', 'true', 'y', 'ye', 'yes', 'on', '1']);

/** An open set_config( call: its paren depth, which argument we are in, and its third argument. */
interface Frame {
  depth: number;
  arg: number;
  thirdFirst: number;
  thirdCount: number;
}

/**
 * The reason the statement pins session state through a function call, or null. One pass with a
 * stack of open set_config calls, so nested calls cost nothing extra and depth is not recursion.
 * This runs over every token of every statement, so it reads each token's kind once and keeps
 * the previous token's candidacy instead of looking ahead.
 */
export function findStickyCall(s: StatementTokens): string | null {
  const t = s.tokens;
  const frames: Frame[] = [];
  let depth = 0;
  let candidate = -1; // the previous token, if it could be the name of a call we look for
  for (let i = s.first; i < s.last; i++) {
    const code = t.code(i);
    const c = code === K.punct ? t.charOf(i) : -1;
    const top = frames.length > 0 ? frames[frames.length - 1] : undefined;
    if (top !== undefined && depth === top.depth + 1 && (c === COMMA || c === CLOSE)) {
      if (c === COMMA) top.arg++;
      else if (!isLocal(s, frames.pop() ?? top)) return 'set_config(…, is_local false)';
    } else if (top !== undefined && top.arg === 2 && top.thirdCount++ === 0) {
      top.thirdFirst = i;
    }
    if (c === OPEN) {
      if (candidate >= 0) {
        const name = t.name(candidate) ?? '';
        if (SESSION_LOCKS.has(name)) return `session advisory lock: ${name}()`;
        if (name === 'set_config') frames.push({ depth, arg: 0, thirdFirst: -1, thirdCount: 0 });
      }
      depth++;
    } else if (c === CLOSE) {
      depth = Math.max(0, depth - 1);
    }
    candidate = (code === K.ident || code === K.quotedIdent) && isNameOfLength(s, i, code) ? i : -1;
  }
  // A call left open at the end is a syntax error for the server; assume the worst anyway.
  return frames.length > 0 ? 'set_config(…) not closed' : null;
}

/** Cheap filter before decoding a name: only the lengths of the names we look for. */
function isNameOfLength(s: StatementTokens, i: number, code: number): boolean {
  const len = s.tokens.end(i) - s.tokens.start(i) - (code === K.quotedIdent ? 2 : 0);
  return len >= 10 && len <= 27;
}

function isLocal(s: StatementTokens, f: Frame): boolean {
  if (f.arg !== 2 || f.thirdCount !== 1) return false;
  const c = s.code(f.thirdFirst);
  if (c === K.ident) return s.isWord(f.thirdFirst, 'true');
  if (c === K.string) return TRUE_TEXT.has(s.value(f.thirdFirst).trim().toLowerCase());
  return false;
}
