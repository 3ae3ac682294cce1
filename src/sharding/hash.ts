/**
 * PostgreSQL's hash-partition routing, computed in the proxy: for a value of a distribution
 * column, the remainder that `PARTITION BY HASH (col)` with modulus M puts the row in, bit for
 * bit as the server does, so the proxy sends a statement to the group that owns that partition.
 *
 * PostgreSQL (src/backend/partitioning/partbounds.c, compute_partition_hash_value and
 * get_partition_for_tuple) hashes each key column with its type's extended hash function and
 * `HASH_PARTITION_SEED`, folds the results into a 64-bit row hash with hash_combine64 starting
 * from 0, and takes the row hash modulo the modulus (unsigned 64-bit). With one column the fold
 * is `hash + 0x49a0f4dd15e5a8e3 (mod 2^64)`. The per-type functions (utils/adt/hashfunc.c,
 * varchar.c, uuid.c, numeric.c):
 *   int2, int4   the value, sign-extended to 32 bits, through hash_bytes_uint32_extended;
 *   int8         low half XOR high half (XOR its complement when negative), the same way — so an
 *                int8 that fits in int4 hashes like that int4;
 *   text, varchar  the bytes (deterministic collations only: "C", "POSIX", the default and any
 *                libc/ICU collation with deterministic = true);
 *   bpchar       the bytes without trailing spaces ('a' and 'a  ' land together);
 *   uuid         the 16 bytes;
 *   numeric      see hash-numeric.ts.
 * The 64-bit arithmetic is done in two 32-bit halves (bench/hash.ts measures that against
 * BigInt). Pure code: no I/O. NULL never reaches here: the caller refuses it (23502).
 */
import type { ColumnValue, DistType } from './types.js';
import { hashBytes, hashOut, hashUint32, SEED_HI, SEED_LO } from './hash-jenkins.js';
import {
  HashInputError,
  badBinary,
  checkTextBytes,
  checkTextString,
  fitBytes,
  int32FromText,
  int8FromText,
  int8Out,
  intFromBinary,
  uuidFromText,
} from './hash-input.js';
import { applyNumericTypmod, numericFromBinary, numericFromText } from './hash-numeric.js';
import type { NumericValue } from './hash-numeric.js';

export { HashInputError } from './hash-input.js';

/** hash_combine64's constant: combining a hash into 0 adds it. */
const COMBINE_HI = 0x49a0f4dd;
const COMBINE_LO = 0x15e5a8e3;

/** PostgreSQL's largest modulus (an int4 in the partition bound). */
const MAX_MODULUS = 2147483647;

/** Reused for text, uuid and numeric digits so a call allocates nothing in the common case. */
let scratch = Buffer.allocUnsafe(256);
/** The scratch buffer grows to this size at most; a larger key gets a buffer of its own. */
const SCRATCH_MAX = 64 * 1024;

function ensureScratch(n: number): Buffer {
  if (scratch.length >= n) return scratch;
  if (n > SCRATCH_MAX) return Buffer.allocUnsafe(n);
  scratch = Buffer.allocUnsafe(Math.min(SCRATCH_MAX, Math.max(n, 2 * scratch.length)));
  return scratch;
}

/**
 * The string's UTF-8 bytes into `buf` (room for 3 bytes a UTF-16 unit), returning their length. ASCII (the usual key) is
 * copied in JS, which is cheaper for short keys than a call into the encoder.
 */
function encodeText(text: string, buf: Buffer): number {
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0 || c >= 0x80) {
      checkTextString(text);
      return buf.write(text, 0, 'utf8');
    }
    buf[i] = c;
  }
  return n;
}

/** `typmod` of varchar(n)/char(n) is n + 4; below 4 there is no limit. */
function hashTextLike(value: ColumnValue, type: 'text' | 'varchar' | 'bpchar', typmod: number): void {
  let buf: Buffer;
  let len: number;
  if (value.format === 'text') {
    buf = ensureScratch(3 * value.text.length);
    len = encodeText(value.text, buf);
  } else {
    buf = value.bytes;
    checkTextBytes(buf);
    len = buf.length;
  }
  if (typmod >= 4 && type !== 'text') {
    len = fitBytes(buf, len, typmod - 4, type === 'varchar' ? 'character varying' : 'character');
  }
  // bcTruelen: only ASCII spaces count as padding.
  if (type === 'bpchar') while (len > 0 && buf[len - 1] === 32) len--;
  hashBytes(buf, 0, len);
}

function hashInt8Halves(hi: number, lo: number): void {
  hashUint32(lo ^ (hi >= 0 ? hi : ~hi));
}

function hashNumeric(n: NumericValue): void {
  if (n.kind === 'special') {
    hashOut.hi = SEED_HI;
    hashOut.lo = SEED_LO;
    return;
  }
  if (n.kind === 'zero') {
    // seed − 1; the seed's low half is not 0, so there is no borrow.
    hashOut.hi = SEED_HI;
    hashOut.lo = SEED_LO - 1;
    return;
  }
  // The digits as the server holds them in memory: int16, little-endian.
  const buf = ensureScratch(2 * n.digits.length);
  for (let i = 0; i < n.digits.length; i++) buf.writeUInt16LE(n.digits[i]!, 2 * i);
  hashBytes(buf, 0, 2 * n.digits.length);
  // The weight is XORed in as a 64-bit value (an int, sign-extended).
  hashOut.lo = (hashOut.lo ^ n.weight) >>> 0;
  if (n.weight < 0) hashOut.hi = ~hashOut.hi >>> 0;
}

