/**
 * Whether a statement text may change session state where the proxy cannot see it: inside a
 * function it calls, a DO block, dynamic SQL, a procedure, or a transaction chained past its
 * COMMIT. Parsing cannot see inside functions, so this does not try to: it only proves the
 * opposite for the common shapes (a text that calls nothing but built-in functions and SQL
 * syntax), and everything else is "not provably free", for which the proxy asks the server what
 * its session holds before lending the connection to anyone else (src/proxy/state-check.ts).
 * Being wrong in the safe direction costs one query; in the other direction it leaks state, so
 * anything unrecognised counts as a risk. A lexer-level pass: it never throws and is linear.
 * User code reached without a call in the text (a view's body, triggers, rules, row-level
 * security policies, column defaults, foreign tables, user operators, casts, types and domains,
 * attribute notation `t.f` calling `f(t)`, a role's or database's default search_path) or run by
 * event triggers is not seen here but by the hidden-code registry
 * (src/proxy/backend/hidden-code.ts); what neither covers is listed in docs/proxy.md.
 */
import { K } from './token.js';
import { lex } from './lexer.js';
import type { TokenList } from './token-list.js';
import { BUILTIN_READ_ONLY_FUNCTIONS } from './read-only-functions.js';

/**
 * Built-in functions that may write or take transaction-level resources but leave nothing in the
 * session once the transaction is over. The session advisory locks are listed too: the
 * session-effects scan pins a connection on them on its own. set_config is not: even its
 * transaction-local form can point search_path at a schema whose functions shadow built-ins
 * for the rest of the transaction.
 */
const SESSION_NEUTRAL_FUNCTIONS = [
  'nextval',
  'setval',
  'currval',
  'lastval',
  'txid_current',
  'txid_current_if_assigned',
  'pg_current_xact_id',
  'pg_current_wal_lsn',
  'pg_notify',
  'pg_sleep',
  'pg_advisory_xact_lock',
  'pg_advisory_xact_lock_shared',
  'pg_try_advisory_xact_lock',
  'pg_try_advisory_xact_lock_shared',
  'pg_advisory_lock',
  'pg_advisory_lock_shared',
  'pg_try_advisory_lock',
  'pg_try_advisory_lock_shared',
  'pg_advisory_unlock',
  'pg_advisory_unlock_shared',
  'pg_advisory_unlock_all',
  'uuid_generate_v4',
  'row_to_json',
  'array_to_json',
  'to_tsvector',
  'to_tsquery',
  'plainto_tsquery',
  'websearch_to_tsquery',
  'ts_rank',
  'date',
  'int4',
  'int8',
  'text',
  'numeric',
];

/**
 * Words that stand before `(` in SQL syntax without being a call: keywords, and type names taking
 * a type modifier (`numeric(10,2)`, `varchar(20)`).
 */
const SYNTAX_WORDS = [
  ...'and or not in exists any all some values array row cast over filter within group using on'.split(' '),
  ...'as select where from join when then else case set by returning distinct like ilike between'.split(' '),
  ...'is conflict key check default partition window lateral rollup cube grouping sets union'.split(' '),
  ...'intersect except limit offset fetch only collate escape similar overlaps'.split(' '),
  ...'numeric decimal dec varchar char character varying bit varbit timestamp timestamptz'.split(' '),
  ...'time timetz interval float nchar precision extract position substring overlay trim'.split(' '),
  ...'normalize treat xmlelement xmlforest xmlparse xmlpi xmlroot xmlserialize xmlconcat xmlexists'.split(
    ' ',
  ),
];

const SAFE_CALLS = new Set([...BUILTIN_READ_ONLY_FUNCTIONS, ...SESSION_NEUTRAL_FUNCTIONS, ...SYNTAX_WORDS]);

/**
 * The built-in functions (pg_catalog names) a call to which is provably free of session effects
 * when the call is not in the statement's text: the hidden-code registry judges the expressions
 * of column defaults, constraints, domains and indexes by it. The session advisory locks are not
 * in it (in a statement's text the session-effects scan sees them and pins; there it cannot).
 */
