/**
 * Codecs for the typed messages a client sends after startup: the simple query (Query), the
 * extended query protocol (Parse, Bind, Describe, Execute, Close, Sync, Flush), Terminate, and
 * COPY-from-client. Layouts: https://www.postgresql.org/docs/current/protocol-message-formats.html.
 * The proxy decodes Query/Parse/Bind for routing and forwards the original bytes; decoded Buffers
 * (Bind parameter values) are views into the frame, so nothing is copied on the hot path.
 * Strings are in the client's encoding: they are decoded losslessly (UTF-8 when valid, else one
 * character per byte, see sql-text.ts), so the router sees the SQL's structure exactly as the
 * server will, and whatever is re-encoded (rewrites) gives the client's bytes back. Invalid UTF-8
 * from a UTF8 client is the server's to reject (ERROR 22021), as with no proxy in between.
 * The 'p' message (password / SASL) depends on the authentication state and is decoded by the
 * functions in auth-messages.ts; here it is returned as an opaque AuthResponse.
 */

import type { Result } from './result.js';
import { Reader } from './reader.js';
import { decodeText } from './sql-text.js';
import { finish, malformed } from './decode-helpers.js';
import type { Writer } from './writer.js';
import { encodeWith } from './writer.js';
import { FrontendType } from './message-types.js';
import type { CopyData, CopyDone, CopyFail } from './copy-messages.js';
import {
  decodeCopyData,
  decodeCopyDone,
  decodeCopyFail,
  writeCopyData,
  writeCopyDone,
  writeCopyFail,
} from './copy-messages.js';

export interface Query {
  readonly name: 'Query';
  readonly query: string;
}

export interface Parse {
  readonly name: 'Parse';
  /** '' is the unnamed statement. */
  readonly statement: string;
  readonly query: string;
  /** Parameter type OIDs (0 = unspecified), unsigned. */
  readonly paramTypes: readonly number[];
}

export interface Bind {
  readonly name: 'Bind';
  readonly portal: string;
  readonly statement: string;
  /** 0 entries: all text; 1: applies to all; else one per parameter. See bindParamFormat. */
  readonly paramFormats: readonly number[];
  /** Values as views into the frame; null is SQL NULL (length -1). */
  readonly params: readonly (Buffer | null)[];
  readonly resultFormats: readonly number[];
}

export type DescribeTarget = 'statement' | 'portal';

export interface Describe {
  readonly name: 'Describe';
  readonly target: DescribeTarget;
  readonly targetName: string;
}

export interface Close {
  readonly name: 'Close';
  readonly target: DescribeTarget;
  readonly targetName: string;
}

export interface Execute {
  readonly name: 'Execute';
  readonly portal: string;
  /** 0 = no limit. */
  readonly maxRows: number;
}

export interface Sync {
  readonly name: 'Sync';
}

export interface Flush {
  readonly name: 'Flush';
}

export interface Terminate {
  readonly name: 'Terminate';
}

/** A 'p' message whose meaning depends on the auth exchange; see auth-messages.ts. */
export interface AuthResponse {
  readonly name: 'AuthResponse';
  readonly data: Buffer;
}

export type FrontendMessage =
  | Query
  | Parse
  | Bind
  | Describe
  | Close
  | Execute
  | Sync
  | Flush
  | Terminate
  | CopyData
  | CopyDone
  | CopyFail
  | AuthResponse;

export function decodeQuery(payload: Buffer): Result<Query> {
  const r = new Reader(payload);
  return finish(r, 'Query', { name: 'Query', query: r.cstringText() });
}

export function decodeParse(payload: Buffer): Result<Parse> {
  const r = new Reader(payload);
  const statement = r.cstringText();
  const query = r.cstringText();
  const n = r.uint16();
  const paramTypes: number[] = [];
  for (let i = 0; i < n && !r.failed; i++) paramTypes.push(r.uint32());
  return finish(r, 'Parse', { name: 'Parse', statement, query, paramTypes });
}

const UNNAMED_BIND = Object.freeze({ portal: '', statement: '' });

/**
 * A Bind's portal and statement names, read in place from `buf` (the payload is
 * `buf[start..end)`) without decoding its parameters: what a proxy needs of most Binds. Null when
 * the names are not two terminated strings. Decoded as decodeBind does (cstringText).
 */
export function bindNames(
  buf: Buffer,
  start: number,
  end: number,
): { readonly portal: string; readonly statement: string } | null {
  if (end - start >= 2 && buf[start] === 0 && buf[start + 1] === 0) return UNNAMED_BIND;
  const a = buf.indexOf(0, start);
  if (a < 0 || a >= end) return null;
  const b = buf.indexOf(0, a + 1);
  if (b < 0 || b >= end) return null;
  return { portal: nameText(buf, start, a), statement: nameText(buf, a + 1, b) };
}

/** decodeText of `buf[from..to)`, without a view or a UTF-8 check when it is ASCII (the usual name). */
function nameText(buf: Buffer, from: number, to: number): string {
  if (from === to) return '';
  for (let i = from; i < to; i++) if (buf[i]! >= 0x80) return decodeText(buf.subarray(from, to));
  return buf.toString('latin1', from, to);
}

