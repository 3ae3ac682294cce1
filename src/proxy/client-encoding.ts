/**
 * What a session needs to know about its client_encoding. Text from the client is decoded
 * losslessly whatever the encoding (protocol/sql-text.ts) and forwarded as it came; the server
 * converts. Two things still depend on the encoding: (1) a server-side statement name derived
 * from SQL text must differ when the same bytes mean different text (é in LATIN1 is another
 * character in LATIN2), so non-ASCII text of a client whose encoding is not UTF8 gets the
 * encoding in its name; (2) encodings that are not ASCII-safe (SJIS…) are refused: a SET to one
 * is answered by the server's own error for an invalid value (so the transaction state is
 * PostgreSQL's), and if the server reports one anyway (set_config, a function), the session ends.
 */
import { ASCII_UNSAFE_ENCODINGS, canonicalEncoding, unsafeEncodingDetail } from '../protocol/encodings.js';
import { buildErrorResponse } from '../protocol/error-response.js';
import { SqlState } from '../protocol/sqlstate.js';
import type { SessionEffect } from '../sql/session-effects.js';

// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;

/**
 * The client's encoding for what it sends now, '' for UTF8 (or unset: the server's default,
 * UTF8 in every pgscale cluster): the last one set in the transaction under way, else the
 * session's.
 */
export function sessionEncoding(
  txSettings: readonly SessionEffect[],
  settings: ReadonlyMap<string, string>,
  startup: ReadonlyMap<string, string>,
): string {
  let value: string | undefined;
  for (let i = txSettings.length - 1; i >= 0 && value === undefined; i--) {
    const e = txSettings[i]!;
    if (e.kind === 'set' && e.name === 'client_encoding') value = e.value;
    else if ((e.kind === 'reset' && e.name === 'client_encoding') || e.kind === 'reset_all')
      value = startup.get('client_encoding') ?? '';
  }
  value ??= settings.get('client_encoding') ?? '';
  if (value === '') return '';
  const c = canonicalEncoding(value);
  return c === 'UTF8' ? '' : (c ?? value.toLowerCase());
}

/**
 * The tag that goes into the server-side name of a statement with this text: '' for ASCII text
 * or a UTF8 client (names unchanged), else the client's encoding.
 */
export function encodingTag(
  text: string,
  txSettings: readonly SessionEffect[],
  settings: ReadonlyMap<string, string>,
  startup: ReadonlyMap<string, string>,
): string {
  return NON_ASCII.test(text) ? sessionEncoding(txSettings, settings, startup) : '';
}

/** The canonical name if this SET effect makes client_encoding one the proxy cannot analyse. */
export function refusedEncodingSet(e: SessionEffect): string | null {
  if (e.kind !== 'set' || e.name !== 'client_encoding') return null;
  const c = canonicalEncoding(e.value);
  return c !== null && ASCII_UNSAFE_ENCODINGS.has(c) ? c : null;
}

/**
 * The Query to send instead of one that sets an unsafe client_encoding: the same SET with a
 * value the server refuses (22023, in the transaction as PostgreSQL handles any failed SET), its
 * message naming the encoding and the reason.
 */
export function refusedEncodingQuery(canonical: string): string {
  const v = `${canonical} is not supported through pgscale: multibyte characters can contain ASCII bytes`;
  return `SET client_encoding = '${v}'`;
}

const CLIENT_ENCODING = Buffer.from('client_encoding\0');

/** The unsafe encoding a ParameterStatus reports, or null (also for any other parameter). */
export function unsafeEncodingStatus(payload: Buffer): string | null {
  if (payload.length <= CLIENT_ENCODING.length || !payload.subarray(0, 16).equals(CLIENT_ENCODING))
    return null;
  const end = payload.indexOf(0, CLIENT_ENCODING.length);
  const c = canonicalEncoding(payload.toString('latin1', CLIENT_ENCODING.length, end < 0 ? undefined : end));
  return c !== null && ASCII_UNSAFE_ENCODINGS.has(c) ? c : null;
}

/** The FATAL for a session whose server reported an unsafe client_encoding. */
export function unsafeEncodingFatal(canonical: string): Buffer {
  return buildErrorResponse(
    'FATAL',
    SqlState.FEATURE_NOT_SUPPORTED,
    `client_encoding ${canonical} is not supported through pgscale`,
    unsafeEncodingDetail(canonical),
  );
}
