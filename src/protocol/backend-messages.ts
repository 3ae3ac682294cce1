/**
 * Codecs for the typed messages a server sends (and the proxy sends to its clients), except
 * Authentication (auth-messages.ts) and ErrorResponse/NoticeResponse (error-response.ts), which
 * `decodeBackendMessage` dispatches to. Layouts:
 * https://www.postgresql.org/docs/current/protocol-message-formats.html. Values in DataRow are
 * views into the frame. BackendKeyData's secret is variable-length since protocol 3.2 (4..256
 * bytes, PostgreSQL 18 sends 32); in 3.0 it must be exactly 4, which callers enforce by passing
 * the negotiated version.
 */

import type { Result } from './result.js';
import { fail } from './result.js';
import { SqlState } from './sqlstate.js';
import { Reader } from './reader.js';
import { finish, malformed } from './decode-helpers.js';
import type { Writer } from './writer.js';
import { encodeWith } from './writer.js';
import { BackendType } from './message-types.js';
import {
  CANCEL_KEY_LENGTH_3_0,
  MAX_CANCEL_KEY_LENGTH,
  MIN_CANCEL_KEY_LENGTH,
  PROTOCOL_3_2,
} from './limits.js';
import type { Authentication } from './auth-messages.js';
import { decodeAuthentication, writeAuthentication } from './auth-messages.js';
import type { ErrorResponse } from './error-response.js';
import { decodeErrorResponse, decodeNoticeResponse, writeErrorResponse } from './error-response.js';
import type { CopyData, CopyDone, CopyResponse } from './copy-messages.js';
import {
  decodeCopyData,
  decodeCopyDone,
  decodeCopyResponse,
  writeCopyData,
  writeCopyDone,
  writeCopyResponse,
} from './copy-messages.js';

export interface ParameterStatus {
  readonly name: 'ParameterStatus';
  readonly parameter: string;
  readonly value: string;
}

export interface BackendKeyData {
  readonly name: 'BackendKeyData';
  readonly processId: number;
  readonly secretKey: Buffer;
}

export type TransactionStatus = 'I' | 'T' | 'E';

export interface ReadyForQuery {
  readonly name: 'ReadyForQuery';
  /** I idle, T in a transaction block, E in a failed transaction block. */
  readonly status: TransactionStatus;
}

export interface NegotiateProtocolVersion {
  readonly name: 'NegotiateProtocolVersion';
  /** Full version (major << 16 | minor) the server will speak. */
  readonly version: number;
  readonly unsupportedOptions: readonly string[];
}

export interface FieldDescription {
  readonly name: string;
  readonly tableOid: number;
  readonly columnAttr: number;
  readonly typeOid: number;
  readonly typeSize: number;
  readonly typeModifier: number;
  readonly format: number;
}

export interface RowDescription {
  readonly name: 'RowDescription';
  readonly fields: readonly FieldDescription[];
}

export interface DataRow {
  readonly name: 'DataRow';
  readonly values: readonly (Buffer | null)[];
}

export interface CommandComplete {
  readonly name: 'CommandComplete';
  readonly tag: string;
}

export interface NotificationResponse {
  readonly name: 'NotificationResponse';
  readonly processId: number;
  readonly channel: string;
  readonly payload: string;
}

export interface ParameterDescription {
  readonly name: 'ParameterDescription';
  readonly typeOids: readonly number[];
}

export type EmptyBackendMessage = {
  readonly name:
    'EmptyQueryResponse' | 'ParseComplete' | 'BindComplete' | 'CloseComplete' | 'NoData' | 'PortalSuspended';
};

export type BackendMessage =
  | Authentication
  | ParameterStatus
  | BackendKeyData
  | ReadyForQuery
  | ErrorResponse
  | NegotiateProtocolVersion
  | RowDescription
  | DataRow
  | CommandComplete
  | NotificationResponse
  | ParameterDescription
  | EmptyBackendMessage
  | CopyData
  | CopyDone
  | CopyResponse;

export function decodeParameterStatus(payload: Buffer): Result<ParameterStatus> {
  const r = new Reader(payload);
  const parameter = r.cstring();
  const value = r.cstring();
  return finish(r, 'ParameterStatus', { name: 'ParameterStatus', parameter, value });
}

/**
 * `version` is the negotiated protocol: 3.0 requires a 4-byte key, 3.2+ allows 4..256
 * (https://www.postgresql.org/docs/18/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BACKENDKEYDATA).
 */
export function decodeBackendKeyData(
  payload: Buffer,
  version: number = PROTOCOL_3_2,
): Result<BackendKeyData> {
  const keyLength = payload.length - 4;
  const okLength =
    version >= PROTOCOL_3_2
      ? keyLength >= MIN_CANCEL_KEY_LENGTH && keyLength <= MAX_CANCEL_KEY_LENGTH
      : keyLength === CANCEL_KEY_LENGTH_3_0;
  if (!okLength)
    return fail(
      SqlState.PROTOCOL_VIOLATION,
      'invalid message format',
      `BackendKeyData key of ${keyLength} bytes`,
    );
  return {
    ok: true,
    value: { name: 'BackendKeyData', processId: payload.readInt32BE(0), secretKey: payload.subarray(4) },
  };
}

