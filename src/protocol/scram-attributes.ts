/**
 * Parsing of SCRAM message text: comma-separated `letter=value` attributes (RFC 5802 §5.1, §7).
 * Everything a peer sends passes through here before any cryptography, so each rule is checked
 * and capped: a total length limit, printable nonces (%x21-2B / %x2D-7E), saslname escaping
 * (`=2C`, `=3D` only), and single-letter attribute names.
 */

/** Upper bound for any SCRAM message we accept; real ones are under 300 bytes. */
export const MAX_SCRAM_MESSAGE_LENGTH = 2048;
/** Upper bound for a nonce (client + server part); PostgreSQL sends 24 + 24 characters. */
export const MAX_NONCE_LENGTH = 512;

export interface Attribute {
  readonly name: string;
  readonly value: string;
  /** Offset of the attribute in the message (to cut client-final-message-without-proof). */
  readonly offset: number;
}

/** Splits `a=1,b=2` into attributes; undefined if any part is not `letter=value`. */
export function splitAttributes(text: string, start = 0): Attribute[] | undefined {
  const out: Attribute[] = [];
  let offset = start;
  for (const part of text.slice(start).split(',')) {
    if (!/^[A-Za-z]=/.test(part)) return undefined;
    out.push({ name: part[0] ?? '', value: part.slice(2), offset });
    offset += part.length + 1;
  }
  return out;
}

/** printable = %x21-2B / %x2D-7E: visible ASCII except ','. */
export function isPrintable(s: string): boolean {
  return /^[\x21-\x2B\x2D-\x7E]+$/.test(s);
}

/** saslname: no ',' and '=' only as '=2C' or '=3D'. Returns the unescaped name or undefined. */
export function unescapeSaslname(s: string): string | undefined {
  if (s.includes(',') || /=(?!2C|3D)/.test(s)) return undefined;
  return s.replaceAll('=2C', ',').replaceAll('=3D', '=');
}

export function escapeSaslname(s: string): string {
  return s.replaceAll('=', '=3D').replaceAll(',', '=2C');
}
