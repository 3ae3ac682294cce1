/**
 * Measures the planner's two steps (not a test: timings vary with the machine, so nothing is
 * asserted): `shardKeyPlan` on typical statements that miss the proxy's cache (parse + walk),
 * and `resolveShards` per execution. Run: `node --import tsx src/sharding/shard-plan-measure.test-util.ts`.
 * The remainder is the test stand-in; the real hash's own cost comes on top of resolveShards's.
 */
import { loadParser, parseStatements } from '../sql/pg-parser.js';
import { resolveShards, shardKeyPlan } from './shard-plan.js';
import { catalog, fakeRemainder } from './shard-plan.test-util.js';
import type { ColumnValue } from './types.js';

await loadParser();

function perCall(n: number, f: () => unknown): number {
  for (let i = 0; i < Math.min(n, 20000); i++) f(); // warm up
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f();
  return Number(process.hrtime.bigint() - start) / n;
}

const statements = [
  'SELECT name, email FROM users WHERE id = $1',
  'UPDATE users SET name = $2 WHERE id = $1',
  'INSERT INTO orders (user_id, total, note) VALUES ($1, $2, $3) RETURNING id',
  'SELECT o.* FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = $1 ORDER BY o.total DESC LIMIT 10',
];
const text = (s: string): ColumnValue => ({ format: 'text', text: s });
const bin = Buffer.alloc(8);
bin.writeBigInt64BE(12345n);

console.log('shardKeyPlan (cache miss: parse + walk), ns per call:');
for (const sql of statements) {
  const parseOnly = perCall(20000, () => parseStatements(sql));
  const total = perCall(20000, () => shardKeyPlan(sql, catalog));
  console.log(`  ${Math.round(total)} ns (of which parse ${Math.round(parseOnly)} ns)  ${sql}`);
}
console.log(
  `  ${perCall(200000, () => shardKeyPlan('SELECT * FROM accounts WHERE id = $1', catalog)).toFixed(0)} ns  fast path: text names no catalog table`,
);

console.log('resolveShards, ns per call:');
const point = shardKeyPlan(statements[0]!, catalog);
const params = [text('12345')];
console.log(
  `  ${perCall(1_000_000, () => resolveShards(point, params, fakeRemainder)).toFixed(0)} ns  one key, text parameter`,
);
const binParams = [{ format: 'binary', bytes: bin } as const];
console.log(
  `  ${perCall(1_000_000, () => resolveShards(point, binParams, fakeRemainder)).toFixed(0)} ns  one key, binary parameter`,
);
const noHash = (): number => 1;
console.log(
  `  ${perCall(1_000_000, () => resolveShards(point, params, noHash)).toFixed(0)} ns  one key, the hash itself left out`,
);
const join = shardKeyPlan(statements[3]!, catalog);
console.log(
  `  ${perCall(1_000_000, () => resolveShards(join, params, fakeRemainder)).toFixed(0)} ns  colocated join, one key`,
);
const inList = shardKeyPlan('SELECT * FROM users WHERE id IN ($1, $2, $3)', catalog);
const three = [text('1'), text('5'), text('9')];
console.log(
  `  ${perCall(500_000, () => resolveShards(inList, three, fakeRemainder)).toFixed(0)} ns  IN list of 3`,
);
const local = shardKeyPlan('SELECT 1', catalog);
console.log(`  ${perCall(1_000_000, () => resolveShards(local, [], fakeRemainder)).toFixed(0)} ns  local`);
