/**
 * Reading a distribution-column value the way PostgreSQL's input functions do, before it is
 * hashed (hash.ts): the text forms int2in/int4in/int8in, uuid_in and numeric_in accept, and the
 * binary forms int2recv…numeric_recv accept (Bind parameters in format 1). A value PostgreSQL
 * would refuse is refused here with PostgreSQL's SQLSTATE and message, so the proxy can answer
 * as the server would have; a value it accepts must come out as the same stored value, because
 * the hash is computed on that.
 *
 * The text grammar is the widest of PostgreSQL 13–18: 16 added `0x`/`0o`/`0b` integers and `_`
 * between digits. Accepting that on an older server is harmless (the server then refuses the
 * statement itself); refusing it on a newer one would not be.
 */
import { isUtf8 } from 'node:buffer';
import { ErrorCodes, PgscaleError } from '../errors.js';

/**
 * A value that is not a valid value of the distribution column's type. `sqlstate` is what
 * PostgreSQL answers for it: 22P02 (invalid text), 22003 (out of range), 22P03 (bad binary
 * format), 22021 (bad byte sequence), 22001 (too long for varchar(n)/char(n)), 0A000 (a column
 * the hash cannot serve).
 */
export class HashInputError extends PgscaleError {
  readonly sqlstate: string;
  /** PostgreSQL's DETAIL for the same error, where it gives one. */
  readonly detail: string | undefined;

  constructor(sqlstate: string, message: string, detail?: string) {
    super(ErrorCodes.USAGE, message);
    this.sqlstate = sqlstate;
    this.detail = detail;
  }
}

const SQL_NAMES = { int2: 'smallint', int4: 'integer', int8: 'bigint' } as const;
export type IntType = keyof typeof SQL_NAMES;

function invalidText(sqlType: string, text: string): HashInputError {
  return new HashInputError('22P02', `invalid input syntax for type ${sqlType}: "${text}"`);
}

function outOfRange(type: IntType, text: string): HashInputError {
  return new HashInputError('22003', `value "${text}" is out of range for type ${SQL_NAMES[type]}`);
}

export function badBinary(sqlType: string, why: string): HashInputError {
  return new HashInputError('22P03', `incorrect binary data format for type ${sqlType}: ${why}`);
}

/** PostgreSQL's isspace() on ASCII: space, \t, \n, \v, \f, \r. */
function isSpace(ch: number): boolean {
  return ch === 32 || (ch >= 9 && ch <= 13);
}

const LIMITS = {
  int2: [-32768n, 32767n],
  int4: [-2147483648n, 2147483647n],
  int8: [-9223372036854775808n, 9223372036854775807n],
} as const;

/** The value of `ch` as a digit in `base` (2, 8, 10, 16), or -1. */
function digitIn(ch: number, base: number): number {
  const d = hexValue(ch);
  return d < base ? d : -1;
}

/**
 * The integer in `text` as int2in/int4in/int8in read it (src/backend/utils/adt/numutils.c),
 * slow path for any text, in BigInt: white space, a sign, decimal digits — or, as PostgreSQL 16+,
 * a 0x/0o/0b prefix and `_` between digits (or right after the prefix). Like PostgreSQL, a
 * magnitude beyond the type's range is refused while the digits are read (so '99999999999x' is
 * out of range, not bad syntax), but a positive value one past the maximum only after the
 * trailing text is checked.
 */
function parseIntSlow(text: string, type: IntType): bigint {
  const n = text.length;
  const sqlType = SQL_NAMES[type];
  const [min, max] = LIMITS[type];
  let i = 0;
  while (i < n && isSpace(text.charCodeAt(i))) i++;
  let negative = false;
  if (text[i] === '-' || text[i] === '+') negative = text[i++] === '-';
  let base = 10;
  const p = text[i + 1];
  if (text[i] === '0' && p !== undefined && 'xXoObB'.includes(p)) {
    base = p === 'x' || p === 'X' ? 16 : p === 'o' || p === 'O' ? 8 : 2;
    i += 2;
  }
  const first = i;
  const bigBase = BigInt(base);
  let v = 0n;
  while (i < n) {
    const d = digitIn(text.charCodeAt(i), base);
    if (d >= 0) {
      v = v * bigBase + BigInt(d);
      if (v > -min) throw outOfRange(type, text);
      i++;
    } else if (text[i] === '_') {
      // not first in a decimal, and always followed by a digit
      if (base === 10 && i === first) throw invalidText(sqlType, text);
      i++;
      if (digitIn(text.charCodeAt(i), base) < 0) throw invalidText(sqlType, text);
    } else break;
  }
  if (i === first) throw invalidText(sqlType, text);
  while (i < n && isSpace(text.charCodeAt(i))) i++;
  if (i !== n) throw invalidText(sqlType, text);
  if (!negative && v > max) throw outOfRange(type, text);
  return negative ? -v : v;
}

