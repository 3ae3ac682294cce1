/**
 * PostgreSQL's stored SCRAM verifier, `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`
 * (as in pg_authid.rolpassword; https://www.postgresql.org/docs/current/catalog-pg-authid.html),
 * parsed strictly and built from a password. A secret lets a server verify a client, but it holds
 * StoredKey = H(ClientKey), not ClientKey, so it cannot be used to log in anywhere (see
 * scram-client.ts). Error values never contain the secret text.
 */

import { randomBytes } from 'node:crypto';
import type { Result } from './result.js';
import { fail, ok } from './result.js';
import { SqlState } from './sqlstate.js';
import { SCRAM_KEY_LENGTH, decodeBase64Strict, deriveKeys, saltedPassword } from './scram-crypto.js';
import { saslprep } from './saslprep.js';

export interface ScramSecret {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

export const SCRAM_PREFIX = 'SCRAM-SHA-256$';
/** PostgreSQL's defaults: scram_iterations = 4096, SCRAM_DEFAULT_SALT_LEN = 16. */
export const DEFAULT_SCRAM_ITERATIONS = 4096;
export const DEFAULT_SALT_LENGTH = 16;
const MAX_ITERATIONS = 0x7fffffff;

export function isScramSecret(s: string): boolean {
  return s.startsWith(SCRAM_PREFIX);
}

function invalid(reason: string): Result<never> {
  return fail(SqlState.INVALID_AUTHORIZATION_SPECIFICATION, 'invalid SCRAM secret', reason);
}

export function parseScramSecret(text: string): Result<ScramSecret> {
  if (!text.startsWith(SCRAM_PREFIX)) return invalid('missing SCRAM-SHA-256$ prefix');
  const parts = text.slice(SCRAM_PREFIX.length).split('$');
  if (parts.length !== 2) return invalid('expected <iterations>:<salt>$<StoredKey>:<ServerKey>');
  const [params = '', keys = ''] = parts;
  const p = params.split(':');
  const k = keys.split(':');
  if (p.length !== 2 || k.length !== 2)
    return invalid('expected <iterations>:<salt>$<StoredKey>:<ServerKey>');
  const [iterText = '', saltText = ''] = p;
  if (!/^[1-9][0-9]{0,9}$/.test(iterText) || Number(iterText) > MAX_ITERATIONS) {
    return invalid('iteration count is not a positive 32-bit integer');
  }
  const salt = decodeBase64Strict(saltText);
  if (salt === undefined || salt.length === 0) return invalid('salt is not valid base64');
  const storedKey = decodeBase64Strict(k[0] ?? '');
  const serverKey = decodeBase64Strict(k[1] ?? '');
  if (storedKey?.length !== SCRAM_KEY_LENGTH || serverKey?.length !== SCRAM_KEY_LENGTH) {
    return invalid('StoredKey and ServerKey must be base64 of 32 bytes');
  }
  return ok({ iterations: Number(iterText), salt, storedKey, serverKey });
}

export function formatScramSecret(s: ScramSecret): string {
  return `${SCRAM_PREFIX}${s.iterations}:${s.salt.toString('base64')}$${s.storedKey.toString('base64')}:${s.serverKey.toString('base64')}`;
}

export interface BuildSecretOptions {
  readonly iterations?: number;
  /** Fixed salt, for tests and for reproducing a known secret; random 16 bytes otherwise. */
  readonly salt?: Buffer;
}

/** Derives a secret from a password (SASLprep'd as PostgreSQL does), hashing off the event loop. */
export async function buildScramSecret(
  password: string,
  options: BuildSecretOptions = {},
): Promise<ScramSecret> {
  const iterations = options.iterations ?? DEFAULT_SCRAM_ITERATIONS;
  const salt = options.salt ?? randomBytes(DEFAULT_SALT_LENGTH);
  const { storedKey, serverKey } = deriveKeys(await saltedPassword(saslprep(password), salt, iterations));
  return { iterations, salt, storedKey, serverKey };
}
