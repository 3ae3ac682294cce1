/**
 * Cancel keys for clients, derived instead of stored: a client's key is HMAC-SHA-256 of its id
 * under a secret drawn once per process, made when asked (at login, and for a CancelRequest). No
 * client keeps a Buffer of its own for it (a Buffer, its ArrayBuffer and backing store cost about
 * 220 bytes per idle client); a key cannot be guessed from the ids, which are sequential.
 */
import { createHmac, randomBytes } from 'node:crypto';

const CANCEL_SECRET = randomBytes(32);

/** The 32-byte cancel key of client `id` (protocol 3.0 shows its first 4 bytes). */
export function cancelKeyFor(id: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(id >>> 0);
  return createHmac('sha256', CANCEL_SECRET).update(b).digest();
}
