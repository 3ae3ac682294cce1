/**
 * Codecs for the untyped startup-phase packets a client sends first: StartupMessage (protocol 3.0
 * and 3.2), SSLRequest, GSSENCRequest and CancelRequest, plus the version negotiation PostgreSQL
 * performs on a StartupMessage. Parsing follows ProcessStartupPacket in
 * https://github.com/postgres/postgres/blob/REL_18_STABLE/src/backend/tcop/backend_startup.c:
 * name/value C strings, then one final NUL that must be the last byte ("invalid startup packet
 * layout: expected terminator as last byte"). Protocol 3.2 (PostgreSQL 18) changed only the
 * cancel key, which became variable-length (4..256 bytes).
 */

import type { Result } from './result.js';
import { fail, ok } from './result.js';
import { SqlState } from './sqlstate.js';
import { Reader } from './reader.js';
import { encodeWith } from './writer.js';
import {
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  LATEST_PROTOCOL,
  MAX_CANCEL_KEY_LENGTH,
  MIN_CANCEL_KEY_LENGTH,
  SSL_REQUEST_CODE,
  protocolVersion,
} from './limits.js';

export interface StartupMessage {
  readonly name: 'StartupMessage';
  /** major << 16 | minor, e.g. 196608 for 3.0. */
  readonly version: number;
  /** Parameters in the order sent; names are unique (duplicates are rejected). */
  readonly params: ReadonlyMap<string, string>;
}

export interface SSLRequest {
  readonly name: 'SSLRequest';
}

export interface GSSENCRequest {
  readonly name: 'GSSENCRequest';
}

export interface CancelRequest {
  readonly name: 'CancelRequest';
  readonly processId: number;
  /** 4 bytes from 3.0 clients, up to 256 from 3.2 clients. A view into the packet. */
  readonly secretKey: Buffer;
}

export type StartupPacket = StartupMessage | SSLRequest | GSSENCRequest | CancelRequest;

const LAYOUT = 'invalid startup packet layout: expected terminator as last byte';

/** Decodes a startup-phase packet's payload (the bytes after its length field). */
export function decodeStartupPacket(payload: Buffer): Result<StartupPacket> {
  if (payload.length < 4) return fail(SqlState.PROTOCOL_VIOLATION, 'invalid length of startup packet');
  const code = payload.readUInt32BE(0);
  switch (code) {
    case SSL_REQUEST_CODE:
    case GSSENC_REQUEST_CODE:
      if (payload.length !== 4) {
        return fail(SqlState.PROTOCOL_VIOLATION, 'invalid length of encryption request packet');
      }
      return ok(code === SSL_REQUEST_CODE ? { name: 'SSLRequest' } : { name: 'GSSENCRequest' });
    case CANCEL_REQUEST_CODE:
      return decodeCancelRequest(payload);
    default:
      return decodeStartupMessage(payload);
  }
}

function decodeCancelRequest(payload: Buffer): Result<CancelRequest> {
  const keyLength = payload.length - 8;
  if (keyLength < MIN_CANCEL_KEY_LENGTH || keyLength > MAX_CANCEL_KEY_LENGTH) {
    return fail(SqlState.PROTOCOL_VIOLATION, 'invalid length of cancel request packet');
  }
  return ok({
    name: 'CancelRequest',
    processId: payload.readInt32BE(4),
    secretKey: payload.subarray(8),
  });
}

function decodeStartupMessage(payload: Buffer): Result<StartupMessage> {
  const r = new Reader(payload);
  const version = r.uint32();
  const params = new Map<string, string>();
  for (;;) {
    if (r.remaining === 0) return fail(SqlState.PROTOCOL_VIOLATION, LAYOUT);
    if (payload[payload.length - r.remaining] === 0) {
      r.byte();
      break;
    }
    const key = r.cstring();
    if (r.remaining === 0) return fail(SqlState.PROTOCOL_VIOLATION, LAYOUT); // name without value
    const value = r.cstring();
    if (r.failed) return fail(SqlState.PROTOCOL_VIOLATION, LAYOUT);
    if (r.badEncoding) {
      return fail(
        SqlState.CHARACTER_NOT_IN_REPERTOIRE,
        'invalid byte sequence for encoding "UTF8" in startup packet',
      );
    }
    // PostgreSQL lets the last duplicate win; a proxy that authenticates one value while a server
    // later sees another is a confusion hazard, so duplicates are refused outright.
    if (params.has(key)) return fail(SqlState.PROTOCOL_VIOLATION, `duplicate startup parameter "${key}"`);
    params.set(key, value);
  }
  if (!r.atEnd) return fail(SqlState.PROTOCOL_VIOLATION, LAYOUT);
  return ok({ name: 'StartupMessage', version, params });
}