/** The type's extended hash of the value, with HASH_PARTITION_SEED, into hashOut. */
function hashColumn(type: DistType, value: ColumnValue, typmod: number): void {
  switch (type) {
    case 'int2':
    case 'int4':
      if (value.format === 'text') hashUint32(int32FromText(value.text, type));
      else {
        intFromBinary(value.bytes, type);
        hashUint32(int8Out.lo);
      }
      return;
    case 'int8':
      if (value.format === 'text') int8FromText(value.text);
      else intFromBinary(value.bytes, 'int8');
      hashInt8Halves(int8Out.hi, int8Out.lo);
      return;
    case 'text':
    case 'varchar':
    case 'bpchar':
      hashTextLike(value, type, typmod);
      return;
    case 'uuid':
      if (value.format === 'text') {
        const buf = ensureScratch(16);
        uuidFromText(value.text, buf);
        hashBytes(buf, 0, 16);
      } else {
        if (value.bytes.length !== 16)
          throw badBinary('uuid', `expected 16 bytes, got ${value.bytes.length}`);
        hashBytes(value.bytes, 0, 16);
      }
      return;
    case 'numeric':
      hashNumeric(
        applyNumericTypmod(
          value.format === 'text' ? numericFromText(value.text) : numericFromBinary(value.bytes),
          typmod,
        ),
      );
      return;
    default: {
      const never: never = type;
      throw new HashInputError('0A000', `cannot hash values of type ${String(never)}`);
    }
  }
}

/** Row hash halves of the last partitionHash step: hash_combine64(0, column hash). */
let rowHi = 0;
let rowLo = 0;

function rowHash(type: DistType, value: ColumnValue, typmod: number): void {
  hashColumn(type, value, typmod);
  const lo = hashOut.lo + COMBINE_LO;
  rowLo = lo >>> 0;
  rowHi = (hashOut.hi + COMBINE_HI + (lo > 0xffffffff ? 1 : 0)) >>> 0;
}

/**
 * The 64-bit row hash PostgreSQL computes for a one-column hash partition key (before the
 * modulo). For tests and diagnostics; routing uses hashRemainder.
 */
export function partitionHash(type: DistType, value: ColumnValue, typmod = -1): bigint {
  rowHash(type, value, typmod);
  return (BigInt(rowHi) << 32n) | BigInt(rowLo);
}

/**
 * The remainder (0 ≤ r < modulus) of the partition PostgreSQL puts `value` in, for a table
 * `PARTITION BY HASH (col)` whose partitions all have `modulus`. Throws HashInputError (with
 * `sqlstate`) for a value that is not a valid value of the type.
 *
 * `typmod` is the column's pg_attribute.atttypmod (-1 for none). Pass it for a value being
 * stored (INSERT, COPY, UPDATE … SET): PostgreSQL routes the row after the assignment cast, which
 * rounds numeric(p, s) and cuts the trailing spaces beyond varchar(n), and refuses what does not
 * fit (22003, 22001). Leave it at -1 for a value compared in a WHERE clause: there PostgreSQL
 * does not coerce it, and a value that does not fit matches no row on any group.
 */
export function hashRemainder(type: DistType, value: ColumnValue, modulus: number, typmod = -1): number {
  if (!Number.isInteger(modulus) || modulus < 1 || modulus > MAX_MODULUS) {
    throw new HashInputError(
      '22023',
      `modulus for hash partition must be an integer between 1 and ${MAX_MODULUS}`,
    );
  }
  rowHash(type, value, typmod);
  // A power of two needs only the low bits.
  if ((modulus & (modulus - 1)) === 0) return rowLo & (modulus - 1);
  // (hi * 2^32 + lo) mod m in steps whose products stay below 2^53.
  let r = rowHi % modulus;
  r = (r * 65536 + (rowLo >>> 16)) % modulus;
  return (r * 65536 + (rowLo & 0xffff)) % modulus;
}

/** What PostgreSQL says about a column's collation (pg_collation.collisdeterministic). */
export interface ColumnCollation {
  readonly name: string;
  readonly deterministic: boolean;
}

/**
 * Refuses a distribution column whose partition hash the proxy cannot compute: a text-like
 * column with a nondeterministic collation (its hash is of the ICU sort key, not the bytes).
 * Call it when a table is distributed; other types have no collation.
 */
export function checkDistributionCollation(type: DistType, collation: ColumnCollation | null): void {
  if (type !== 'text' && type !== 'varchar' && type !== 'bpchar') return;
  if (collation && !collation.deterministic) {
    throw new HashInputError(
      '0A000',
      `cannot distribute by a column with the nondeterministic collation "${collation.name}": ` +
        'its partition hash depends on ICU sort keys, which pgscale does not compute',
    );
  }
}
