/**
 * Cost of the partition hash per routed value, in ns per call (src/sharding/hash.ts): int8 and
 * a 20-byte text as the proxy meets them (text literal or Bind parameter, text or binary), plus
 * int4, uuid and numeric; and the 64-bit step (combine + modulo) done in two 32-bit halves, as
 * hash.ts does, against the same step in BigInt. Run directly for a table:
 * `node --import tsx bench/hash.ts`. No asserts on time.
 */
import { cpus, loadavg } from 'node:os';
import { hashRemainder } from '../src/sharding/hash.js';
import type { ColumnValue, DistType } from '../src/sharding/types.js';

const N = 2_000_000;
const MODULUS = 32;

/**
 * CPU ns per call (user + system time of this process, so waiting for a CPU on a shared host does
 * not count), the best of three rounds.
 */
function nsPerCall(fn: (i: number) => number): number {
  let sink = 0;
  for (let i = 0; i < N / 10; i++) sink += fn(i); // warm-up
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const t0 = process.cpuUsage();
    for (let i = 0; i < N; i++) sink += fn(i);
    const used = process.cpuUsage(t0);
    best = Math.min(best, ((used.user + used.system) * 1000) / N);
  }
  if (sink === -1) console.log(sink);
  return Math.round(best * 10) / 10;
}

function values(type: DistType, make: (i: number) => ColumnValue): ColumnValue[] {
  void type;
  return Array.from({ length: 1024 }, (_, i) => make(i));
}

const int8Bin = (i: number): ColumnValue => {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(1234567890123n + BigInt(i));
  return { format: 'binary', bytes: b };
};

const cases: [string, DistType, ColumnValue[]][] = [
  ['int8, text', 'int8', values('int8', (i) => ({ format: 'text', text: String(1234567890123 + i) }))],
  [
    'int8 of 19 digits, text',
    'int8',
    values('int8', (i) => ({ format: 'text', text: String(1820000000000000000n + BigInt(i)) })),
  ],
  ['int8, binary', 'int8', values('int8', int8Bin)],
  ['int4, text', 'int4', values('int4', (i) => ({ format: 'text', text: String(424242 + i) }))],
  [
    'text 20 bytes, text',
    'text',
    values('text', (i) => ({ format: 'text', text: `user-${String(i).padStart(6, '0')}@example.c` })),
  ],
  [
    'text 20 bytes, binary',
    'text',
    values('text', (i) => ({
      format: 'binary',
      bytes: Buffer.from(`user-${String(i).padStart(6, '0')}@example.c`),
    })),
  ],
  [
    'uuid, text',
    'uuid',
    values('uuid', (i) => ({
      format: 'text',
      text: `a0eebc99-9c0b-4ef8-bb6d-6bb9bd38${String(i).padStart(4, '0')}`,
    })),
  ],
  ['numeric, text', 'numeric', values('numeric', (i) => ({ format: 'text', text: `${12345 + i}.678` }))],
];

const rows: { case: string; nsPerCall: number }[] = [];
for (const [name, type, vals] of cases) {
  rows.push({ case: name, nsPerCall: nsPerCall((i) => hashRemainder(type, vals[i & 1023]!, MODULUS)) });
}

// The 64-bit step alone: hash_combine64(0, h) = h + K mod 2^64, then mod 7 (a modulus that is not
// a power of two, so the halves take the general path).
const his = Uint32Array.from({ length: 1024 }, (_, i) => (i * 2654435761) >>> 0);
const los = Uint32Array.from({ length: 1024 }, (_, i) => (i * 40503 + 12345) >>> 0);
const halves = (i: number): number => {
  const lo = los[i & 1023]! + 0x15e5a8e3;
  const rowLo = lo >>> 0;
  const rowHi = (his[i & 1023]! + 0x49a0f4dd + (lo > 0xffffffff ? 1 : 0)) >>> 0;
  let r = rowHi % 7;
  r = (r * 65536 + (rowLo >>> 16)) % 7;
  return (r * 65536 + (rowLo & 0xffff)) % 7;
};
const K = 0x49a0f4dd15e5a8e3n;
const MASK = (1n << 64n) - 1n;
const bigint = (i: number): number => {
  const h = (BigInt(his[i & 1023]!) << 32n) | BigInt(los[i & 1023]!);
  return Number(((h + K) & MASK) % 7n);
};
for (let i = 0; i < 1024; i++) if (halves(i) !== bigint(i)) throw new Error(`64-bit step differs at ${i}`);
rows.push({ case: '64-bit step, two 32-bit halves', nsPerCall: nsPerCall(halves) });
rows.push({ case: '64-bit step, BigInt', nsPerCall: nsPerCall(bigint) });

console.log(
  `partition hash, CPU ns per call (best of 3 × ${N} calls; ${cpus().length} CPUs, load ${loadavg()[0]!.toFixed(2)})`,
);
console.table(rows);