export function encodeStartupMessage(m: Omit<StartupMessage, 'name'>): Buffer {
  return encodeWith((w) => {
    w.startMessage().uint32(m.version);
    for (const [k, v] of m.params) w.cstring(k).cstring(v);
    w.byte(0).endMessage();
  });
}

export function encodeSSLRequest(): Buffer {
  return encodeWith((w) => w.startMessage().uint32(SSL_REQUEST_CODE).endMessage());
}

export function encodeGSSENCRequest(): Buffer {
  return encodeWith((w) => w.startMessage().uint32(GSSENC_REQUEST_CODE).endMessage());
}

export function encodeCancelRequest(m: Omit<CancelRequest, 'name'>): Buffer {
  return encodeWith((w) =>
    w.startMessage().uint32(CANCEL_REQUEST_CODE).int32(m.processId).bytes(m.secretKey).endMessage(),
  );
}

export function encodeStartupPacket(p: StartupPacket): Buffer {
  switch (p.name) {
    case 'StartupMessage':
      return encodeStartupMessage(p);
    case 'SSLRequest':
      return encodeSSLRequest();
    case 'GSSENCRequest':
      return encodeGSSENCRequest();
    case 'CancelRequest':
      return encodeCancelRequest(p);
  }
}

export function majorVersion(version: number): number {
  return version >>> 16;
}

export function minorVersion(version: number): number {
  return version & 0xffff;
}

export interface ProtocolNegotiation {
  /** The version the connection will speak: the requested one, capped at what we support. */
  readonly version: number;
  /** `_pq_.` options the client asked for that we do not support. */
  readonly unsupportedOptions: readonly string[];
  /** True when a NegotiateProtocolVersion must be sent — once, before AuthenticationOk. */
  readonly negotiate: boolean;
}

/**
 * PostgreSQL's rule (https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP):
 * a major version other than 3 is refused with 0A000; a newer 3.x minor or unknown `_pq_.*`
 * options get one NegotiateProtocolVersion naming the version we will use and the options we do
 * not understand, and the session proceeds.
 */
export function negotiateProtocol(
  requested: number,
  params: ReadonlyMap<string, string>,
  supportedOptions: ReadonlySet<string> = new Set(),
  latest: number = LATEST_PROTOCOL,
): Result<ProtocolNegotiation> {
  const major = majorVersion(requested);
  const minor = minorVersion(requested);
  if (major !== majorVersion(latest)) {
    return fail(
      SqlState.FEATURE_NOT_SUPPORTED,
      `unsupported frontend protocol ${major}.${minor}: server supports ${majorVersion(latest)}.0 to ${majorVersion(latest)}.${minorVersion(latest)}`,
    );
  }
  const unsupportedOptions = [...params.keys()].filter(
    (k) => k.startsWith('_pq_.') && !supportedOptions.has(k),
  );
  const version = minor > minorVersion(latest) ? latest : protocolVersion(major, minor);
  return ok({
    version,
    unsupportedOptions,
    negotiate: version !== requested || unsupportedOptions.length > 0,
  });
}

export interface StartupIdentity {
  readonly user: string;
  /** `database`, defaulting to the user name as in PostgreSQL. */
  readonly database: string;
}

/** Extracts user and database; a missing or empty `user` is 28000, as PostgreSQL reports it. */
export function startupIdentity(params: ReadonlyMap<string, string>): Result<StartupIdentity> {
  const user = params.get('user');
  if (user === undefined || user === '') {
    return fail(
      SqlState.INVALID_AUTHORIZATION_SPECIFICATION,
      'no PostgreSQL user name specified in startup packet',
    );
  }
  const database = params.get('database');
  return ok({ user, database: database === undefined || database === '' ? user : database });
}
