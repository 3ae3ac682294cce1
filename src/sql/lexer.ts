/**
 * Tokenizer for PostgreSQL SQL text, following the rules of the server's scanner (scan.l) closely
 * enough to know where every string, quoted identifier, dollar quote and comment begins and ends,
 * which is all the statement splitter and the session-state analysis need. It never throws: input
 * that the server would reject still yields tokens, and input that ends inside a quote or comment
 * sets `unterminated`. One pass, no recursion, no backtracking beyond a token, so its cost is
 * linear in the input whatever the input is.
 * https://www.postgresql.org/docs/current/sql-syntax-lexical.html
 */
import type { LexOptions, SqlComment, Token } from './token.js';
import { K } from './token.js';
import { TokenList } from './token-list.js';

export interface LexResult {
  readonly tokens: Token[];
  readonly comments: SqlComment[];
  readonly unterminated: boolean;
}

/** Tokens and comments of `sql` as plain objects; convenient, but `lex` is cheaper for big input. */
export function tokenize(sql: string, options: LexOptions = {}): LexResult {
  const list = lex(sql, options);
  const tokens: Token[] = [];
  for (let i = 0; i < list.count; i++) tokens.push(list.token(i));
  const comments: SqlComment[] = [];
  for (let i = 0; i < list.commentCount; i++) comments.push(list.comment(i));
  return { tokens, comments, unterminated: list.unterminated };
}

const C = {
  LF: 0x0a,
  CR: 0x0d,
  DQUOTE: 0x22,
  DOLLAR: 0x24,
  AMP: 0x26,
  QUOTE: 0x27,
  STAR: 0x2a,
  PLUS: 0x2b,
  DASH: 0x2d,
  DOT: 0x2e,
  SLASH: 0x2f,
  COLON: 0x3a,
  EQUALS: 0x3d,
  BACKSLASH: 0x5c,
} as const;

// Character classes of ASCII, looked up in a table because the scan loop runs once per character.
const SPACE = 1;
const DIGIT = 2;
const IDENT_START = 4;
const OP_CHAR = 8;
const SELF = 16; // punctuation that is a token on its own
const NON_MATH_OP = 32; // operator characters that let an operator end in + or -
const ASCII = new Uint8Array(128);
function mark(chars: string, bit: number): void {
  for (const ch of chars) ASCII[ch.charCodeAt(0)] = (ASCII[ch.charCodeAt(0)] ?? 0) | bit;
}
mark(' \t\n\r\f\v', SPACE);
mark('0123456789', DIGIT);
mark('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_', IDENT_START);
mark('~!@#^&|`?+-*/%<>=', OP_CHAR);
mark('~!@#^&|`?%', NON_MATH_OP);
mark(',()[];:.', SELF);

/** Class bits of a code unit; NaN (past the end) has none, and non-ASCII units start identifiers. */
function classOf(c: number): number {
  return c < 128 ? (ASCII[c] ?? 0) : c >= 128 ? IDENT_START : 0;
}

function isSpace(c: number): boolean {
  return (classOf(c) & SPACE) !== 0;
}

function isDigit(c: number): boolean {
  return (classOf(c) & DIGIT) !== 0;
}

/** Letters, underscore and every non-ASCII code unit, as scan.l's ident_start ([\200-\377]). */
function isIdentStart(c: number): boolean {
  return (classOf(c) & IDENT_START) !== 0;
}

function isIdentCont(c: number): boolean {
  return (classOf(c) & (IDENT_START | DIGIT)) !== 0 || c === C.DOLLAR;
}

/** Characters that may continue a dollar-quote tag: an identifier without `$`. */
function isTagCont(c: number): boolean {
  return (classOf(c) & (IDENT_START | DIGIT)) !== 0;
}

function isOpChar(c: number): boolean {
  return (classOf(c) & OP_CHAR) !== 0;
}

