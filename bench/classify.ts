/**
 * Cost of classifying one statement for routing, in µs, on a mixed corpus of what applications
 * send (ORM-style SELECTs with joins and function calls, DML, transaction control, CTEs), each
 * way measured in the same run: the fast path alone (statements it answers, cache off), the
 * parser path with no cache (a fresh classifier per pass, fast path off, so every text is a
 * miss that goes through libpg-query), a realistic miss (fast path on, no cache), and a cache
 * hit. Run directly for a table: `node --import tsx bench/classify.ts`. No asserts on time.
 */
import { cpus, loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Classifier } from '../src/sql/classify.js';

export interface ClassificationCosts {
  /** CPU µs per statement answered by the fast path (lexing included; cache disabled). */
  fastPathUs: number;
  /** µs per statement through libpg-query, every text a cache miss. */
  parsedUncachedUs: number;
  /** µs per statement over the whole corpus on a miss, fast path on (what a cold proxy pays). */
  mixedUncachedUs: number;
  /** µs per statement served from the cache. */
  cachedUs: number;
  /** Statements in the corpus. */
  n: number;
  /** Of those, answered by the fast path. */
  fastPathN: number;
}

const CORPUS: readonly string[] = [
  'SELECT 1',
  'SELECT id, name, email FROM users WHERE id = $1',
  'SELECT "users"."id", "users"."name" FROM "users" WHERE "users"."email" = $1 LIMIT 1',
  'SELECT * FROM orders WHERE customer_id = $1 AND status = $2 ORDER BY created_at DESC LIMIT 50',
  'SELECT o.id, o.total, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = $1',
  "SELECT count(*) FROM orders WHERE created_at > now() - interval '1 day'",
  'SELECT lower(email), coalesce(nickname, name) FROM users WHERE id = ANY($1)',
  "SELECT date_trunc('hour', created_at) AS h, count(*), sum(total) FROM orders GROUP BY 1 ORDER BY 1",
  'SELECT * FROM products WHERE id IN (SELECT product_id FROM order_items WHERE order_id = $1)',
  "SELECT json_build_object('id', id, 'tags', array_agg(tag)) FROM posts JOIN tags USING (post_id) GROUP BY id",
  'WITH recent AS (SELECT * FROM events WHERE at > $1) SELECT kind, count(*) FROM recent GROUP BY kind',
  'SELECT * FROM jobs WHERE state = $1 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED',
  "SELECT nextval('orders_id_seq')",
  'SELECT pg_advisory_xact_lock($1)',
  'SELECT my_report($1, $2)',
  'INSERT INTO events (kind, payload, at) VALUES ($1, $2, now()) RETURNING id',
  'UPDATE users SET last_seen = now() WHERE id = $1',
  'DELETE FROM sessions WHERE expires_at < now()',
  'WITH moved AS (DELETE FROM queue WHERE id = $1 RETURNING *) INSERT INTO done SELECT * FROM moved',
  'INSERT INTO t (a, b) VALUES ($1, $2) ON CONFLICT (a) DO UPDATE SET b = excluded.b',
  'BEGIN',
  'BEGIN READ ONLY',
  'START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY',
  'COMMIT',
  'ROLLBACK',
  'SAVEPOINT s1',
  "SET search_path = 'app', public",
  'SHOW transaction_isolation',
  'EXPLAIN SELECT * FROM orders WHERE id = $1',
  'COPY (SELECT * FROM orders WHERE day = $1) TO STDOUT WITH (FORMAT csv)',
  '/* pgscale:replica */ SELECT * FROM dashboard_stats',
  'SELECT u.id, p.title FROM users u LEFT JOIN LATERAL (SELECT title FROM posts WHERE author = u.id ORDER BY at DESC LIMIT 3) p ON true',
];

interface Timing {
  /** Process CPU time (user + system) per call: what the classification costs the proxy. */
  cpuUs: number;
  /** Wall-clock time per call: the same on an idle machine, inflated on a busy one. */
  wallUs: number;
}

