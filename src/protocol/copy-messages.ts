/**
 * Codecs for the COPY sub-protocol (https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-COPY):
 * CopyData and CopyDone travel in both directions with the same layout, CopyFail only from the
 * client, and CopyIn/CopyOut/CopyBothResponse from the server announce the sub-state. The proxy
 * forwards CopyData untouched; it decodes these only to track that a session is inside COPY.
 */

import type { Result } from './result.js';
import { Reader } from './reader.js';
import { finish, malformed } from './decode-helpers.js';
import type { Writer } from './writer.js';

export interface CopyData {
  readonly name: 'CopyData';
  /** A view into the frame. */
  readonly data: Buffer;
}

export interface CopyDone {
  readonly name: 'CopyDone';
}

export interface CopyFail {
  readonly name: 'CopyFail';
  readonly message: string;
}

export interface CopyResponse {
  readonly name: 'CopyInResponse' | 'CopyOutResponse' | 'CopyBothResponse';
  /** 0 text, 1 binary: the overall format. */
  readonly format: number;
  /** One per column (all 0 when `format` is 0). */
  readonly columnFormats: readonly number[];
}

export function decodeCopyData(payload: Buffer): Result<CopyData> {
  return { ok: true, value: { name: 'CopyData', data: payload } };
}

export function decodeCopyDone(payload: Buffer): Result<CopyDone> {
  return payload.length === 0 ? { ok: true, value: { name: 'CopyDone' } } : malformed('CopyDone');
}

export function decodeCopyFail(payload: Buffer): Result<CopyFail> {
  const r = new Reader(payload);
  const message = r.cstringLossy();
  return finish(r, 'CopyFail', { name: 'CopyFail', message });
}

export function decodeCopyResponse(name: CopyResponse['name'], payload: Buffer): Result<CopyResponse> {
  const r = new Reader(payload);
  const format = r.byte();
  const n = r.uint16();
  const columnFormats: number[] = [];
  for (let i = 0; i < n && !r.failed; i++) columnFormats.push(r.int16());
  return finish(r, name, { name, format, columnFormats });
}

export function writeCopyData(w: Writer, m: Omit<CopyData, 'name'>): void {
  w.startMessage('d').bytes(m.data).endMessage();
}

export function writeCopyDone(w: Writer): void {
  w.startMessage('c').endMessage();
}

export function writeCopyFail(w: Writer, m: Omit<CopyFail, 'name'>): void {
  w.startMessage('f').cstring(m.message).endMessage();
}

const copyResponseType = { CopyInResponse: 'G', CopyOutResponse: 'H', CopyBothResponse: 'W' } as const;

export function writeCopyResponse(w: Writer, m: CopyResponse): void {
  w.startMessage(copyResponseType[m.name]).byte(m.format).uint16(m.columnFormats.length);
  for (const f of m.columnFormats) w.int16(f);
  w.endMessage();
}
