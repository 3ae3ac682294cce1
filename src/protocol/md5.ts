/**
 * PostgreSQL's legacy MD5 password authentication
 * (https://www.postgresql.org/docs/current/auth-password.html, src/common/md5_common.c): the stored
 * form is 'md5' + md5(password || user) and the client answers an AuthenticationMD5Password salt
 * with 'md5' + md5(hex(md5(password || user)) || salt). Comparisons are constant-time. MD5 is
 * deprecated in PostgreSQL 18; it is here because PgBouncer userlists and older servers use it.
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export function md5Hex(data: string | Buffer): string {
  return createHash('md5').update(data).digest('hex');
}

/** PostgreSQL's rule for "is this an MD5 hash": 'md5' + 32 lowercase hex digits. */
export function isMd5Hash(s: string): boolean {
  return /^md5[0-9a-f]{32}$/.test(s);
}

/** The stored form ('md5' + md5(password || user)), as in pg_authid or userlist.txt. */
export function md5StoredHash(user: string, password: string): string {
  return 'md5' + md5Hex(password + user);
}

/** What a client sends in PasswordMessage for a given salt, computed from a stored hash. */
export function md5ResponseFromHash(storedHash: string, salt: Buffer): string {
  return 'md5' + md5Hex(Buffer.concat([Buffer.from(storedHash.slice(3), 'utf8'), salt]));
}

/** What a client with the password sends (also what the proxy sends to an MD5-only server). */
export function md5PasswordResponse(user: string, password: string, salt: Buffer): string {
  return md5ResponseFromHash(md5StoredHash(user, password), salt);
}

/** A fresh 4-byte salt for AuthenticationMD5Password. */
export function md5Salt(): Buffer {
  return randomBytes(4);
}

export type Md5Credential =
  { readonly kind: 'md5'; readonly hash: string } | { readonly kind: 'plain'; readonly password: string };

/** Checks a client's MD5 response in constant time against a stored hash or plain password. */
export function verifyMd5Response(
  response: string,
  credential: Md5Credential,
  user: string,
  salt: Buffer,
): boolean {
  const stored = credential.kind === 'md5' ? credential.hash : md5StoredHash(user, credential.password);
  const expected = Buffer.from(md5ResponseFromHash(stored, salt), 'utf8');
  const got = Buffer.from(response, 'utf8');
  return got.length === expected.length && timingSafeEqual(got, expected);
}