export function decodeReadyForQuery(payload: Buffer): Result<ReadyForQuery> {
  if (payload.length !== 1) return malformed('ReadyForQuery');
  const s = String.fromCharCode(payload[0] ?? 0);
  if (s !== 'I' && s !== 'T' && s !== 'E')
    return malformed('ReadyForQuery', `invalid transaction status ${s.charCodeAt(0)}`);
  return { ok: true, value: { name: 'ReadyForQuery', status: s } };
}

/**
 * The status of a whole ReadyForQuery message (header included), or null when it is malformed:
 * what decodeReadyForQuery(payload) accepts, without allocating (a proxy sees one per request).
 * `start`/`end` bound the message inside a larger buffer (a framed chunk).
 */
export function readyForQueryStatus(bytes: Buffer, start = 0, end = bytes.length): TransactionStatus | null {
  if (end - start !== 6) return null;
  const c = bytes[start + 5];
  return c === 0x49 ? 'I' : c === 0x54 ? 'T' : c === 0x45 ? 'E' : null;
}

/**
 * Whether a whole CommandComplete message (header included) carries exactly `tag`: what comparing
 * decodeCommandComplete(payload).value.tag would say, without decoding every tag (ASCII tags only).
 */
export function commandCompleteIs(bytes: Buffer, tag: string, start = 0, end = bytes.length): boolean {
  const n = tag.length;
  if (end - start !== 6 + n || bytes[start + 5 + n] !== 0) return false;
  for (let i = 0; i < n; i++) if (bytes[start + 5 + i] !== tag.charCodeAt(i)) return false;
  return true;
}

export function decodeNegotiateProtocolVersion(payload: Buffer): Result<NegotiateProtocolVersion> {
  const r = new Reader(payload);
  const version = r.uint32();
  const n = r.int32();
  if (!r.failed && (n < 0 || n > r.remaining)) return malformed('NegotiateProtocolVersion');
  const unsupportedOptions: string[] = [];
  for (let i = 0; i < n && !r.failed; i++) unsupportedOptions.push(r.cstring());
  return finish(r, 'NegotiateProtocolVersion', {
    name: 'NegotiateProtocolVersion',
    version,
    unsupportedOptions,
  });
}

export function decodeRowDescription(payload: Buffer): Result<RowDescription> {
  const r = new Reader(payload);
  const n = r.uint16();
  const fields: FieldDescription[] = [];
  for (let i = 0; i < n && !r.failed; i++) {
    fields.push({
      name: r.cstring(),
      tableOid: r.uint32(),
      columnAttr: r.int16(),
      typeOid: r.uint32(),
      typeSize: r.int16(),
      typeModifier: r.int32(),
      format: r.int16(),
    });
  }
  return finish(r, 'RowDescription', { name: 'RowDescription', fields });
}

export function decodeDataRow(payload: Buffer): Result<DataRow> {
  const r = new Reader(payload);
  const n = r.uint16();
  const values: (Buffer | null)[] = [];
  for (let i = 0; i < n && !r.failed; i++) {
    const len = r.int32();
    if (len === -1) values.push(null);
    else if (len < 0) return malformed('DataRow', `invalid column length ${len}`);
    else values.push(r.bytes(len));
  }
  return finish(r, 'DataRow', { name: 'DataRow', values });
}

export function decodeCommandComplete(payload: Buffer): Result<CommandComplete> {
  const r = new Reader(payload);
  return finish(r, 'CommandComplete', { name: 'CommandComplete', tag: r.cstring() });
}

export function decodeNotificationResponse(payload: Buffer): Result<NotificationResponse> {
  const r = new Reader(payload);
  const processId = r.int32();
  const channel = r.cstring();
  const body = r.cstring();
  return finish(r, 'NotificationResponse', {
    name: 'NotificationResponse',
    processId,
    channel,
    payload: body,
  });
}

export function decodeParameterDescription(payload: Buffer): Result<ParameterDescription> {
  const r = new Reader(payload);
  const n = r.uint16();
  const typeOids: number[] = [];
  for (let i = 0; i < n && !r.failed; i++) typeOids.push(r.uint32());
  return finish(r, 'ParameterDescription', { name: 'ParameterDescription', typeOids });
}

function empty(payload: Buffer, name: EmptyBackendMessage['name']): Result<EmptyBackendMessage> {
  return payload.length === 0 ? { ok: true, value: { name } } : malformed(name);
}

export interface BackendDecodeOptions {
  /** Negotiated protocol version; decides the BackendKeyData key length rule. Default 3.2. */
  readonly version?: number;
}