/** Scans `sql` into a compact `TokenList`. */
export function lex(sql: string, options: LexOptions = {}): TokenList {
  const out = new TokenList(sql, options.standardConformingStrings ?? true);
  const n = sql.length;
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    const next = sql.charCodeAt(i + 1);
    if (isSpace(c)) {
      i++;
    } else if (c === C.DASH && next === C.DASH) {
      const end = lineCommentEnd(sql, i + 2);
      out.pushComment(i, end);
      i = end;
    } else if (c === C.SLASH && next === C.STAR) {
      const end = blockCommentEnd(sql, i + 2);
      out.pushComment(i, end < 0 ? n : end, end >= 0);
      if (end < 0) out.unterminated = true;
      i = end < 0 ? n : end;
    } else {
      i = scanToken(sql, i, c, next, out);
    }
  }
  return out;
}

/** Offset of the newline ending a -- comment (or the end of input). */
function lineCommentEnd(sql: string, from: number): number {
  for (let j = from; j < sql.length; j++) {
    const c = sql.charCodeAt(j);
    if (c === C.LF || c === C.CR) return j;
  }
  return sql.length;
}

/** Offset just past the star-slash closing a (nested) block comment whose body starts at `from`, or -1. */
function blockCommentEnd(sql: string, from: number): number {
  let depth = 1;
  let j = from;
  while (j < sql.length) {
    const c = sql.charCodeAt(j);
    const d = sql.charCodeAt(j + 1);
    if (c === C.STAR && d === C.SLASH) {
      j += 2;
      if (--depth === 0) return j;
    } else if (c === C.SLASH && d === C.STAR) {
      depth++;
      j += 2;
    } else {
      j++;
    }
  }
  return -1;
}

/** Scans the token starting at `i` (not whitespace or a comment); returns the offset after it. */
function scanToken(sql: string, i: number, c: number, next: number, out: TokenList): number {
  if (c === C.QUOTE) return pushQuoted(out, i, 1, C.QUOTE, !out.standardConformingStrings);
  if (c === C.DQUOTE) return pushQuoted(out, i, 1, C.DQUOTE, false);
  if (next === C.QUOTE) {
    const lower = c | 0x20;
    // E'...' takes backslash escapes; B'', X'' and N'' are plain strings with a prefix.
    if (lower === 0x65) return pushQuoted(out, i, 2, C.QUOTE, true);
    if (lower === 0x62 || lower === 0x78) return pushQuoted(out, i, 2, C.QUOTE, false);
    if (lower === 0x6e) return pushQuoted(out, i, 2, C.QUOTE, !out.standardConformingStrings);
  }
  if ((c | 0x20) === 0x75 && next === C.AMP) {
    // U&'...' and U&"..." (no space allowed after U&); the escape character does not escape quotes.
    const q = sql.charCodeAt(i + 2);
    if (q === C.QUOTE || q === C.DQUOTE) return pushQuoted(out, i, 3, q, false);
  }
  if (isIdentStart(c)) {
    let j = i + 1;
    while (j < sql.length && isIdentCont(sql.charCodeAt(j))) j++;
    out.push(K.ident, i, j);
    return j;
  }
  if (isDigit(c) || (c === C.DOT && isDigit(next))) {
    const j = numberEnd(sql, i);
    out.push(K.number, i, j);
    return j;
  }
  if (c === C.DOLLAR) return scanDollar(sql, i, out);
  if (c === C.COLON && (next === C.COLON || next === C.EQUALS)) {
    out.push(K.punct, i, i + 2);
    return i + 2;
  }
  if (c === C.DOT && next === C.DOT) {
    out.push(K.punct, i, i + 2);
    return i + 2;
  }
  if (classOf(c) & SELF) {
    out.push(K.punct, i, i + 1);
    return i + 1;
  }
  if (isOpChar(c)) {
    const j = operatorEnd(sql, i);
    out.push(K.op, i, j);
    return j;
  }
  // One UTF-16 unit is enough: every non-ASCII unit starts an identifier above.
  out.push(K.other, i, i + 1);
  return i + 1;
}

/**
 * Pushes a quoted token whose opening quote ends at `i + open` and returns its end. A doubled
 * quote stands for itself; with `backslash`, a backslash escapes the next character.
 */
