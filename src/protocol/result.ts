/**
 * The value every pure protocol function returns instead of throwing: either `{ ok: true, value }`
 * or a `Failure` carrying the SQLSTATE and message the proxy should put in its FATAL ErrorResponse.
 * Bad input from a peer is an expected outcome on a hot path, so it is data, not an exception
 * (ARCHITECTURE.md decision 9); a thrown exception from this layer is always a bug.
 */

import type { SqlStateCode } from './sqlstate.js';
import { ErrorCodes, ProtocolError } from '../errors.js';

export interface Failure {
  readonly ok: false;
  readonly sqlstate: SqlStateCode;
  readonly message: string;
  readonly detail?: string;
}

export interface Success<T> {
  readonly ok: true;
  readonly value: T;
}

export type Result<T> = Success<T> | Failure;

export function ok<T>(value: T): Success<T> {
  return { ok: true, value };
}

export function fail(sqlstate: SqlStateCode, message: string, detail?: string): Failure {
  return detail === undefined ? { ok: false, sqlstate, message } : { ok: false, sqlstate, message, detail };
}

/**
 * Wraps a Failure in the project's ProtocolError for code paths that do throw (start-up, admin
 * tools). Class 28 (authorization) maps to ErrorCodes.AUTH, everything else to PROTOCOL; the
 * SQLSTATE stays readable at the front of the message.
 */
export function failureToError(f: Failure): ProtocolError {
  const code = f.sqlstate.startsWith('28') ? ErrorCodes.AUTH : ErrorCodes.PROTOCOL;
  return new ProtocolError(
    code,
    `${f.sqlstate}: ${f.message}${f.detail === undefined ? '' : ` (${f.detail})`}`,
  );
}
