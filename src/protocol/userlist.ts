/**
 * Parser for PgBouncer's auth_file, `userlist.txt` (https://www.pgbouncer.org/config.html#authentication-file-format):
 * one `"user" "secret"` pair per line, a double quote inside a field written as `""`, blank lines
 * and comment lines (starting with `;` or `#`) ignored. The secret is classified as PostgreSQL's
 * get_password_type does: `md5` + 32 lowercase hex is an MD5 hash, `SCRAM-SHA-256$…` must parse
 * as a SCRAM secret, anything else is a plain password. Problems are reported per line and never
 * quote the secret, since these messages end up in logs (CVE-2023-22332 class). A user name is
 * only named once both fields parsed: with a quoting mistake the "user name" may hold the secret.
 */

import { isMd5Hash } from './md5.js';
import type { ScramSecret } from './scram-secret.js';
import { isScramSecret, parseScramSecret } from './scram-secret.js';

export type UserSecret =
  | { readonly kind: 'plain'; readonly password: string }
  | { readonly kind: 'md5'; readonly hash: string }
  | { readonly kind: 'scram'; readonly secret: ScramSecret };

export interface UserlistEntry {
  readonly user: string;
  readonly secret: UserSecret;
  /** 1-based line number, for diagnostics. */
  readonly line: number;
}

export interface UserlistError {
  readonly line: number;
  /** Names the problem and maybe the user; never contains the secret. */
  readonly message: string;
}

export interface Userlist {
  readonly entries: readonly UserlistEntry[];
  readonly errors: readonly UserlistError[];
}

/** Classifies a secret string; undefined when it claims to be SCRAM but does not parse. */
export function classifySecret(secret: string): UserSecret | undefined {
  if (isScramSecret(secret)) {
    const r = parseScramSecret(secret);
    return r.ok ? { kind: 'scram', secret: r.value } : undefined;
  }
  if (isMd5Hash(secret)) return { kind: 'md5', hash: secret };
  return { kind: 'plain', password: secret };
}

/** Reads a `"…"` field at `pos`; returns the value and the position after it, or undefined. */
function readQuoted(line: string, pos: number): { value: string; end: number } | undefined {
  if (line[pos] !== '"') return undefined;
  let value = '';
  let i = pos + 1;
  for (;;) {
    const q = line.indexOf('"', i);
    if (q < 0) return undefined;
    value += line.slice(i, q);
    if (line[q + 1] === '"') {
      value += '"';
      i = q + 2;
    } else {
      return { value, end: q + 1 };
    }
  }
}

function skipSpace(line: string, pos: number): number {
  while (pos < line.length && (line[pos] === ' ' || line[pos] === '\t' || line[pos] === '\r')) pos++;
  return pos;
}

export function parseUserlist(text: string): Userlist {
  const entries: UserlistEntry[] = [];
  const errors: UserlistError[] = [];
  const seen = new Map<string, number>();
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n] ?? '';
    const lineNo = n + 1;
    let pos = skipSpace(line, 0);
    if (pos === line.length || line[pos] === ';' || line[pos] === '#') continue;
    const user = readQuoted(line, pos);
    if (user === undefined) {
      errors.push({ line: lineNo, message: `line ${lineNo}: expected a double-quoted user name` });
      continue;
    }
    pos = skipSpace(line, user.end);
    if (pos === user.end && pos < line.length) {
      errors.push({ line: lineNo, message: `line ${lineNo}: expected whitespace after the user name` });
      continue;
    }
    const secret = readQuoted(line, pos);
    if (secret === undefined) {
      errors.push({
        line: lineNo,
        message: `line ${lineNo}: expected a double-quoted secret after the user name`,
      });
      continue;
    }
    pos = skipSpace(line, secret.end);
    if (pos < line.length && line[pos] !== ';' && line[pos] !== '#') {
      errors.push({
        line: lineNo,
        message: `line ${lineNo}: unexpected text after the secret`,
      });
      continue;
    }
    if (user.value === '') {
      errors.push({ line: lineNo, message: `line ${lineNo}: empty user name` });
      continue;
    }
    if (secret.value === '') {
      errors.push({ line: lineNo, message: `line ${lineNo}: empty secret for user "${user.value}"` });
      continue;
    }
    const classified = classifySecret(secret.value);
    if (classified === undefined) {
      errors.push({ line: lineNo, message: `line ${lineNo}: invalid SCRAM secret for user "${user.value}"` });
      continue;
    }
    const first = seen.get(user.value);
    if (first !== undefined) {
      errors.push({
        line: lineNo,
        message: `line ${lineNo}: duplicate user "${user.value}" (first on line ${first})`,
      });
      continue;
    }
    seen.set(user.value, lineNo);
    entries.push({ user: user.value, secret: classified, line: lineNo });
  }
  return { entries, errors };
}
