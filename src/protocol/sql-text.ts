/**
 * Text of SQL and names in client messages, decoded losslessly whatever the client's encoding.
 * Valid UTF-8 is decoded as UTF-8 (the common case, at no extra cost). Anything else comes from a
 * client whose client_encoding is not UTF8 (LATIN1, WIN1252, EUC_JP…) or is invalid UTF-8 that
 * the server will reject itself: its bytes are kept one character per byte, ASCII as ASCII and
 * each byte 0x80–0xFF as the lone surrogate U+DC80–U+DCFF (Python's "surrogateescape"). Every
 * encoding the proxy accepts is ASCII-safe (a byte below 0x80 is always that ASCII character),
 * so the lexer and classifier see the SQL's structure exactly; non-ASCII bytes just read as
 * letters, as PostgreSQL's own scanner treats them. A valid UTF-8 decoding never yields a lone
 * surrogate, so `encodeText` knows which characters stand for raw bytes and gives back the very
 * bytes the client sent, also inside rewritten text. The server does the real conversion.
 */
import { isUtf8 } from 'node:buffer';

// With the u flag only a lone surrogate matches, never the second half of a pair.
const ESCAPED = /[\uDC80-\uDCFF]/u;

export function decodeText(b: Buffer): string {
  if (isUtf8(b)) return b.toString('utf8');
  const units = new Uint16Array(b.length);
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    units[i] = c < 0x80 ? c : 0xdc00 + c;
  }
  let s = '';
  for (let i = 0; i < units.length; i += 8192) {
    s += String.fromCharCode(...units.subarray(i, i + 8192));
  }
  return s;
}

/** Whether `s` holds raw bytes from `decodeText` (then only `encodeText` gives them back). */
export function hasRawBytes(s: string): boolean {
  return ESCAPED.test(s);
}

/** The bytes of a string from `decodeText` (possibly edited): UTF-8, raw bytes as they came. */
export function encodeText(s: string): Buffer {
  if (!ESCAPED.test(s)) return Buffer.from(s, 'utf8');
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      i++; // a pair (or a lone high surrogate, which UTF-8 writes as U+FFFD): not a raw byte
      continue;
    }
    if (c >= 0xdc80 && c <= 0xdcff) {
      if (i > start) parts.push(Buffer.from(s.slice(start, i), 'utf8'));
      parts.push(Buffer.of(c - 0xdc00));
      start = i + 1;
    }
  }
  if (start < s.length) parts.push(Buffer.from(s.slice(start), 'utf8'));
  return Buffer.concat(parts);
}
