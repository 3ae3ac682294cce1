/**
 * Turns the raw spelling of a token into its value: folds unquoted identifiers, undoes the
 * doubling in quoted identifiers and strings, and decodes the escapes of E'...' and U&'...'
 * strings. Decoding is best effort and total: an escape PostgreSQL would reject is kept as
 * written rather than thrown, because the analyses built on this must never fail.
 * https://www.postgresql.org/docs/current/sql-syntax-lexical.html#SQL-SYNTAX-STRINGS-ESCAPE
 */

const BACKSLASH = 0x5c;
const QUOTE = 0x27;

/**
 * PostgreSQL folds only ASCII letters of unquoted identifiers in multibyte encodings such as
 * UTF-8 (downcase_identifier in scansup.c), so `É` stays `É` where toLowerCase would change it.
 */
export function foldIdentifier(raw: string): string {
  return /[A-Z]/.test(raw) ? raw.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : raw;
}

/** Body of a "..." or U&"..." identifier with "" undone (and U& escapes decoded). */
export function quotedIdentifierValue(raw: string): string {
  const unicode = raw.charCodeAt(0) !== 0x22;
  const open = unicode ? 3 : 1;
  const close = raw.length > open && raw.endsWith('"') && !endsInsideDoubling(raw, open, 0x22) ? 1 : 0;
  const body = raw.slice(open, raw.length - close).replaceAll('""', '"');
  return unicode ? decodeUnicodeEscapes(body) : body;
}

/**
 * True when the final quote of `raw` is the second half of a doubled quote rather than the
 * closing one, i.e. the token ran to the end of input unterminated. Counts the run of quotes
 * at the end of the body: an odd total (with the closing one) means it closed.
 */
function endsInsideDoubling(raw: string, open: number, q: number): boolean {
  let n = 0;
  for (let i = raw.length - 1; i >= open && raw.charCodeAt(i) === q; i--) n++;
  return n % 2 === 0;
}

/** Decoded content of a string token of any prefix. */
export function stringValue(raw: string, standardConformingStrings: boolean): string {
  const c = raw.charCodeAt(0) | 0x20;
  if (raw.charCodeAt(0) === QUOTE) {
    return standardConformingStrings ? plainBody(raw, 1) : escapeBody(raw, 1);
  }
  if (c === 0x65 /* e */) return escapeBody(raw, 2);
  if (c === 0x75 /* u */) return decodeUnicodeEscapes(plainBody(raw, 3));
  if (c === 0x6e /* n */ && !standardConformingStrings) return escapeBody(raw, 2);
  return plainBody(raw, 2); // B'', X'', N''
}

/** Body of a '...' string where only '' is an escape. */
function plainBody(raw: string, open: number): string {
  const close = raw.length > open && raw.endsWith("'") && !endsInsideDoubling(raw, open, QUOTE) ? 1 : 0;
  return raw.slice(open, raw.length - close).replaceAll("''", "'");
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** Body of an E'...' string: '' and backslash escapes, stopping at the closing quote. */
function escapeBody(raw: string, open: number): string {
  let out = '';
  let i = open;
  let from = i;
  while (i < raw.length) {
    const c = raw.charCodeAt(i);
    if (c === QUOTE) {
      if (raw.charCodeAt(i + 1) !== QUOTE) break;
      out += raw.slice(from, i + 1);
      i += 2;
      from = i;
    } else if (c === BACKSLASH) {
      out += raw.slice(from, i);
      const [text, len] = backslashEscape(raw, i + 1);
      out += text;
      i += 1 + len;
      from = i;
    } else {
      i++;
    }
  }
  return out + raw.slice(from, i);
}

/** Decodes the escape after a backslash at `at`; returns the text and the characters used. */
function backslashEscape(raw: string, at: number): [string, number] {
  const ch = raw[at];
  if (ch === undefined) return ['', 0];
  const simple = SIMPLE_ESCAPES[ch];
  if (simple !== undefined) return [simple, 1];
  let m = /^[0-7]{1,3}/.exec(raw.slice(at, at + 3));
  if (m) return [codePoint(parseInt(m[0], 8) & 0xff, '\\' + m[0]), m[0].length];
  if (ch === 'x') {
    m = /^[0-9a-fA-F]{1,2}/.exec(raw.slice(at + 1, at + 3));
    if (m) return [codePoint(parseInt(m[0], 16), '\\x' + m[0]), 1 + m[0].length];
  }
  if (ch === 'u' || ch === 'U') {
    const width = ch === 'u' ? 4 : 8;
    const hex = raw.slice(at + 1, at + 1 + width);
    if (hex.length === width && /^[0-9a-fA-F]+$/.test(hex)) {
      return [codePoint(parseInt(hex, 16), '\\' + ch + hex), 1 + width];
    }
  }
  // Any other character after a backslash stands for itself, surrogate pairs included.
  const cp = raw.codePointAt(at) ?? 0;
  const len = cp > 0xffff ? 2 : 1;
  return [raw.slice(at, at + len), len];
}

/** U&'...' escapes with the default escape character: \XXXX, \+XXXXXX and \\. */
function decodeUnicodeEscapes(body: string): string {
  return body.replace(/\\(\\|[0-9a-fA-F]{4}|\+[0-9a-fA-F]{6})/g, (all, e: string) =>
    e === '\\' ? '\\' : codePoint(parseInt(e.replace('+', ''), 16), all),
  );
}

/** The character for a code point, or `fallback` where String.fromCodePoint would throw. */
function codePoint(cp: number, fallback: string): string {
  return cp <= 0x10ffff ? String.fromCodePoint(cp) : fallback;
}

/** Body of $tag$...$tag$; whatever follows the opening delimiter if it never closed. */
export function dollarStringValue(raw: string): string {
  const tagEnd = raw.indexOf('$', 1);
  if (tagEnd < 0) return '';
  const tag = raw.slice(0, tagEnd + 1);
  const closed = raw.length >= 2 * tag.length && raw.endsWith(tag);
  return raw.slice(tag.length, closed ? raw.length - tag.length : raw.length);
}