/**
 * A decimal integer of at most 15 digits with optional sign and white space, read without
 * allocating (the common case); NaN when the text needs the slow path.
 */
function parseIntFast(text: string): number {
  const n = text.length;
  let i = 0;
  while (i < n && isSpace(text.charCodeAt(i))) i++;
  let negative = false;
  const sign = text.charCodeAt(i);
  if (sign === 45 /* - */ || sign === 43 /* + */) {
    negative = sign === 45;
    i++;
  }
  const start = i;
  let v = 0;
  while (i < n) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) break;
    v = v * 10 + d;
    i++;
  }
  if (i === start || i - start > 15) return NaN;
  while (i < n && isSpace(text.charCodeAt(i))) i++;
  if (i !== n) return NaN;
  return negative ? -v : v;
}

/** An int2 or int4 value from its text form. */
export function int32FromText(text: string, type: 'int2' | 'int4'): number {
  const v = parseIntFast(text);
  if (!Number.isNaN(v)) {
    const min = type === 'int2' ? -32768 : -2147483648;
    const max = type === 'int2' ? 32767 : 2147483647;
    if (v < min || v > max) throw outOfRange(type, text);
    return v;
  }
  return Number(parseIntSlow(text, type));
}

/** An int8 value as two 32-bit halves (`hi` signed, `lo` unsigned), from text, in `int8Out`. */
export const int8Out = { hi: 0, lo: 0 };

export function int8FromText(text: string): void {
  if (int8Plain(text)) return;
  const b = parseIntSlow(text, 'int8');
  int8Out.hi = Number(BigInt.asIntN(32, b >> 32n));
  int8Out.lo = Number(BigInt.asUintN(32, b));
}

/**
 * A plain decimal int8 (white space, sign, up to 19 digits) into int8Out without BigInt. Up to
 * 15 digits the value is an exact number; longer, the digits are read as two exact numbers — all but the last nine (h < 2^34) and the last nine
 * (l < 10^9) — and h·10^9 + l is assembled in 32-bit halves, h split at 2^16 so that every
 * product stays exact; a negative value is then negated in two's complement. False when the
 * text needs the slow path (other syntax, or out of range: the slow path words the error).
 */
function int8Plain(text: string): boolean {
  const n = text.length;
  let i = 0;
  while (i < n && isSpace(text.charCodeAt(i))) i++;
  let negative = false;
  const sign = text.charCodeAt(i);
  if (sign === 45 /* - */ || sign === 43 /* + */) {
    negative = sign === 45;
    i++;
  }
  const start = i;
  let v = 0; // exact while at most 15 digits (below 2^53)
  while (i < n) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) break;
    v = v * 10 + d;
    i++;
  }
  const end = i;
  if (end === start || end - start > 19) return false;
  while (i < n && isSpace(text.charCodeAt(i))) i++;
  if (i !== n) return false;
  if (end - start <= 15) {
    if (negative) v = -v;
    int8Out.hi = Math.floor(v / 4294967296) | 0;
    int8Out.lo = v >>> 0;
    return true;
  }
  const cut = end - 9;
  let h = 0;
  let l = 0;
  for (let j = start; j < end; j++) {
    const d = text.charCodeAt(j) - 48;
    if (j < cut) h = h * 10 + d;
    else l = l * 10 + d;
  }
  const hTop = Math.floor(h / 65536);
  const x1 = (h - hTop * 65536) * 1e9 + l; // < 2^47
  const x2 = hTop * 1e9; // < 2^48, to be shifted up 16 bits
  const x2Low = x2 % 65536;
  let lo = (x1 % 4294967296) + x2Low * 65536;
  let carry = 0;
  if (lo >= 4294967296) {
    lo -= 4294967296;
    carry = 1;
  }
  let hi = Math.floor(x1 / 4294967296) + (x2 - x2Low) / 65536 + carry;
  // |value| ≤ 2^63 - 1, or 2^63 when negative
  if (hi > 0x80000000 || (hi === 0x80000000 && (lo !== 0 || !negative))) return false;
  if (negative && (hi !== 0 || lo !== 0)) {
    lo = (~lo + 1) >>> 0;
    hi = ~hi + (lo === 0 ? 1 : 0);
  }
  int8Out.hi = hi | 0;
  int8Out.lo = lo >>> 0;
  return true;
}