/** Decodes any server message by type byte; unknown types are 08P01 values. */
export function decodeBackendMessage(
  type: string,
  payload: Buffer,
  options: BackendDecodeOptions = {},
): Result<BackendMessage> {
  switch (type) {
    case BackendType.Authentication:
      return decodeAuthentication(payload);
    case BackendType.ParameterStatus:
      return decodeParameterStatus(payload);
    case BackendType.BackendKeyData:
      return decodeBackendKeyData(payload, options.version);
    case BackendType.ReadyForQuery:
      return decodeReadyForQuery(payload);
    case BackendType.ErrorResponse:
      return decodeErrorResponse(payload);
    case BackendType.NoticeResponse:
      return decodeNoticeResponse(payload);
    case BackendType.NegotiateProtocolVersion:
      return decodeNegotiateProtocolVersion(payload);
    case BackendType.RowDescription:
      return decodeRowDescription(payload);
    case BackendType.DataRow:
      return decodeDataRow(payload);
    case BackendType.CommandComplete:
      return decodeCommandComplete(payload);
    case BackendType.NotificationResponse:
      return decodeNotificationResponse(payload);
    case BackendType.ParameterDescription:
      return decodeParameterDescription(payload);
    case BackendType.EmptyQueryResponse:
      return empty(payload, 'EmptyQueryResponse');
    case BackendType.ParseComplete:
      return empty(payload, 'ParseComplete');
    case BackendType.BindComplete:
      return empty(payload, 'BindComplete');
    case BackendType.CloseComplete:
      return empty(payload, 'CloseComplete');
    case BackendType.NoData:
      return empty(payload, 'NoData');
    case BackendType.PortalSuspended:
      return empty(payload, 'PortalSuspended');
    case BackendType.CopyData:
      return decodeCopyData(payload);
    case BackendType.CopyDone:
      return decodeCopyDone(payload);
    case BackendType.CopyInResponse:
      return decodeCopyResponse('CopyInResponse', payload);
    case BackendType.CopyOutResponse:
      return decodeCopyResponse('CopyOutResponse', payload);
    case BackendType.CopyBothResponse:
      return decodeCopyResponse('CopyBothResponse', payload);
    default:
      return malformed('message', `unsupported backend message type ${type.charCodeAt(0)}`);
  }
}

const emptyType = {
  EmptyQueryResponse: 'I',
  ParseComplete: '1',
  BindComplete: '2',
  CloseComplete: '3',
  NoData: 'n',
  PortalSuspended: 's',
} as const;

/** Appends one server message to `w`. */
export function writeBackendMessage(w: Writer, m: BackendMessage): void {
  switch (m.name) {
    case 'AuthenticationOk':
    case 'AuthenticationCleartextPassword':
    case 'AuthenticationMD5Password':
    case 'AuthenticationSASL':
    case 'AuthenticationSASLContinue':
    case 'AuthenticationSASLFinal':
      writeAuthentication(w, m);
      return;
    case 'ErrorResponse':
    case 'NoticeResponse':
      writeErrorResponse(w, m);
      return;
    case 'ParameterStatus':
      w.startMessage('S').cstring(m.parameter).cstring(m.value).endMessage();
      return;
    case 'BackendKeyData':
      w.startMessage('K').int32(m.processId).bytes(m.secretKey).endMessage();
      return;
    case 'ReadyForQuery':
      w.startMessage('Z').byte(m.status.charCodeAt(0)).endMessage();
      return;
    case 'NegotiateProtocolVersion':
      w.startMessage('v').uint32(m.version).int32(m.unsupportedOptions.length);
      for (const o of m.unsupportedOptions) w.cstring(o);
      w.endMessage();
      return;
    case 'RowDescription':
      w.startMessage('T').uint16(m.fields.length);
      for (const f of m.fields) {
        w.cstring(f.name).uint32(f.tableOid).int16(f.columnAttr).uint32(f.typeOid).int16(f.typeSize);
        w.int32(f.typeModifier).int16(f.format);
      }
      w.endMessage();
      return;
    case 'DataRow':
      w.startMessage('D').uint16(m.values.length);
      for (const v of m.values) {
        if (v === null) w.int32(-1);
        else w.int32(v.length).bytes(v);
      }
      w.endMessage();
      return;
    case 'CommandComplete':
      w.startMessage('C').cstring(m.tag).endMessage();
      return;
    case 'NotificationResponse':
      w.startMessage('A').int32(m.processId).cstring(m.channel).cstring(m.payload).endMessage();
      return;
    case 'ParameterDescription':
      w.startMessage('t').uint16(m.typeOids.length);
      for (const t of m.typeOids) w.uint32(t);
      w.endMessage();
      return;
    case 'EmptyQueryResponse':
    case 'ParseComplete':
    case 'BindComplete':
    case 'CloseComplete':
    case 'NoData':
    case 'PortalSuspended':
      w.startMessage(emptyType[m.name]).endMessage();
      return;
    case 'CopyData':
      writeCopyData(w, m);
      return;
    case 'CopyDone':
      writeCopyDone(w);
      return;
    case 'CopyInResponse':
    case 'CopyOutResponse':
    case 'CopyBothResponse':
      writeCopyResponse(w, m);
      return;
  }
}

/** Encodes one server message into a fresh Buffer. */
export function encodeBackendMessage(m: BackendMessage): Buffer {
  return encodeWith((w) => writeBackendMessage(w, m));
}
