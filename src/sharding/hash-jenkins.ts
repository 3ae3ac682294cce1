/**
 * Bob Jenkins' lookup3 hash as PostgreSQL seeds it for hash partitioning: the 64-bit
 * `hash_bytes_extended` and `hash_bytes_uint32_extended` of src/common/hashfn.c (PostgreSQL 11+,
 * unchanged through 18), always with `HASH_PARTITION_SEED` (src/include/catalog/partition.h).
 *
 * Written from the algorithm, in 32-bit integer arithmetic (`| 0`, `>>> 0`): no BigInt on the
 * hot path. The result is returned in `hashOut` (high and low 32 bits, unsigned) so a call
 * allocates nothing.
 *
 * Byte order: PostgreSQL's word-at-a-time reads make the hash depend on the server's byte order;
 * this is the little-endian variant (x86-64, arm64, ppc64le — every platform PostgreSQL is
 * commonly run on). A big-endian server would place rows differently.
 */

/** PostgreSQL's HASH_PARTITION_SEED, 0x7A5B22367996DCFD, as its two 32-bit halves. */
export const SEED_HI = 0x7a5b2236;
export const SEED_LO = 0x7996dcfd;

/** The 64-bit result of the last hash call: `hi * 2^32 + lo`, both unsigned 32-bit. */
export const hashOut = { hi: 0, lo: 0 };

/** lookup3's starting value for a key of `len` bytes: 0x9e3779b9 + len + 3923095. */
function initial(len: number): number {
  return (0x9e3779b9 + len + 3923095) | 0;
}

// The state after the seed has been mixed into a 4-byte key's start (hash_bytes_uint32_extended
// mixes the seed before it adds the key): fixed, so computed once.
let U_A = 0;
let U_B = 0;
let U_C = 0;
{
  let a = (initial(4) + SEED_HI) | 0;
  let b = (initial(4) + SEED_LO) | 0;
  let c = initial(4);
  // prettier-ignore
  {
    a = (a - c) | 0; a ^= (c << 4) | (c >>> 28); c = (c + b) | 0;
    b = (b - a) | 0; b ^= (a << 6) | (a >>> 26); a = (a + c) | 0;
    c = (c - b) | 0; c ^= (b << 8) | (b >>> 24); b = (b + a) | 0;
    a = (a - c) | 0; a ^= (c << 16) | (c >>> 16); c = (c + b) | 0;
    b = (b - a) | 0; b ^= (a << 19) | (a >>> 13); a = (a + c) | 0;
    c = (c - b) | 0; c ^= (b << 4) | (b >>> 28); b = (b + a) | 0;
  }
  U_A = a;
  U_B = b;
  U_C = c;
}

/** hash_bytes_uint32_extended(k, HASH_PARTITION_SEED) into hashOut. `k` is taken modulo 2^32. */
export function hashUint32(k: number): void {
  let a = (U_A + k) | 0;
  let b = U_B;
  let c = U_C;
  // prettier-ignore
  {
    c ^= b; c = (c - ((b << 14) | (b >>> 18))) | 0;
    a ^= c; a = (a - ((c << 11) | (c >>> 21))) | 0;
    b ^= a; b = (b - ((a << 25) | (a >>> 7))) | 0;
    c ^= b; c = (c - ((b << 16) | (b >>> 16))) | 0;
    a ^= c; a = (a - ((c << 4) | (c >>> 28))) | 0;
    b ^= a; b = (b - ((a << 14) | (a >>> 18))) | 0;
    c ^= b; c = (c - ((b << 24) | (b >>> 8))) | 0;
  }
  hashOut.hi = b >>> 0;
  hashOut.lo = c >>> 0;
}

/** Up to four bytes at `off`, little-endian (the tail of a key). */
function tailWord(k: Uint8Array, off: number, n: number): number {
  let w = 0;
  for (let i = n - 1; i >= 0; i--) w = (w << 8) | (k[off + i] ?? 0);
  return w;
}

/** hash_bytes_extended(k[off..off+len), len, HASH_PARTITION_SEED) into hashOut. */
export function hashBytes(k: Uint8Array, off: number, len: number): void {
  // The seed is treated as a first 12-byte block (seed high, seed low, zero), then mixed;
  // every full 12-byte block of the key is added and mixed the same way.
  let a = (initial(len) + SEED_HI) | 0;
  let b = (initial(len) + SEED_LO) | 0;
  let c = initial(len);
  let rest = len;
  for (;;) {
    // prettier-ignore
    {
      a = (a - c) | 0; a ^= (c << 4) | (c >>> 28); c = (c + b) | 0;
      b = (b - a) | 0; b ^= (a << 6) | (a >>> 26); a = (a + c) | 0;
      c = (c - b) | 0; c ^= (b << 8) | (b >>> 24); b = (b + a) | 0;
      a = (a - c) | 0; a ^= (c << 16) | (c >>> 16); c = (c + b) | 0;
      b = (b - a) | 0; b ^= (a << 19) | (a >>> 13); a = (a + c) | 0;
      c = (c - b) | 0; c ^= (b << 4) | (b >>> 28); b = (b + a) | 0;
    }
    if (rest < 12) break;
    a = (a + (k[off]! | (k[off + 1]! << 8) | (k[off + 2]! << 16) | (k[off + 3]! << 24) | 0)) | 0;
    b = (b + (k[off + 4]! | (k[off + 5]! << 8) | (k[off + 6]! << 16) | (k[off + 7]! << 24) | 0)) | 0;
    c = (c + (k[off + 8]! | (k[off + 9]! << 8) | (k[off + 10]! << 16) | (k[off + 11]! << 24) | 0)) | 0;
    off += 12;
    rest -= 12;
  }
  // The last 0..11 bytes: a gets bytes 0-3, b bytes 4-7, c bytes 8-10 shifted up by one byte
  // (lookup3 keeps c's lowest byte for the length, though PostgreSQL never puts it there).
  if (rest > 0) a = (a + tailWord(k, off, rest < 4 ? rest : 4)) | 0;
  if (rest > 4) b = (b + tailWord(k, off + 4, rest < 8 ? rest - 4 : 4)) | 0;
  if (rest > 8) c = (c + (tailWord(k, off + 8, rest - 8) << 8)) | 0;
  // prettier-ignore
  {
    c ^= b; c = (c - ((b << 14) | (b >>> 18))) | 0;
    a ^= c; a = (a - ((c << 11) | (c >>> 21))) | 0;
    b ^= a; b = (b - ((a << 25) | (a >>> 7))) | 0;
    c ^= b; c = (c - ((b << 16) | (b >>> 16))) | 0;
    a ^= c; a = (a - ((c << 4) | (c >>> 28))) | 0;
    b ^= a; b = (b - ((a << 14) | (a >>> 18))) | 0;
    c ^= b; c = (c - ((b << 24) | (b >>> 8))) | 0;
  }
  hashOut.hi = b >>> 0;
  hashOut.lo = c >>> 0;
}
