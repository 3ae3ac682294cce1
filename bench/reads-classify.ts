/**
 * Cost of classifying one statement for read/write routing, in µs of CPU, for the read-scaling
 * report. When `bench/classify.ts` is present (the classifier's own benchmark, on its mixed
 * corpus), its `measureClassification()` is used. Otherwise a smaller measurement of our own:
 * the statements pgbench's select-only and TPC-B scripts send, timed through the project's
 * `Classifier` on the fast path (cache off), through the parser (cache and fast path off, every
 * call a miss) and from the cache. CPU time (process.cpuUsage), median of 5 trials, so that a
 * busy shared host inflates the figures less than wall-clock time would.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Classifier } from '../src/sql/classify.js';

export interface ClassificationFigures {
  /** Where the figures come from. */
  source: string;
  fastPathUs: number | null;
  parsedUncachedUs: number | null;
  /** Fast path on, cache off: what a cold proxy pays over the corpus. */
  mixedUncachedUs: number | null;
  cachedUs: number | null;
  statements: number;
}

/** What bench/classify.ts (when present) exports. */
interface ClassifyModule {
  measureClassification(): Promise<{
    fastPathUs: number;
    parsedUncachedUs: number;
    mixedUncachedUs: number;
    cachedUs: number;
    n: number;
    fastPathN: number;
  }>;
}

/** What pgbench sends (select-only, then TPC-B's five statements), with its `$n` parameters. */
const PGBENCH_STATEMENTS: readonly string[] = [
  'SELECT abalance FROM pgbench_accounts WHERE aid = $1;',
  'UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;',
  'SELECT abalance FROM pgbench_accounts WHERE aid = $1',
  'UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;',
  'UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;',
  'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);',
  'BEGIN;',
  'END;',
];

function timeCpuUs(texts: readonly string[], make: () => Classifier, trials = 5, trialMs = 50): number {
  const c = make();
  for (let i = 0; i < 200; i++) for (const t of texts) c.classify(t); // let the JIT settle
  const per: number[] = [];
  for (let k = 0; k < trials; k++) {
    let calls = 0;
    let cpuUs = 0;
    while (cpuUs < trialMs * 1000) {
      const start = process.cpuUsage();
      for (const t of texts) c.classify(t);
      const u = process.cpuUsage(start);
      cpuUs += u.user + u.system;
      calls += texts.length;
    }
    per.push(cpuUs / calls);
  }
  per.sort((a, b) => a - b);
  return per[Math.floor(per.length / 2)]!;
}

async function ownMeasurement(): Promise<ClassificationFigures> {
  const probe = await Classifier.create({ cacheSize: 0 });
  const fast = PGBENCH_STATEMENTS.filter((t) => {
    const before = probe.stats.fastPath;
    probe.classify(t);
    return probe.stats.fastPath > before;
  });
  return {
    source: `bench/reads-classify.ts (bench/classify.ts absent): ${PGBENCH_STATEMENTS.length} pgbench statements, ${fast.length} on the fast path`,
    fastPathUs: fast.length > 0 ? timeCpuUs(fast, () => new Classifier({ cacheSize: 0 })) : null,
    parsedUncachedUs: timeCpuUs(PGBENCH_STATEMENTS, () => new Classifier({ cacheSize: 0, fastPath: false })),
    mixedUncachedUs: timeCpuUs(PGBENCH_STATEMENTS, () => new Classifier({ cacheSize: 0 })),
    cachedUs: timeCpuUs(PGBENCH_STATEMENTS, () => new Classifier()),
    statements: PGBENCH_STATEMENTS.length,
  };
}

export async function classificationFigures(): Promise<ClassificationFigures> {
  const theirs = new URL('./classify.ts', import.meta.url);
  if (existsSync(fileURLToPath(theirs))) {
    const m = (await import(theirs.href)) as Partial<ClassifyModule>;
    if (typeof m.measureClassification === 'function') {
      const r = await m.measureClassification();
      return {
        source: `bench/classify.ts measureClassification(): ${r.n} statements, ${r.fastPathN} on the fast path`,
        fastPathUs: r.fastPathUs,
        parsedUncachedUs: r.parsedUncachedUs,
        mixedUncachedUs: r.mixedUncachedUs,
        cachedUs: r.cachedUs,
        statements: r.n,
      };
    }
  }
  return ownMeasurement();
}