function pushQuoted(out: TokenList, i: number, open: number, quote: number, backslash: boolean): number {
  const sql = out.text;
  const kind = quote === C.DQUOTE ? K.quotedIdent : K.string;
  const quoteChar = String.fromCharCode(quote);
  let j = i + open;
  for (;;) {
    let q: number;
    if (backslash) {
      q = j;
      while (q < sql.length && sql.charCodeAt(q) !== quote) q += sql.charCodeAt(q) === C.BACKSLASH ? 2 : 1;
      if (q >= sql.length) q = -1;
    } else {
      q = sql.indexOf(quoteChar, j);
    }
    if (q < 0) {
      out.unterminated = true;
      out.push(kind, i, sql.length);
      return sql.length;
    }
    if (sql.charCodeAt(q + 1) !== quote) {
      out.push(kind, i, q + 1);
      return q + 1;
    }
    j = q + 2;
  }
}

/** $1 parameters, $tag$ dollar quotes, or a stray `$`. */
function scanDollar(sql: string, i: number, out: TokenList): number {
  let j = i + 1;
  if (isDigit(sql.charCodeAt(j))) {
    while (isDigit(sql.charCodeAt(j))) j++;
    out.push(K.param, i, j);
    return j;
  }
  // A tag follows identifier rules without `$`, and cannot start with a digit (that is $1).
  if (isIdentStart(sql.charCodeAt(j))) {
    while (j < sql.length && isTagCont(sql.charCodeAt(j))) j++;
  }
  if (sql.charCodeAt(j) !== C.DOLLAR) {
    out.push(K.other, i, i + 1);
    return i + 1;
  }
  const delimiter = sql.slice(i, j + 1);
  const close = sql.indexOf(delimiter, j + 1);
  if (close < 0) {
    out.unterminated = true;
    out.push(K.dollarString, i, sql.length);
    return sql.length;
  }
  const end = close + delimiter.length;
  out.push(K.dollarString, i, end);
  return end;
}

/** End of a numeric literal: decimal with fraction and exponent, or 0x/0o/0b, with _ separators. */
function numberEnd(sql: string, i: number): number {
  const radix = sql.charCodeAt(i) === 0x30 ? sql.charCodeAt(i + 1) | 0x20 : 0;
  if (radix === 0x78 || radix === 0x6f || radix === 0x62) {
    let j = i + 2;
    while (/[0-9a-fA-F_]/.test(sql.charAt(j))) j++;
    if (j > i + 2) return j;
  }
  let j = i;
  while (isDigit(sql.charCodeAt(j)) || sql.charCodeAt(j) === 0x5f) j++;
  // "1..5" is an integer and a `..`, not "1." and ".5".
  if (sql.charCodeAt(j) === C.DOT && sql.charCodeAt(j + 1) !== C.DOT) {
    j++;
    while (isDigit(sql.charCodeAt(j)) || sql.charCodeAt(j) === 0x5f) j++;
  }
  if ((sql.charCodeAt(j) | 0x20) === 0x65) {
    const sign = sql.charCodeAt(j + 1) === C.PLUS || sql.charCodeAt(j + 1) === C.DASH ? 1 : 0;
    if (isDigit(sql.charCodeAt(j + 1 + sign))) {
      j += 1 + sign;
      while (isDigit(sql.charCodeAt(j)) || sql.charCodeAt(j) === 0x5f) j++;
    }
  }
  return j;
}

/**
 * End of an operator, by scan.l's rules: a comment start inside the run ends the operator, and
 * a trailing + or - is given back unless the operator has a character outside + - * / < > =, so
 * that `x=-1` is `x`, `=`, `-`, `1` (https://www.postgresql.org/docs/current/sql-syntax-lexical.html#SQL-SYNTAX-OPERATORS).
 */
function operatorEnd(sql: string, i: number): number {
  let j = i + 1;
  while (j < sql.length && isOpChar(sql.charCodeAt(j))) {
    const c = sql.charCodeAt(j);
    const prev = sql.charCodeAt(j - 1);
    if ((prev === C.SLASH && c === C.STAR) || (prev === C.DASH && c === C.DASH)) {
      j--;
      break;
    }
    j++;
  }
  let len = j - i;
  if (len > 1) {
    let mathOnly = true;
    for (let k = i; k < i + len; k++) if (classOf(sql.charCodeAt(k)) & NON_MATH_OP) mathOnly = false;
    if (mathOnly) {
      while (len > 1 && (sql.charCodeAt(i + len - 1) === C.PLUS || sql.charCodeAt(i + len - 1) === C.DASH))
        len--;
    }
  }
  return i + len;
}
