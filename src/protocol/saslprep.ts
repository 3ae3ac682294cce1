/**
 * SASLprep (RFC 4013) of a password as PostgreSQL applies it before SCRAM hashing, so that the
 * keys we derive equal the server's. PostgreSQL's pg_saslprep
 * (https://github.com/postgres/postgres/blob/REL_18_STABLE/src/common/saslprep.c) returns pure
 * ASCII unchanged, and when normalisation fails (prohibited or unassigned characters, bidi rule)
 * the caller hashes the raw password instead — so failure here is not an error, it means "use the
 * password as is". Limits: JavaScript has no Unicode 3.2 tables, so "unassigned" uses today's
 * \p{Cn} and the bidi categories are approximated by script; only passwords mixing such characters
 * with ones NFKC changes could hash differently from PostgreSQL.
 */

// RFC 3454 B.1: commonly mapped to nothing. The table lists joiners and variation selectors on
// purpose: they are removed precisely because they combine with their neighbours.
// eslint-disable-next-line no-misleading-character-class
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/gu;
// RFC 3454 C.1.2: non-ASCII space characters, mapped to U+0020.
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/gu;
// C.2.1/C.2.2 controls, C.3 private use, C.4 non-characters, C.5 surrogates, C.6–C.9, A.1 (approx.).
const PROHIBITED =
  // eslint-disable-next-line no-control-regex, no-misleading-character-class
  /[\u0000-\u001F\u007F-\u009F\u0340\u0341\u06DD\u070F\u180E\u200C-\u200F\u2028-\u202E\u2060-\u2063\u206A-\u206F\u2FF0-\u2FFB\uE000-\uF8FF\uFDD0-\uFDEF\uFFF9-\uFFFF\u{1D173}-\u{1D17A}\u{E0001}\u{E0020}-\u{E007F}\u{F0000}-\u{10FFFF}]|\p{Cs}|\p{Cn}/u;
// RandALCat approximated by the right-to-left scripts; LCat by other letters.
const RAND_AL = /[\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}]/u;
const L_CAT =
  /(?![\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}])\p{L}/u;

/** The string to hash: the SASLprep'd password, or the password itself where PostgreSQL falls back. */
export function saslprep(password: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7F]*$/.test(password)) return password;
  const mapped = password.replace(MAPPED_TO_NOTHING, '').replace(NON_ASCII_SPACE, ' ').normalize('NFKC');
  if (mapped.length === 0 || PROHIBITED.test(mapped)) return password;
  if (RAND_AL.test(mapped)) {
    const chars = [...mapped];
    if (L_CAT.test(mapped) || !RAND_AL.test(chars[0] ?? '') || !RAND_AL.test(chars[chars.length - 1] ?? '')) {
      return password;
    }
  }
  return mapped;
}
