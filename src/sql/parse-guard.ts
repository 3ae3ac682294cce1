/**
 * Keeps inputs away from the WASM parser when parsing them could overflow the JavaScript stack
 * (which corrupts the parser instance, see pg-parser.ts) or stall the event loop. Measured with
 * libpg-query 18.1.5 on Node 20: nested sub-selects overflow from about 1,000 levels (sometimes
 * fewer once code is optimised), chains of `+` or `||` from about 10,000 operators, chains of
 * JOIN from about 10,000; a 4,000-operator chain already takes ~0.4 s. The guard is a single
 * lexer-level pass that scores nesting: paren/bracket depth weighs 16, and each token that can
 * nest the tree without a paren (an operator other than a comparison, `::`, UNION/INTERSECT/
 * EXCEPT, JOIN, CASE, NOT) weighs 1. Comparisons are non-associative in PostgreSQL's grammar and
 * AND/OR lists are flat, so long WHERE clauses and IN lists cost nothing. A score over the budget
 * (depth 128, or 2,048 chained tokens) is not parsed and goes to the primary.
 */
import { K } from './token.js';
import type { TokenList } from './token-list.js';

export const MAX_PARSE_BYTES = 1024 * 1024;
export const NESTING_BUDGET = 2048;
const DEPTH_WEIGHT = 16;

const COMPARISONS = new Set(['=', '<', '>', '<=', '>=', '<>', '!=']);
const NESTING_WORDS = ['union', 'intersect', 'except', 'join', 'case', 'not'];

const OPEN_PAREN = 0x28;
const CLOSE_PAREN = 0x29;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/** UTF-8 size over the limit; the exact count is only taken when the length makes it possible. */
export function tooLargeToParse(sql: string): boolean {
  if (sql.length > MAX_PARSE_BYTES) return true;
  return sql.length * 3 > MAX_PARSE_BYTES && Buffer.byteLength(sql, 'utf8') > MAX_PARSE_BYTES;
}

/** True when the nesting score of the whole text exceeds the budget. */
export function tooDeepToParse(tokens: TokenList): boolean {
  let depth = 0;
  let maxDepth = 0;
  let chained = 0;
  for (let i = 0; i < tokens.count; i++) {
    const code = tokens.code(i);
    if (code === K.punct) {
      const c = tokens.charOf(i);
      if (c === OPEN_PAREN || c === OPEN_BRACKET) {
        if (++depth > maxDepth) maxDepth = depth;
      } else if (c === CLOSE_PAREN || c === CLOSE_BRACKET) {
        depth = Math.max(0, depth - 1);
      } else if (c < 0 && tokens.isSymbol(i, '::')) {
        chained++;
      }
    } else if (code === K.op) {
      if (!COMPARISONS.has(tokens.raw(i)) && !isSignOfLiteral(tokens, i)) chained++;
    } else if (code === K.ident && isNestingWord(tokens, i)) {
      chained++;
    }
    if (maxDepth * DEPTH_WEIGHT + chained > NESTING_BUDGET) return true;
  }
  return false;
}

/** `-1` after `(`, `,` or a comparison: the grammar folds it into the constant. */
function isSignOfLiteral(tokens: TokenList, i: number): boolean {
  if (tokens.code(i + 1) !== K.number) return false;
  const raw = tokens.raw(i);
  if (raw !== '-' && raw !== '+') return false;
  const prev = tokens.code(i - 1);
  return prev === K.punct || (prev === K.op && COMPARISONS.has(tokens.raw(i - 1))) || prev === K.ident;
}

function isNestingWord(tokens: TokenList, i: number): boolean {
  const len = tokens.end(i) - tokens.start(i);
  if (len < 3 || len > 9) return false;
  for (const w of NESTING_WORDS) if (tokens.isWord(i, w)) return true;
  return false;
}