/** An int2/int4/int8 Bind parameter in binary format (big-endian two's complement). */
export function intFromBinary(bytes: Buffer, type: IntType): void {
  const want = type === 'int2' ? 2 : type === 'int4' ? 4 : 8;
  if (bytes.length !== want) {
    throw badBinary(SQL_NAMES[type], `expected ${want} bytes, got ${bytes.length}`);
  }
  if (type === 'int8') {
    int8Out.hi = bytes.readInt32BE(0);
    int8Out.lo = bytes.readUInt32BE(4);
  } else {
    int8Out.lo = type === 'int2' ? bytes.readInt16BE(0) : bytes.readInt32BE(0);
    int8Out.hi = int8Out.lo < 0 ? -1 : 0;
  }
}

function hexValue(ch: number): number {
  if (ch >= 48 && ch <= 57) return ch - 48;
  const l = ch | 0x20;
  if (l >= 97 && l <= 102) return l - 87;
  return -1;
}

/** Where each byte's two hex digits start in the canonical 8-4-4-4-12 form. */
const UUID_AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/** The canonical form (the one drivers send) read at fixed places; false for any other text. */
function uuidCanonical(text: string, out: Uint8Array): boolean {
  if (text.length !== 36) return false;
  if (text.charCodeAt(8) !== 45 || text.charCodeAt(13) !== 45) return false;
  if (text.charCodeAt(18) !== 45 || text.charCodeAt(23) !== 45) return false;
  let bad = 0;
  for (let byte = 0; byte < 16; byte++) {
    const at = UUID_AT[byte]!;
    const h = hexValue(text.charCodeAt(at));
    const l = hexValue(text.charCodeAt(at + 1));
    bad |= h | l;
    out[byte] = (h << 4) | l;
  }
  return bad >= 0;
}

/**
 * A uuid from its text form into `out` (16 bytes), as uuid_in reads it: 32 hex digits, a `-`
 * allowed after any group of four, the whole optionally in braces; no white space.
 */
export function uuidFromText(text: string, out: Uint8Array): void {
  if (uuidCanonical(text, out)) return;
  let i = 0;
  const braces = text.charCodeAt(0) === 123; /* { */
  if (braces) i++;
  for (let byte = 0; byte < 16; byte++) {
    const h = hexValue(text.charCodeAt(i));
    const l = hexValue(text.charCodeAt(i + 1));
    if (h < 0 || l < 0) throw invalidText('uuid', text);
    out[byte] = (h << 4) | l;
    i += 2;
    if (text.charCodeAt(i) === 45 /* - */ && byte % 2 === 1 && byte < 15) i++;
  }
  if (braces) {
    if (text.charCodeAt(i) !== 125 /* } */) throw invalidText('uuid', text);
    i++;
  }
  if (i !== text.length) throw invalidText('uuid', text);
}

/**
 * A text Bind parameter in binary format is its bytes in the client encoding; PostgreSQL checks
 * them (textrecv → pg_verify_mbstr). pgscale's servers use UTF8.
 */
export function checkTextBytes(bytes: Buffer): void {
  if (bytes.includes(0) || !isUtf8(bytes)) {
    throw new HashInputError('22021', 'invalid byte sequence for encoding "UTF8"');
  }
}

/** The NUL character, which no PostgreSQL text value can hold. */
export function checkTextString(text: string): void {
  if (text.includes('\0')) {
    throw new HashInputError('22021', 'invalid byte sequence for encoding "UTF8": 0x00');
  }
}

/**
 * How many bytes of `buf[0..len)` a varchar(n)/char(n) column keeps (varchar_input,
 * bpchar_input on assignment): all of them when there are at most `maxChars` characters; else
 * the first `maxChars` characters if only spaces follow; else 22001. UTF-8 characters.
 */
export function fitBytes(buf: Uint8Array, len: number, maxChars: number, sqlType: string): number {
  if (len <= maxChars) return len;
  let chars = 0;
  let i = 0;
  for (; i < len; i++) {
    if ((buf[i]! & 0xc0) !== 0x80) {
      if (chars === maxChars) break;
      chars++;
    }
  }
  for (let j = i; j < len; j++) {
    if (buf[j] !== 32) throw new HashInputError('22001', `value too long for type ${sqlType}(${maxChars})`);
  }
  return i;
}
