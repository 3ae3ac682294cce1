/**
 * Cancel keys for clients, derived instead of stored: a client's key is HMAC-SHA-256 of its id
 * under a secret drawn once per process, made when asked (at login, and for a CancelRequest). No
 * client keeps a Buffer of its own for it (a Buffer, its ArrayBuffer and backing store cost about
 * 220 bytes per idle client); a key cannot be guessed from the ids, which are sequential.
 *
 * The process id a client is shown (BackendKeyData) says which proxy process holds it, so that a
 * CancelRequest arriving on another process (`proxy.workers`; later another proxy, as PgBouncer
 * 1.23's peering does) can be sent where the client is: bit 31 is 0 (drivers read it as a signed
 * int32), bits 30..21 are the instance (0: a proxy of one process; 1..N: worker N), bits 20..0 the
 * client's id modulo 2^21. The instance is not secret; the key stays whole (all 4 or 32 bytes are
 * secret) and is HMAC of the client's full id, so a process id used again by a later client never
 * takes the earlier client's key with it.
 */
import { createHmac, randomBytes } from 'node:crypto';

const CANCEL_SECRET = randomBytes(32);

export const INSTANCE_BITS = 10;
const SEQ_BITS = 21;
const SEQ_MASK = 2 ** SEQ_BITS - 1;
/** Instances 0..MAX_INSTANCE fit in a process id. */
export const MAX_INSTANCE = 2 ** INSTANCE_BITS - 1;

let instance = 0;

/** This process's instance (a worker's number); set once at start, before any client. */
export function setCancelInstance(n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > MAX_INSTANCE)
    throw new RangeError(`cancel instance ${n}: expected an integer from 0 to ${MAX_INSTANCE}`);
  instance = n;
}

export function cancelInstance(): number {
  return instance;
}

/** The process id client `id` is shown: this process's instance and the id's low bits. */
export function processIdFor(id: number): number {
  return ((instance << SEQ_BITS) | (id & SEQ_MASK)) >>> 0;
}

/** The instance a process id names (another worker's: the cancel goes there). */
export function instanceOf(processId: number): number {
  return (processId >>> SEQ_BITS) & MAX_INSTANCE;
}

/** The 32-byte cancel key of client `id` (protocol 3.0 shows its first 4 bytes). */
export function cancelKeyFor(id: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeUInt32BE(Math.floor(id / 2 ** 32));
  b.writeUInt32BE(id >>> 0, 4);
  return createHmac('sha256', CANCEL_SECRET).update(b).digest();
}
