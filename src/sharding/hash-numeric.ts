/**
 * numeric values for the partition hash: the text form numeric_in reads and the binary form
 * numeric_recv reads, both brought to what PostgreSQL stores and hash_numeric_extended hashes —
 * base-10000 digits with no leading or trailing zero digit, and the weight (the power of 10000 of
 * the first digit). The display scale and the sign are not hashed (PostgreSQL hashes neither, so
 * 1, 1.0 and 1.00 land together, and so do 1 and -1); NaN and ±Infinity hash to the seed itself,
 * zero to seed − 1 (src/backend/utils/adt/numeric.c).
 *
 * Limits as make_result's: the weight must fit in int16 and the display scale in 14 bits, else
 * 22003 "value overflows numeric format".
 */
import { HashInputError, badBinary } from './hash-input.js';

export type NumericValue =
  | { readonly kind: 'special'; readonly infinite: boolean }
  | { readonly kind: 'zero' }
  | { readonly kind: 'finite'; readonly weight: number; readonly digits: readonly number[] };

const NAN: NumericValue = { kind: 'special', infinite: false };
const INFINITE: NumericValue = { kind: 'special', infinite: true };
const ZERO: NumericValue = { kind: 'zero' };
const DSCALE_MAX = 0x3fff;

function overflow(): HashInputError {
  return new HashInputError('22003', 'value overflows numeric format');
}

function invalid(text: string): HashInputError {
  return new HashInputError('22P02', `invalid input syntax for type numeric: "${text}"`);
}

// numeric_in's words for NaN and the infinities (case-insensitive; PostgreSQL 14+ for infinity).
const SPECIAL_WORDS = new Set(['nan', 'infinity', '+infinity', '-infinity', 'inf', '+inf', '-inf']);
// A decimal with optional exponent; `_` only between digits (PostgreSQL 16+).
const DECIMAL = /^[+-]?(\d+(?:_\d+)*)?(?:\.(\d+(?:_\d+)*)?)?(?:[eE]([+-]?\d+(?:_\d+)*))?$/;
// The mantissa and exponent at the start of a text that is not a whole valid numeric.
const EXPONENT_HEAD = /^[+-]?(?:\d+(?:_\d+)*(?:\.(?:\d+(?:_\d+)*)?)?|\.\d+(?:_\d+)*)[eE]([+-]?\d+(?:_\d+)*)/;
// Integers with a base prefix (PostgreSQL 16+).
const PREFIXED = /^([+-]?)0(?:[xX](?:_?[0-9a-fA-F]+)+|[oO](?:_?[0-7]+)+|[bB](?:_?[01]+)+)$/;

const POW10 = [1, 10, 100, 1000];

function isSpace(ch: number): boolean {
  return ch === 32 || (ch >= 9 && ch <= 13);
}

/**
 * The common case without regular expressions or strings: white space, sign, digits with at most
 * one decimal point. Each significant digit is added straight into its base-10000 digit. Null
 * for any other text (the general path reads it and words the errors).
 */
function numericPlain(text: string): NumericValue | null {
  const n = text.length;
  let i = 0;
  while (i < n && isSpace(text.charCodeAt(i))) i++;
  const sign = text.charCodeAt(i);
  if (sign === 45 /* - */ || sign === 43 /* + */) i++;
  const start = i;
  let point = -1;
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */ && point < 0) point = i;
    else if (c < 48 || c > 57) break;
  }
  const end = i;
  while (i < n && isSpace(text.charCodeAt(i))) i++;
  if (i !== n || end - start - (point < 0 ? 0 : 1) === 0) return null;
  const intEnd = point < 0 ? end : point;
  const fracDigits = point < 0 ? 0 : end - point - 1;
  if (fracDigits > DSCALE_MAX) return null;
  let first = start;
  while (first < end && (first === point || text.charCodeAt(first) === 48)) first++;
  if (first === end) return ZERO;
  let last = end - 1;
  while (last === point || text.charCodeAt(last) === 48) last--;
  // The power of ten of a character at j is intEnd - 1 - j before the point, intEnd - j after.
  const weight = Math.floor((first < intEnd ? intEnd - 1 - first : intEnd - first) / 4);
  const lowGroup = Math.floor((last < intEnd ? intEnd - 1 - last : intEnd - last) / 4);
  if (weight > 32767) return null;
  const digits: number[] = [];
  for (let g = weight; g >= lowGroup; g--) digits.push(0);
  for (let j = first; j <= last; j++) {
    if (j === point) continue;
    const p = j < intEnd ? intEnd - 1 - j : intEnd - j;
    const group = Math.floor(p / 4);
    digits[weight - group]! += (text.charCodeAt(j) - 48) * POW10[p - 4 * group]!;
  }
  return { kind: 'finite', weight, digits };
}

