/**
 * Byte-level rewrites of the few frontend messages whose statement name the proxy must change
 * (Parse, Bind, Describe, Close), and the small backend messages it synthesises. Everything else
 * of a message is copied as it came, so parameter values are never decoded or re-encoded.
 */
import { encodeBackendMessage } from '../protocol/backend-messages.js';
import type { TransactionStatus } from '../protocol/backend-messages.js';
import { encodeFrontendMessage } from '../protocol/frontend-messages.js';
import { encodeText } from '../protocol/sql-text.js';

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

/**
 * Bind with another statement name; the payload (portal\0 statement\0 rest…) is
 * `buf[start..end)`. One allocation: this runs for every Bind of a named statement
 * (`pgbench -M prepared`, every driver's cached statements).
 */
export function renameBind(buf: Buffer, statement: string, start = 0, end = buf.length): Buffer {
  let pEnd = buf.indexOf(0, start);
  if (pEnd < 0 || pEnd >= end) pEnd = end;
  let sEnd = pEnd < end ? buf.indexOf(0, pEnd + 1) : end;
  if (sEnd < 0 || sEnd >= end) sEnd = end;
  const portal = Math.min(pEnd + 1, end) - start;
  const nameLength = Buffer.byteLength(statement);
  const rest = Math.max(0, end - (sEnd + 1));
  const out = Buffer.allocUnsafe(5 + portal + nameLength + 1 + rest);
  out[0] = 0x42; // 'B'
  out.writeInt32BE(out.length - 1, 1);
  let at = 5 + buf.copy(out, 5, start, start + portal);
  at += out.write(statement, at, 'utf8');
  out[at++] = 0;
  if (rest > 0) buf.copy(out, at, sEnd + 1, end);
  return out;
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

/**
 * An ErrorResponse (or NoticeResponse) as the client would have had it from its own text: each
 * server-side statement name in the message, detail, hint and context replaced by the client's
 * name (`names`: server name → client name), and the error position mapped by `position`. Fields
 * are rewritten as bytes, so text in any client encoding passes unchanged; null when nothing
 * needed a change.
 */
export function rewriteErrorFields(
  type: 'E' | 'N',
  payload: Buffer,
  names: ReadonlyMap<string, string>,
  position: ((p: number) => number) | null,
): Buffer | null {
  const fields: Buffer[] = [];
  let changed = false;
  let i = 0;
  while (i < payload.length && payload[i] !== 0) {
    const code = String.fromCharCode(payload[i]!);
    const end = cstringEnd(payload, i + 1);
    let value = payload.subarray(i + 1, end);
    if (code === 'P' && position) {
      const p = Number(value.toString('latin1'));
      const mapped = Number.isInteger(p) && p > 0 ? position(p) : p;
      if (mapped !== p) {
        value = Buffer.from(String(mapped), 'latin1');
        changed = true;
      }
    } else if ((code === 'M' || code === 'D' || code === 'H' || code === 'W') && names.size > 0) {
      const renamed = replaceNames(value, names);
      if (renamed !== value) {
        value = renamed;
        changed = true;
      }
    }
    fields.push(Buffer.from([payload[i]!]), value, ZERO);
    i = end + 1;
  }
  if (!changed) return null;
  fields.push(ZERO);
  return frame(type, fields);
}

const ZERO = Buffer.from([0]);
const SERVER_NAME = Buffer.from('pgscale_s_', 'latin1');

function replaceNames(value: Buffer, names: ReadonlyMap<string, string>): Buffer {
  if (value.indexOf(SERVER_NAME) < 0) return value;
  let text = value.toString('latin1');
  for (const [server, client] of names) {
    if (text.includes(server)) text = text.split(server).join(encodeText(client).toString('latin1'));
  }
  return Buffer.from(text, 'latin1');
}
