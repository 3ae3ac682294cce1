/**
 * Byte-level rewrites of the few frontend messages whose statement name the proxy must change
 * (Parse, Bind, Describe, Close), and the small backend messages it synthesises. Everything else
 * of a message is copied as it came, so parameter values are never decoded or re-encoded.
 */
import { encodeBackendMessage } from '../protocol/backend-messages.js';
import type { TransactionStatus } from '../protocol/backend-messages.js';
import { encodeFrontendMessage } from '../protocol/frontend-messages.js';

function cstringEnd(buf: Buffer, from: number): number {
  const i = buf.indexOf(0, from);
  return i < 0 ? buf.length : i;
}

function frame(type: string, body: Buffer[]): Buffer {
  const len = 4 + body.reduce((n, b) => n + b.length, 0);
  const head = Buffer.allocUnsafe(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(len, 1);
  return Buffer.concat([head, ...body], len + 1);
}

const cstr = (s: string) => Buffer.from(s + '\0', 'utf8');

/** Parse with another statement name; payload = name\0 query\0 types… */
export function renameParse(payload: Buffer, name: string): Buffer {
  const end = cstringEnd(payload, 0);
  return frame('P', [cstr(name), payload.subarray(end + 1)]);
}

/** Bind with another statement name; payload = portal\0 statement\0 rest… */
export function renameBind(payload: Buffer, statement: string): Buffer {
  const pEnd = cstringEnd(payload, 0);
  const sEnd = cstringEnd(payload, pEnd + 1);
  return frame('B', [payload.subarray(0, pEnd + 1), cstr(statement), payload.subarray(sEnd + 1)]);
}

/** Describe or Close of a statement under another name. */
export function renameTarget(type: 'D' | 'C', statement: string): Buffer {
  return frame(type, [Buffer.from('S', 'latin1'), cstr(statement)]);
}

export function parseMessage(name: string, query: string, paramTypes: readonly number[]): Buffer {
  return encodeFrontendMessage({ name: 'Parse', statement: name, query, paramTypes });
}

export function queryMessage(sql: string): Buffer {
  return encodeFrontendMessage({ name: 'Query', query: sql });
}

export const PARSE_COMPLETE = encodeBackendMessage({ name: 'ParseComplete' });
export const CLOSE_COMPLETE = encodeBackendMessage({ name: 'CloseComplete' });

export function commandComplete(tag: string): Buffer {
  return encodeBackendMessage({ name: 'CommandComplete', tag });
}

export function readyForQuery(status: TransactionStatus): Buffer {
  return encodeBackendMessage({ name: 'ReadyForQuery', status });
}