/** The numeric stored for `text` (numeric_in with no type modifier). */
export function numericFromText(text: string): NumericValue {
  const plain = numericPlain(text);
  if (plain) return plain;
  const t = text.replace(/^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g, '');
  const word = t.toLowerCase();
  if (SPECIAL_WORDS.has(word)) return word === 'nan' ? NAN : INFINITE;
  let intPart: string;
  let fracPart = '';
  let exponent = 0;
  const m = DECIMAL.exec(t);
  if (m) {
    intPart = (m[1] ?? '').replaceAll('_', '');
    fracPart = (m[2] ?? '').replaceAll('_', '');
    if (intPart === '' && fracPart === '') throw invalid(text);
    if (m[3] !== undefined) {
      exponent = Number(m[3].replaceAll('_', ''));
      // As set_var_from_str: an exponent this far out is refused before any digit is placed.
      if (!(Math.abs(exponent) < 0x3fffffff)) throw overflow();
    }
  } else if (PREFIXED.test(t)) {
    const body = t.replace(/^[+-]/, '').replaceAll('_', '');
    intPart = BigInt(`0${body[1]!.toLowerCase()}${body.slice(2)}`).toString();
  } else {
    // set_var_from_str refuses a far-out exponent as soon as it has read it, before it looks
    // at what follows.
    const head = EXPONENT_HEAD.exec(t);
    if (head && !(Math.abs(Number(head[1]!.replaceAll('_', ''))) < 0x3fffffff)) throw overflow();
    throw invalid(text);
  }
  const dscale = Math.max(0, fracPart.length - exponent);
  if (dscale > DSCALE_MAX) throw overflow();
  return fromDecimalDigits(intPart + fracPart, exponent - fracPart.length);
}

/** The numeric whose value is the decimal digit string `s` times 10^`p`. */
function fromDecimalDigits(s: string, p: number): NumericValue {
  let start = 0;
  while (start < s.length && s.charCodeAt(start) === 48) start++;
  if (start === s.length) return ZERO;
  let end = s.length;
  while (s.charCodeAt(end - 1) === 48) end--;
  p += s.length - end;
  const sig = s.slice(start, end);
  const msd = p + sig.length - 1; // power of ten of the first significant digit
  const weight = Math.floor(msd / 4);
  const lowGroup = Math.floor(p / 4);
  if (weight > 32767 || weight < -32768) throw overflow();
  // Pad to whole base-10000 digits: zeros before the first digit up to its group's top, after
  // the last down to its group's bottom.
  const padded = '0'.repeat(4 * weight + 3 - msd) + sig + '0'.repeat(p - 4 * lowGroup);
  const digits: number[] = [];
  for (let i = 0; i < padded.length; i += 4) digits.push(Number(padded.slice(i, i + 4)));
  return { kind: 'finite', weight, digits };
}

const NUMERIC_POS = 0x0000;
const NUMERIC_NEG = 0x4000;
const NUMERIC_NAN = 0xc000;
const NUMERIC_PINF = 0xd000;
const NUMERIC_NINF = 0xf000;
/** round_powers of numeric.c: what to keep of a base-10000 digit when 1..3 decimals remain. */
const ROUND_POWERS = [0, 1000, 100, 10];

/**
 * The numeric stored for a binary Bind parameter (numeric_recv): ndigits, weight, sign, dscale
 * (int16 each, big-endian), then the digits; digits the display scale hides are cut off.
 */
