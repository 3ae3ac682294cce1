/**
 * The shard router's own CPU per statement, in-process (no sockets, no server): what
 * `ShardRouter.target` costs for the single-group statements of `npm run bench:shard-cpu`
 * (UPDATE by key, INSERT of a history row, SELECT by key), with the values inline as pgbench's
 * simple protocol sends them (a new text per execution) and as `$n` with Bind values (one text,
 * the prepared and extended protocols). Catalog: the planner tests' (src/sharding/
 * shard-plan.test-util.ts: users and orders colocated by a bigint key on 2 groups); the real
 * partition hash. Nothing is asserted: it prints µs per statement (median of 5 rounds), and the
 * cost of a hit in the LRU cache the router and the classifier keep their answers in.
 * Run: `node --import tsx bench/shard-router-hot.ts [statements per round]`.
 */
import { ShardRouter } from '../src/proxy/shard-router.js';
import { LruCache } from '../src/sql/lru-cache.js';
import { loadParser } from '../src/sql/pg-parser.js';
import { distribute, emptyCatalog, isCatalogError } from '../src/sharding/catalog.js';
import type { ColumnValue } from '../src/sharding/types.js';

await loadParser();
/** users(id bigint) and orders(user_id bigint), colocated, 32 shards over two groups. */
function benchCatalog() {
  let c = emptyCatalog(['0', '1']);
  for (const [name, column] of [
    ['users', 'id'],
    ['orders', 'user_id'],
  ] as const) {
    const r = distribute(c, { rel: { schema: 'public', name }, column, type: 'int8' });
    if (isCatalogError(r)) throw new Error(r.message);
    c = r.catalog;
  }
  return c;
}
const catalog = benchCatalog();
const n = Number(process.argv[2] ?? 60_000);
const router = new ShardRouter(
  () => catalog,
  () => Promise.resolve([]),
);
const t = (text: string): ColumnValue => ({ format: 'text', text });

const simple = (i: number): string[] => {
  const aid = 1 + ((i * 7919) % 100_000);
  const delta = (i % 10_001) - 5000;
  return [
    `UPDATE users SET name = name || ${delta} WHERE id = ${aid}`,
    `INSERT INTO orders (user_id, total, at) VALUES (${aid}, ${delta}, now())`,
    `SELECT name FROM users WHERE id = ${aid}`,
  ];
};
const prepared = [
  'UPDATE users SET name = name || $1 WHERE id = $2',
  'INSERT INTO orders (user_id, total, at) VALUES ($1, $2, now())',
  'SELECT name FROM users WHERE id = $1',
];

function round(kind: 'simple' | 'prepared', base: number): number {
  let groups = 0;
  const start = process.hrtime.bigint();
  for (let i = base; i < base + n; i += 3) {
    if (kind === 'simple') {
      for (const sql of simple(i)) if (router.target(sql, []).kind === 'group') groups++;
    } else {
      const aid = String(1 + ((i * 7919) % 100_000));
      const delta = String((i % 10_001) - 5000);
      if (router.target(prepared[0]!, [t(delta), t(aid)]).kind === 'group') groups++;
      if (router.target(prepared[1]!, [t(aid), t(delta)]).kind === 'group') groups++;
      if (router.target(prepared[2]!, [t(aid)]).kind === 'group') groups++;
    }
  }
  const ns = Number(process.hrtime.bigint() - start);
  if (groups < n - 3) throw new Error(`only ${groups} of ${n} statements went to one group`);
  return ns / n / 1000;
}

for (const kind of ['simple', 'prepared'] as const) {
  round(kind, 1_000_000); // warm-up: JIT, caches
  const us = [0, 1, 2, 3, 4].map((r) => round(kind, r * n)).sort((a, b) => a - b);
  process.stdout.write(
    `${kind.padEnd(9)} ${us[2]!.toFixed(2)} µs per statement (rounds: ${us.map((u) => u.toFixed(2)).join(' ')})\n`,
  );
}

// The LRU cache under the router and the classifier (src/sql/lru-cache.ts): a hit on a full
// 5,000-entry cache after churn, three hot keys (a prepared workload after a simple-protocol one).
{
  const c = new LruCache<number>(5000);
  for (let i = 0; i < 60_000; i++) {
    const k = simple(i)[0]!;
    if (c.get(k) === undefined) c.set(k, i);
  }
  for (const k of prepared) c.set(k, 1);
  const hits = 300_000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < hits; i++) c.get(prepared[i % 3]!);
  const ns = Number(process.hrtime.bigint() - start) / hits;
  process.stdout.write(`lru hit   ${(ns / 1000).toFixed(3)} µs on a full 5,000-entry cache after churn\n`);
}