export function decodeBind(payload: Buffer): Result<Bind> {
  const r = new Reader(payload);
  const portal = r.cstringText();
  const statement = r.cstringText();
  const nf = r.uint16();
  const paramFormats: number[] = [];
  for (let i = 0; i < nf && !r.failed; i++) paramFormats.push(r.int16());
  const np = r.uint16();
  const params: (Buffer | null)[] = [];
  for (let i = 0; i < np && !r.failed; i++) {
    const len = r.int32();
    if (len === -1) params.push(null);
    else if (len < 0) return malformed('Bind', `invalid parameter length ${len}`);
    else params.push(r.bytes(len));
  }
  const nr = r.uint16();
  const resultFormats: number[] = [];
  for (let i = 0; i < nr && !r.failed; i++) resultFormats.push(r.int16());
  if (!r.failed && paramFormats.length > 1 && paramFormats.length !== params.length) {
    return malformed(
      'Bind',
      `bind message has ${paramFormats.length} parameter formats but ${params.length} parameters`,
    );
  }
  return finish(r, 'Bind', { name: 'Bind', portal, statement, paramFormats, params, resultFormats });
}

/** The format code (0 text, 1 binary) that applies to parameter `i` of a Bind. */
export function bindParamFormat(bind: Bind, i: number): number {
  const f = bind.paramFormats;
  if (f.length === 0) return 0;
  return (f.length === 1 ? f[0] : f[i]) ?? 0;
}

function decodeTarget(payload: Buffer, what: 'Describe' | 'Close'): Result<Describe | Close> {
  const r = new Reader(payload);
  const t = r.byte();
  const targetName = r.cstringText();
  if (!r.failed && t !== 0x53 && t !== 0x50) return malformed(what, `invalid ${what} message subtype ${t}`);
  const target: DescribeTarget = t === 0x53 ? 'statement' : 'portal';
  return finish(r, what, { name: what, target, targetName });
}

export function decodeDescribe(payload: Buffer): Result<Describe> {
  return decodeTarget(payload, 'Describe') as Result<Describe>;
}

export function decodeClose(payload: Buffer): Result<Close> {
  return decodeTarget(payload, 'Close') as Result<Close>;
}

export function decodeExecute(payload: Buffer): Result<Execute> {
  const r = new Reader(payload);
  const portal = r.cstringText();
  const maxRows = r.int32();
  return finish(r, 'Execute', { name: 'Execute', portal, maxRows });
}

function decodeEmpty<N extends 'Sync' | 'Flush' | 'Terminate'>(
  payload: Buffer,
  name: N,
): Result<{ readonly name: N }> {
  return payload.length === 0 ? { ok: true, value: { name } } : malformed(name);
}

/**
 * Decodes any client message by type byte. Types this layer does not model (FunctionCall) and
 * unknown bytes are reported as 08P01 values.
 */
export function decodeFrontendMessage(type: string, payload: Buffer): Result<FrontendMessage> {
  switch (type) {
    case FrontendType.Query:
      return decodeQuery(payload);
    case FrontendType.Parse:
      return decodeParse(payload);
    case FrontendType.Bind:
      return decodeBind(payload);
    case FrontendType.Describe:
      return decodeDescribe(payload);
    case FrontendType.Close:
      return decodeClose(payload);
    case FrontendType.Execute:
      return decodeExecute(payload);
    case FrontendType.Sync:
      return decodeEmpty(payload, 'Sync');
    case FrontendType.Flush:
      return decodeEmpty(payload, 'Flush');
    case FrontendType.Terminate:
      return decodeEmpty(payload, 'Terminate');
    case FrontendType.CopyData:
      return decodeCopyData(payload);
    case FrontendType.CopyDone:
      return decodeCopyDone(payload);
    case FrontendType.CopyFail:
      return decodeCopyFail(payload);
    case FrontendType.AuthResponse:
      return { ok: true, value: { name: 'AuthResponse', data: payload } };
    default:
      return malformed('message', `unsupported frontend message type ${type.charCodeAt(0)}`);
  }
}

/** Appends one client message to `w`. */
export function writeFrontendMessage(w: Writer, m: FrontendMessage): void {
  switch (m.name) {
    case 'Query':
      w.startMessage('Q').cstring(m.query).endMessage();
      return;
    case 'Parse':
      w.startMessage('P').cstring(m.statement).cstring(m.query).uint16(m.paramTypes.length);
      for (const t of m.paramTypes) w.uint32(t);
      w.endMessage();
      return;
    case 'Bind':
      w.startMessage('B').cstring(m.portal).cstring(m.statement).uint16(m.paramFormats.length);
      for (const f of m.paramFormats) w.int16(f);
      w.uint16(m.params.length);
      for (const p of m.params) {
        if (p === null) w.int32(-1);
        else w.int32(p.length).bytes(p);
      }
      w.uint16(m.resultFormats.length);
      for (const f of m.resultFormats) w.int16(f);
      w.endMessage();
      return;
    case 'Describe':
    case 'Close':
      w.startMessage(m.name === 'Describe' ? 'D' : 'C')
        .byte(m.target === 'statement' ? 0x53 : 0x50)
        .cstring(m.targetName)
        .endMessage();
      return;
    case 'Execute':
      w.startMessage('E').cstring(m.portal).int32(m.maxRows).endMessage();
      return;
    case 'Sync':
      w.startMessage('S').endMessage();
      return;
    case 'Flush':
      w.startMessage('H').endMessage();
      return;
    case 'Terminate':
      w.startMessage('X').endMessage();
      return;
    case 'CopyData':
      writeCopyData(w, m);
      return;
    case 'CopyDone':
      writeCopyDone(w);
      return;
    case 'CopyFail':
      writeCopyFail(w, m);
      return;
    case 'AuthResponse':
      w.startMessage('p').bytes(m.data).endMessage();
      return;
  }
}

/** Encodes one client message into a fresh Buffer. */
export function encodeFrontendMessage(m: FrontendMessage): Buffer {
  return encodeWith((w) => writeFrontendMessage(w, m));
}