export function numericFromBinary(bytes: Buffer): NumericValue {
  if (bytes.length < 8) throw badBinary('numeric', `expected at least 8 bytes, got ${bytes.length}`);
  const ndigits = bytes.readUInt16BE(0);
  let weight = bytes.readInt16BE(2);
  const sign = bytes.readUInt16BE(4);
  const dscale = bytes.readUInt16BE(6);
  if (bytes.length !== 8 + 2 * ndigits) {
    throw badBinary('numeric', `${ndigits} digits need ${8 + 2 * ndigits} bytes, got ${bytes.length}`);
  }
  if (
    sign !== NUMERIC_POS &&
    sign !== NUMERIC_NEG &&
    sign !== NUMERIC_NAN &&
    sign !== NUMERIC_PINF &&
    sign !== NUMERIC_NINF
  ) {
    throw new HashInputError('22P03', 'invalid sign in external "numeric" value');
  }
  if (dscale > DSCALE_MAX) throw new HashInputError('22P03', 'invalid scale in external "numeric" value');
  const digits: number[] = [];
  for (let i = 0; i < ndigits; i++) {
    const d = bytes.readInt16BE(8 + 2 * i);
    if (d < 0 || d >= 10000) throw new HashInputError('22P03', 'invalid digit in external "numeric" value');
    digits.push(d);
  }
  if (sign === NUMERIC_NAN) return NAN;
  if (sign !== NUMERIC_POS && sign !== NUMERIC_NEG) return INFINITE;
  // trunc_var(value, dscale): keep (weight + 1) * 4 + dscale decimal digits.
  const keep = (weight + 1) * 4 + dscale;
  if (keep <= 0) return ZERO;
  const keepDigits = Math.ceil(keep / 4);
  if (keepDigits <= digits.length) {
    digits.length = keepDigits;
    const partial = keep % 4;
    if (partial > 0) digits[keepDigits - 1]! -= digits[keepDigits - 1]! % ROUND_POWERS[partial]!;
  }
  // make_result: no leading or trailing zero digits; the weight follows the first one.
  let first = 0;
  while (first < digits.length && digits[first] === 0) first++;
  if (first === digits.length) return ZERO;
  let last = digits.length;
  while (digits[last - 1] === 0) last--;
  weight -= first;
  if (weight < -32768) throw overflow();
  return { kind: 'finite', weight, digits: digits.slice(first, last) };
}

/**
 * A numeric(precision, scale) column's type modifier applied as PostgreSQL applies it when a
 * value is stored (apply_typmod): rounded half away from zero to `scale` decimals (a negative
 * scale, PostgreSQL 15+, rounds to tens, hundreds, …), then refused with 22003 if it needs more
 * than precision − scale digits before the point; infinity does not fit any numeric(p, s).
 * `typmod` is pg_attribute.atttypmod; below 4 (-1) means none.
 */
export function applyNumericTypmod(n: NumericValue, typmod: number): NumericValue {
  if (typmod < 4) return n;
  const precision = ((typmod - 4) >> 16) & 0xffff;
  const scale = (((typmod - 4) & 0x7ff) ^ 0x400) - 0x400;
  const fieldOverflow = (detail: string): HashInputError =>
    new HashInputError(
      '22003',
      'numeric field overflow',
      `A field with precision ${precision}, scale ${scale} ${detail}.`,
    );
  if (n.kind === 'special') {
    if (n.infinite) throw fieldOverflow('cannot hold an infinite value');
    return n;
  }
  if (n.kind === 'zero') return n;
  // Back to decimal digits: s × 10^p.
  let s = n.digits.map((d) => String(d).padStart(4, '0')).join('');
  let p = 4 * (n.weight - n.digits.length + 1);
  if (p < -scale) {
    const drop = -scale - p;
    if (drop > s.length) return ZERO;
    const kept = s.slice(0, s.length - drop);
    s = s.charCodeAt(s.length - drop) >= 53 /* '5' */ ? increment(kept) : kept;
    p = -scale;
  }
  const r = fromDecimalDigits(s, p);
  if (r.kind !== 'finite') return r;
  // Decimal digits before the point, counted from the first non-zero one.
  const first = r.digits[0]!;
  const before = 4 * (r.weight + 1) - (first < 10 ? 3 : first < 100 ? 2 : first < 1000 ? 1 : 0);
  if (before > precision - scale) {
    throw fieldOverflow(`must round to an absolute value less than 10^${precision - scale}`);
  }
  return r;
}

/** A decimal digit string plus one ('' is 0, so '' + 1 is '1'). */
function increment(s: string): string {
  let i = s.length - 1;
  while (i >= 0 && s[i] === '9') i--;
  if (i < 0) return '1' + '0'.repeat(s.length);
  return s.slice(0, i) + String.fromCharCode(s.charCodeAt(i) + 1) + '0'.repeat(s.length - 1 - i);
}
