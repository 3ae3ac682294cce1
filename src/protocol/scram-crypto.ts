/**
 * The cryptographic building blocks of SCRAM-SHA-256 (RFC 5802 §3, RFC 7677): H = SHA-256,
 * HMAC, Hi = PBKDF2-HMAC-SHA-256, the key derivations (ClientKey, StoredKey, ServerKey) and
 * strict base64. PBKDF2 is only offered asynchronously: thousands of HMAC rounds would block the
 * event loop, and crypto.pbkdf2 runs them on libuv's thread pool instead.
 * https://www.rfc-editor.org/rfc/rfc5802#section-3
 */

import { createHash, createHmac, pbkdf2, timingSafeEqual } from 'node:crypto';

export const SCRAM_KEY_LENGTH = 32;

export function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

export function hmacSha256(key: Buffer, data: Buffer | string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

export function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] ?? 0) ^ (b[i] ?? 0);
  return out;
}

/** Constant-time equality; unequal lengths are simply unequal (lengths are not secret here). */
export function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Hi(password, salt, i) = PBKDF2-HMAC-SHA-256 with a 32-byte output, on the thread pool. */
export function saltedPassword(password: string, salt: Buffer, iterations: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    pbkdf2(Buffer.from(password, 'utf8'), salt, iterations, SCRAM_KEY_LENGTH, 'sha256', (err, key) => {
      if (err) reject(err);
      else resolve(key);
    });
  });
}

export interface ScramKeys {
  readonly clientKey: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

export function deriveKeys(salted: Buffer): ScramKeys {
  const clientKey = hmacSha256(salted, 'Client Key');
  return { clientKey, storedKey: sha256(clientKey), serverKey: hmacSha256(salted, 'Server Key') };
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decodes canonical base64 only. Node's decoder silently skips invalid characters and accepts
 * missing padding; for secrets and proofs that leniency would let distinct strings mean the same
 * bytes, so anything not round-tripping exactly is refused.
 */
export function decodeBase64Strict(s: string): Buffer | undefined {
  if (!BASE64.test(s)) return undefined;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : undefined;
}
