/**
 * ErrorResponse and NoticeResponse: a list of (one-byte field code, string) pairs ended by a zero
 * byte (https://www.postgresql.org/docs/current/protocol-error-fields.html). Every field is kept,
 * in order and including codes we do not know, because errors from PostgreSQL are forwarded
 * verbatim and future servers add fields. Nothing is assumed present: a server (or an impostor)
 * may omit `C`, `S` or `M` (CVE-2026-6666 class), so accessors return undefined rather than trust.
 * Values are decoded leniently (invalid UTF-8 becomes U+FFFD) since they are only displayed and
 * the original bytes are what gets forwarded. Also builds the errors the proxy itself raises.
 */

import type { Result } from './result.js';
import { Reader } from './reader.js';
import { finish, malformed } from './decode-helpers.js';
import type { Writer } from './writer.js';
import { encodeWith } from './writer.js';
import type { Failure } from './result.js';

/** Field codes; https://www.postgresql.org/docs/current/protocol-error-fields.html */
export const ErrorField = {
  /** Localized severity (ERROR, FATAL, PANIC, WARNING, NOTICE, DEBUG, INFO, LOG). */
  SeverityLocalized: 'S',
  /** Non-localized severity (PostgreSQL 9.6+). */
  Severity: 'V',
  Code: 'C',
  Message: 'M',
  Detail: 'D',
  Hint: 'H',
  Position: 'P',
  InternalPosition: 'p',
  InternalQuery: 'q',
  Where: 'W',
  Schema: 's',
  Table: 't',
  Column: 'c',
  DataType: 'd',
  Constraint: 'n',
  File: 'F',
  Line: 'L',
  Routine: 'R',
} as const;

export type Severity = 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG';

export interface NoticeField {
  readonly code: string;
  readonly value: string;
}

export interface ErrorResponse {
  readonly name: 'ErrorResponse' | 'NoticeResponse';
  readonly fields: readonly NoticeField[];
}

export function decodeErrorResponse(payload: Buffer): Result<ErrorResponse> {
  return decodeFields('ErrorResponse', payload);
}

export function decodeNoticeResponse(payload: Buffer): Result<ErrorResponse> {
  return decodeFields('NoticeResponse', payload);
}

function decodeFields(name: ErrorResponse['name'], payload: Buffer): Result<ErrorResponse> {
  const r = new Reader(payload);
  const fields: NoticeField[] = [];
  for (;;) {
    const code = r.byte();
    if (r.failed) return malformed(name, 'missing terminator');
    if (code === 0) break;
    fields.push({ code: String.fromCharCode(code), value: r.cstringLossy() });
    if (r.failed) return malformed(name);
  }
  return finish(r, name, { name, fields });
}

/** First value of a field, or undefined when the server left it out. */
export function errorField(e: ErrorResponse, code: string): string | undefined {
  for (const f of e.fields) if (f.code === code) return f.value;
  return undefined;
}

export interface ErrorSummary {
  /** Non-localized `V` if present, else `S`, else undefined. */
  readonly severity: string | undefined;
  /** `C`, or undefined: callers choose their fallback (often XX000) knowingly. */
  readonly sqlstate: string | undefined;
  readonly message: string | undefined;
  readonly detail: string | undefined;
  readonly hint: string | undefined;
}

export function summarizeError(e: ErrorResponse): ErrorSummary {
  return {
    severity: errorField(e, 'V') ?? errorField(e, 'S'),
    sqlstate: errorField(e, 'C'),
    message: errorField(e, 'M'),
    detail: errorField(e, 'D'),
    hint: errorField(e, 'H'),
  };
}

export function writeErrorResponse(w: Writer, e: ErrorResponse): void {
  w.startMessage(e.name === 'ErrorResponse' ? 'E' : 'N');
  for (const f of e.fields) w.byte(f.code.charCodeAt(0)).cstring(f.value);
  w.byte(0).endMessage();
}

export function encodeErrorResponse(e: ErrorResponse): Buffer {
  return encodeWith((w) => writeErrorResponse(w, e));
}

export interface ErrorSpec {
  readonly severity: Severity;
  readonly sqlstate: string;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
}

/** An ErrorResponse value as PostgreSQL shapes its own: S, V, C, M, then D and H when given. */
export function makeError(spec: ErrorSpec, name: ErrorResponse['name'] = 'ErrorResponse'): ErrorResponse {
  const fields: NoticeField[] = [
    { code: 'S', value: spec.severity },
    { code: 'V', value: spec.severity },
    { code: 'C', value: spec.sqlstate },
    { code: 'M', value: spec.message },
  ];
  if (spec.detail !== undefined) fields.push({ code: 'D', value: spec.detail });
  if (spec.hint !== undefined) fields.push({ code: 'H', value: spec.hint });
  return { name, fields };
}

function build(
  name: ErrorResponse['name'],
  severity: Severity,
  sqlstate: string,
  message: string,
  detail?: string,
): Buffer {
  const spec =
    detail === undefined ? { severity, sqlstate, message } : { severity, sqlstate, message, detail };
  return encodeErrorResponse(makeError(spec, name));
}

/** Encoded ErrorResponse from (severity, sqlstate, message, detail?). */
export function buildErrorResponse(
  severity: Severity,
  sqlstate: string,
  message: string,
  detail?: string,
): Buffer {
  return build('ErrorResponse', severity, sqlstate, message, detail);
}

/** Encoded NoticeResponse, e.g. a WARNING the proxy adds. */
export function buildNoticeResponse(
  severity: Severity,
  sqlstate: string,
  message: string,
  detail?: string,
): Buffer {
  return build('NoticeResponse', severity, sqlstate, message, detail);
}

/** The FATAL ErrorResponse for a protocol-layer Failure: what the proxy sends before closing. */
export function fatalFromFailure(f: Failure): Buffer {
  return buildErrorResponse('FATAL', f.sqlstate, f.message, f.detail);
}