/**
 * Time per call of `classify` over `texts`: the median of `trials` timed stretches of at least
 * `trialMs` of CPU each. CPU time is the headline figure because benchmarks here often share a
 * machine; wall time is kept to show how much waiting for a core added.
 * With `perPass`, every pass over `texts` starts with a fresh classifier (so an empty cache).
 */
function timeIt(
  texts: readonly string[],
  makeClassifier: () => Classifier,
  perPass: boolean,
  trials = 7,
  trialMs = 60,
): Timing {
  let c = makeClassifier();
  for (let i = 0; i < 200; i++) for (const t of texts) c.classify(t); // warm-up: let the JIT settle
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let k = 0; k < trials; k++) {
    let calls = 0;
    let cpuUs = 0;
    let wallUs = 0;
    while (cpuUs < trialMs * 1000) {
      if (perPass) c = makeClassifier();
      const cpuStart = process.cpuUsage();
      const start = process.hrtime.bigint();
      for (const t of texts) c.classify(t);
      wallUs += Number(process.hrtime.bigint() - start) / 1e3;
      const used = process.cpuUsage(cpuStart);
      cpuUs += used.user + used.system;
      calls += texts.length;
    }
    cpu.push(cpuUs / calls);
    wall.push(wallUs / calls);
  }
  return { cpuUs: median(cpu), wallUs: median(wall) };
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

/** The four measurements, CPU and wall, in one run. */
export async function measureClassificationTimings(): Promise<{
  fastPath: Timing;
  parsedUncached: Timing;
  mixedUncached: Timing;
  cached: Timing;
  n: number;
  fastPathN: number;
}> {
  const probe = await Classifier.create({ cacheSize: 0 });
  const fastTexts = CORPUS.filter((t) => {
    const before = probe.stats.fastPath;
    probe.classify(t);
    return probe.stats.fastPath > before;
  });
  return {
    fastPath: timeIt(fastTexts, () => new Classifier({ cacheSize: 0 }), false),
    parsedUncached: timeIt(CORPUS, () => new Classifier({ fastPath: false }), true),
    mixedUncached: timeIt(CORPUS, () => new Classifier(), true),
    cached: timeIt(CORPUS, () => new Classifier(), false),
    n: CORPUS.length,
    fastPathN: fastTexts.length,
  };
}

/** µs of CPU per statement for each way of classifying (see `measureClassificationTimings`). */
export async function measureClassification(): Promise<ClassificationCosts> {
  const t = await measureClassificationTimings();
  return {
    fastPathUs: t.fastPath.cpuUs,
    parsedUncachedUs: t.parsedUncached.cpuUs,
    mixedUncachedUs: t.mixedUncached.cpuUs,
    cachedUs: t.cached.cpuUs,
    n: t.n,
    fastPathN: t.fastPathN,
  };
}

function printTable(r: Awaited<ReturnType<typeof measureClassificationTimings>>): void {
  const rows: [string, Timing][] = [
    [`fast path (${r.fastPathN} of ${r.n} statements)`, r.fastPath],
    ['parser, uncached (all statements)', r.parsedUncached],
    ['miss with fast path (all statements)', r.mixedUncached],
    ['cache hit (all statements)', r.cached],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const load = loadavg()[0] ?? 0;
  console.log(
    `median of 7 trials; Node ${process.version}, ${cpus().length} CPUs, load average ${load.toFixed(2)}`,
  );
  console.log(`${'µs per statement'.padEnd(width)}  ${'CPU'.padStart(8)}  ${'wall'.padStart(8)}`);
  for (const [k, v] of rows) {
    console.log(`${k.padEnd(width)}  ${v.cpuUs.toFixed(2).padStart(8)}  ${v.wallUs.toFixed(2).padStart(8)}`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  printTable(await measureClassificationTimings());
}
