/**
 * Shared ending of every decoder: a message must be consumed exactly (PostgreSQL's pq_getmsgend
 * says "invalid message format" otherwise), must not have been read past its end, and its strict
 * strings must be UTF-8. Centralised so each codec reports the same SQLSTATE and wording.
 */

import type { Reader } from './reader.js';
import type { Result } from './result.js';
import { fail, ok } from './result.js';
import { SqlState } from './sqlstate.js';

export function finish<T>(r: Reader, what: string, value: T): Result<T> {
  if (r.failed || !r.atEnd)
    return fail(SqlState.PROTOCOL_VIOLATION, `invalid message format`, `malformed ${what}`);
  if (r.badEncoding) {
    return fail(
      SqlState.CHARACTER_NOT_IN_REPERTOIRE,
      'invalid byte sequence for encoding "UTF8"',
      `in ${what}`,
    );
  }
  return ok(value);
}

export function malformed(what: string, detail?: string): Result<never> {
  return fail(SqlState.PROTOCOL_VIOLATION, 'invalid message format', detail ?? `malformed ${what}`);
}