export const SAFE_BUILTIN_FUNCTIONS: ReadonlySet<string> = new Set(
  [...BUILTIN_READ_ONLY_FUNCTIONS, ...SESSION_NEUTRAL_FUNCTIONS].filter(
    (n) => !/^pg_(?:try_)?advisory_lock/.test(n),
  ),
);

/** A name right after these is a relation or alias with a column list, never a call. */
const NOT_A_CALL_AFTER = new Set(['into', 'as', 'table', 'with', 'recursive']);

/** Cheap test: without any of these a text can neither call a function nor run hidden SQL. */
const MAY_HIDE = /\(|(?<![a-z_\u0080-\uffff])(?:do|execute|call|chain)\b/i;

const OPEN = 0x28;
const DOT = 0x2e;
const SEMICOLON = 0x3b;

/**
 * True when a search_path value (as SQL text) names pg_catalog after another schema: then an
 * unqualified built-in name may resolve to a user's function, and no call is provably built-in.
 */
export function searchPathShadowsBuiltins(value: string): boolean {
  return /pg_catalog/i.test(value) && !/^[\s'"]*pg_catalog\b/i.test(value);
}

/** DO, EXECUTE, CALL, AND CHAIN: hidden SQL or a statement the text does not show. */
// A digit may stand right before the word: PostgreSQL 15's lexer reads `0execute` as 0, execute.
// `$` does not end a word here: it may close a dollar quote (`$a$…$a$execute`).
export const HIDING_WORDS = /(?<![a-z_\u0080-\uffff])(?:do|execute|call|chain)\b/i;

/**
 * Reserved and column-name keywords before `(` in SQL syntax: none can name a function, so a
 * `(` after one is never a call, whatever the search_path (a narrower list than SYNTAX_WORDS,
 * which also holds names a user's function could shadow).
 */
const NEVER_CALLED = new Set(
  (
    'and or not in exists any all some values array row cast as on select where from when then else ' +
    'case using returning distinct union intersect except limit offset fetch between like ilike ' +
    'similar is lateral check default'
  ).split(' '),
);

/**
 * False when `sql` certainly cannot call anything or run hidden SQL, without lexing: no DO,
 * EXECUTE, CALL or CHAIN, no comment, and no `(` that may open a call's arguments. A `(` may
 * open one when a name stands before it, unless the name is a keyword that never names a
 * function (`VALUES (`, `IN (`) or a relation with a column list (`INTO t (`, `AS x (`, as
 * tokenRisk skips them). A text with literals that differ every time (`INSERT … (cols) VALUES
 * (1, 2)`) then needs no analysis at all. Conservative: a `(` inside a string counts as a call.
 */
export function mayHideEffects(sql: string): boolean {
  let at = sql.indexOf('(');
  if (at < 0) return HIDING_WORDS.test(sql);
  if (HIDING_WORDS.test(sql) || sql.includes('--') || sql.includes('/*')) return true;
  for (; at >= 0; at = sql.indexOf('(', at + 1)) if (mayOpenCall(sql, at)) return true;
  return false;
}

const QUOTE = 0x22;

function isNameChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x5f || // _
    c === 0x24 || // $
    c >= 0x80
  );
}

function isSpaceChar(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d || c === 0x0c;
}

function skipSpaceBack(sql: string, i: number): number {
  while (i >= 0 && isSpaceChar(sql.charCodeAt(i))) i--;
  return i;
}

/**
 * The start of the name ending at `end` (inclusive): a plain word or a quoted identifier; -1 when
 * there is none (then the caller answers conservatively).
 */
function nameStart(sql: string, end: number): number {
  if (sql.charCodeAt(end) === QUOTE) {
    const open = sql.lastIndexOf('"', end - 1);
    return open;
  }
  let s = end;
  while (s > 0 && isNameChar(sql.charCodeAt(s - 1))) s--;
  return s;
}

