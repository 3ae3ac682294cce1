/**
 * Codecs for authentication: the server's Authentication* requests ('R' with a subtype code) and
 * the client's answers, which all share type 'p' and can only be told apart by the state of the
 * exchange — PasswordMessage after Cleartext/MD5 requests, SASLInitialResponse after
 * AuthenticationSASL, SASLResponse after SASLContinue
 * (https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP and
 * https://www.postgresql.org/docs/current/sasl-authentication.html). GSSAPI/SSPI requests are
 * not modelled: the proxy neither offers nor answers them, so they decode as a failure value.
 */

import type { Result } from './result.js';
import { Reader } from './reader.js';
import { finish, malformed } from './decode-helpers.js';
import type { Writer } from './writer.js';
import { encodeWith } from './writer.js';

export const AuthCode = {
  Ok: 0,
  CleartextPassword: 3,
  MD5Password: 5,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;

export type Authentication =
  | { readonly name: 'AuthenticationOk' }
  | { readonly name: 'AuthenticationCleartextPassword' }
  | { readonly name: 'AuthenticationMD5Password'; readonly salt: Buffer }
  | { readonly name: 'AuthenticationSASL'; readonly mechanisms: readonly string[] }
  | { readonly name: 'AuthenticationSASLContinue'; readonly data: Buffer }
  | { readonly name: 'AuthenticationSASLFinal'; readonly data: Buffer };

export function decodeAuthentication(payload: Buffer): Result<Authentication> {
  const r = new Reader(payload);
  const code = r.int32();
  if (r.failed) return malformed('Authentication');
  switch (code) {
    case AuthCode.Ok:
      return finish(r, 'AuthenticationOk', { name: 'AuthenticationOk' });
    case AuthCode.CleartextPassword:
      return finish(r, 'AuthenticationCleartextPassword', { name: 'AuthenticationCleartextPassword' });
    case AuthCode.MD5Password:
      return finish(r, 'AuthenticationMD5Password', { name: 'AuthenticationMD5Password', salt: r.bytes(4) });
    case AuthCode.SASL: {
      const mechanisms: string[] = [];
      for (;;) {
        const m = r.cstring();
        if (r.failed || m === '') break;
        mechanisms.push(m);
      }
      return finish(r, 'AuthenticationSASL', { name: 'AuthenticationSASL', mechanisms });
    }
    case AuthCode.SASLContinue:
      return { ok: true, value: { name: 'AuthenticationSASLContinue', data: r.rest() } };
    case AuthCode.SASLFinal:
      return { ok: true, value: { name: 'AuthenticationSASLFinal', data: r.rest() } };
    default:
      return malformed('Authentication', `unsupported authentication request ${code}`);
  }
}

export function writeAuthentication(w: Writer, m: Authentication): void {
  w.startMessage('R');
  switch (m.name) {
    case 'AuthenticationOk':
      w.int32(AuthCode.Ok);
      break;
    case 'AuthenticationCleartextPassword':
      w.int32(AuthCode.CleartextPassword);
      break;
    case 'AuthenticationMD5Password':
      w.int32(AuthCode.MD5Password).bytes(m.salt);
      break;
    case 'AuthenticationSASL':
      w.int32(AuthCode.SASL);
      for (const mech of m.mechanisms) w.cstring(mech);
      w.byte(0);
      break;
    case 'AuthenticationSASLContinue':
      w.int32(AuthCode.SASLContinue).bytes(m.data);
      break;
    case 'AuthenticationSASLFinal':
      w.int32(AuthCode.SASLFinal).bytes(m.data);
      break;
  }
  w.endMessage();
}

export function encodeAuthentication(m: Authentication): Buffer {
  return encodeWith((w) => writeAuthentication(w, m));
}

export interface PasswordMessage {
  readonly name: 'PasswordMessage';
  /** Cleartext password, or 'md5' + 32 hex digits for MD5. */
  readonly password: string;
}

export interface SASLInitialResponse {
  readonly name: 'SASLInitialResponse';
  readonly mechanism: string;
  /** null when the client sent length -1 (no initial response). A view into the frame. */
  readonly data: Buffer | null;
}

export interface SASLResponse {
  readonly name: 'SASLResponse';
  readonly data: Buffer;
}

export function decodePasswordMessage(payload: Buffer): Result<PasswordMessage> {
  const r = new Reader(payload);
  const password = r.cstring();
  return finish(r, 'PasswordMessage', { name: 'PasswordMessage', password });
}

export function decodeSASLInitialResponse(payload: Buffer): Result<SASLInitialResponse> {
  const r = new Reader(payload);
  const mechanism = r.cstring();
  const len = r.int32();
  if (!r.failed && len < -1) return malformed('SASLInitialResponse', `invalid length ${len}`);
  const data = len === -1 ? null : r.bytes(len);
  return finish(r, 'SASLInitialResponse', { name: 'SASLInitialResponse', mechanism, data });
}

export function decodeSASLResponse(payload: Buffer): Result<SASLResponse> {
  return { ok: true, value: { name: 'SASLResponse', data: payload } };
}

export type AuthResponseMessage = PasswordMessage | SASLInitialResponse | SASLResponse;

export function writeAuthResponse(w: Writer, m: AuthResponseMessage): void {
  w.startMessage('p');
  switch (m.name) {
    case 'PasswordMessage':
      w.cstring(m.password);
      break;
    case 'SASLInitialResponse':
      w.cstring(m.mechanism);
      if (m.data === null) w.int32(-1);
      else w.int32(m.data.length).bytes(m.data);
      break;
    case 'SASLResponse':
      w.bytes(m.data);
      break;
  }
  w.endMessage();
}

export function encodeAuthResponse(m: AuthResponseMessage): Buffer {
  return encodeWith((w) => writeAuthResponse(w, m));
}
