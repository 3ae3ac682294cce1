/**
 * PostgreSQL's encoding names, as pg_char_to_encoding reads them
 * (https://github.com/postgres/postgres/blob/REL_18_STABLE/src/common/encnames.c): case and
 * punctuation are ignored ("ISO-8859-1", "iso88591" and "latin1" are all LATIN1). The proxy needs
 * two facts about a client_encoding: its canonical name (to report it as PostgreSQL does), and
 * whether it is ASCII-safe. The client-only encodings SJIS, SHIFT_JIS_2004, BIG5, GBK, UHC, JOHAB
 * and GB18030 are not: the second byte of a multibyte character can be an ASCII byte, a quote or
 * a backslash among them, so no byte-level SQL lexer (the proxy's) can find where a string ends.
 */

const ALIASES: Record<string, string> = {
  abc: 'WIN1258',
  alt: 'WIN866',
  big5: 'BIG5',
  euccn: 'EUC_CN',
  eucjis2004: 'EUC_JIS_2004',
  eucjp: 'EUC_JP',
  euckr: 'EUC_KR',
  euctw: 'EUC_TW',
  gb18030: 'GB18030',
  gbk: 'GBK',
  iso88591: 'LATIN1',
  iso885910: 'LATIN6',
  iso885913: 'LATIN7',
  iso885914: 'LATIN8',
  iso885915: 'LATIN9',
  iso885916: 'LATIN10',
  iso88592: 'LATIN2',
  iso88593: 'LATIN3',
  iso88594: 'LATIN4',
  iso88595: 'ISO_8859_5',
  iso88596: 'ISO_8859_6',
  iso88597: 'ISO_8859_7',
  iso88598: 'ISO_8859_8',
  iso88599: 'LATIN5',
  johab: 'JOHAB',
  koi8: 'KOI8R',
  koi8r: 'KOI8R',
  koi8u: 'KOI8U',
  latin1: 'LATIN1',
  latin10: 'LATIN10',
  latin2: 'LATIN2',
  latin3: 'LATIN3',
  latin4: 'LATIN4',
  latin5: 'LATIN5',
  latin6: 'LATIN6',
  latin7: 'LATIN7',
  latin8: 'LATIN8',
  latin9: 'LATIN9',
  mskanji: 'SJIS',
  muleinternal: 'MULE_INTERNAL',
  shiftjis: 'SJIS',
  shiftjis2004: 'SHIFT_JIS_2004',
  sjis: 'SJIS',
  sqlascii: 'SQL_ASCII',
  tcvn: 'WIN1258',
  tcvn5712: 'WIN1258',
  uhc: 'UHC',
  unicode: 'UTF8',
  utf8: 'UTF8',
  vscii: 'WIN1258',
  win: 'WIN1251',
  win1250: 'WIN1250',
  win1251: 'WIN1251',
  win1252: 'WIN1252',
  win1253: 'WIN1253',
  win1254: 'WIN1254',
  win1255: 'WIN1255',
  win1256: 'WIN1256',
  win1257: 'WIN1257',
  win1258: 'WIN1258',
  win866: 'WIN866',
  win874: 'WIN874',
  win932: 'SJIS',
  win936: 'GBK',
  win949: 'UHC',
  win950: 'BIG5',
  windows1250: 'WIN1250',
  windows1251: 'WIN1251',
  windows1252: 'WIN1252',
  windows1253: 'WIN1253',
  windows1254: 'WIN1254',
  windows1255: 'WIN1255',
  windows1256: 'WIN1256',
  windows1257: 'WIN1257',
  windows1258: 'WIN1258',
  windows866: 'WIN866',
  windows874: 'WIN874',
  windows932: 'SJIS',
  windows936: 'GBK',
  windows949: 'UHC',
  windows950: 'BIG5',
};

/** Client-only encodings whose multibyte characters can contain ASCII bytes. */
export const ASCII_UNSAFE_ENCODINGS: ReadonlySet<string> = new Set([
  'SJIS',
  'SHIFT_JIS_2004',
  'BIG5',
  'GBK',
  'UHC',
  'JOHAB',
  'GB18030',
]);

/** The canonical name of an encoding as a client may spell it (quotes allowed), or null. */
export function canonicalEncoding(name: string): string | null {
  const clean = name
    .replace(/^'(.*)'$/s, '$1')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '');
  return ALIASES[clean] ?? null;
}

/** Whether the proxy can analyse SQL sent in this encoding (unknown names: left to the server). */
export function isAsciiSafeEncoding(name: string): boolean {
  const c = canonicalEncoding(name);
  return c === null || !ASCII_UNSAFE_ENCODINGS.has(c);
}

/** Why an encoding is refused, for the error a client gets. */
export function unsafeEncodingDetail(canonical: string): string {
  return (
    `In ${canonical} the second byte of a character can be an ASCII byte such as a quote or a ` +
    'backslash, so pgscale cannot tell where a string ends in SQL text. Use UTF8 (or another ' +
    'encoding PostgreSQL accepts as a server encoding); the server converts it.'
  );
}