/** Whether the `(` at `at` may start the arguments of a call (see mayHideEffects). */
function mayOpenCall(sql: string, at: number): boolean {
  const end = skipSpaceBack(sql, at - 1);
  if (end < 0) return false;
  const c = sql.charCodeAt(end);
  // After an operator, a comma, another parenthesis or a string literal: a grouping, no call.
  if (c !== QUOTE && !isNameChar(c)) return false;
  let start = nameStart(sql, end);
  if (start < 0) return true;
  let before = skipSpaceBack(sql, start - 1);
  const qualified = before >= 0 && sql.charCodeAt(before) === 0x2e;
  if (c !== QUOTE) {
    const first = sql.charCodeAt(start);
    if (first >= 0x30 && first <= 0x39) return true; // a number, or something odd: be careful
    // After a dot even a reserved word may name a function (`s.in(1)`).
    if (!qualified && NEVER_CALLED.has(sql.slice(start, end + 1).toLowerCase())) return false;
  }
  // A qualified name: look before its schema (`INTO public.t (`).
  if (qualified) {
    const schemaEnd = skipSpaceBack(sql, before - 1);
    if (schemaEnd < 0) return true;
    const sc = sql.charCodeAt(schemaEnd);
    if (sc !== QUOTE && !isNameChar(sc)) return true;
    start = nameStart(sql, schemaEnd);
    if (start < 0) return true;
    before = skipSpaceBack(sql, start - 1);
  }
  if (before < 0 || !isNameChar(sql.charCodeAt(before))) return true;
  const prev = sql.slice(nameStart(sql, before), before + 1).toLowerCase();
  return !NOT_A_CALL_AFTER.has(prev);
}

/**
 * Why running `sql` may change session state invisibly (a short reason for SHOW CLIENTS and
 * logs), or null when it provably cannot through what the text itself calls.
 */
export function hiddenEffectRisk(sql: string): string | null {
  return risk(sql, false);
}

/**
 * Whether `sql` runs user code (a DO block, CALL, a function that is not provably built-in),
 * where dynamic SQL may name the session's SQL prepared statements; an SQL EXECUTE of a prepared
 * statement is not user code in this sense (its own name is in the text, where the proxy sees it).
 */
export function runsUserCode(sql: string): boolean {
  return risk(sql, true) !== null;
}

/** hiddenEffectRisk (codeOnly false) or runsUserCode's reason (true), for text already lexed. */
export function riskOf(t: TokenList, codeOnly: boolean): string | null {
  return MAY_HIDE.test(t.text) ? tokenRisk(t, codeOnly) : null;
}

function risk(sql: string, codeOnly: boolean): string | null {
  if (!MAY_HIDE.test(sql)) return null;
  return tokenRisk(lex(sql), codeOnly);
}

function tokenRisk(t: TokenList, codeOnly: boolean): string | null {
  for (let i = 0; i < t.count; i++) {
    const code = t.code(i);
    if (code !== K.ident && code !== K.quotedIdent) continue;
    const startsStatement = i === 0 || t.isChar(i - 1, SEMICOLON);
    if (code === K.ident) {
      if (startsStatement && t.isWord(i, 'do')) return 'DO';
      if (startsStatement && t.isWord(i, 'call')) return 'CALL';
      if (startsStatement && t.isWord(i, 'explain')) continue; // EXPLAIN (options): no call
      if (t.isWord(i, 'execute')) {
        if (!codeOnly) return 'EXECUTE';
        i++; // the statement's name, which `name(` would otherwise make look like a call
        continue;
      }
      if (t.isWord(i, 'chain') && i > 0 && t.isWord(i - 1, 'and')) {
        if (!codeOnly) return 'AND CHAIN';
        continue;
      }
    }
    if (i + 1 >= t.count || !t.isChar(i + 1, OPEN)) continue;
    const name = t.name(i) ?? '';
    const qualified = i >= 2 && t.isChar(i - 1, DOT);
    const before = qualified ? i - 3 : i - 1;
    if (before >= 0 && NOT_A_CALL_AFTER.has(t.word(before) ?? '')) continue;
    if (qualified) {
      if (t.name(i - 2) === 'pg_catalog' && SAFE_CALLS.has(name)) continue;
      return `function ${t.name(i - 2) ?? '?'}.${name}()`;
    }
    if (code === K.ident && SAFE_CALLS.has(name)) continue;
    return `function ${name}()`;
  }
  return null;
}
