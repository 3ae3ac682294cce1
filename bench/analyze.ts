/**
 * The analyzer against what it replaces, in ns of CPU per call, each pair measured in the same
 * run in alternating trials (so a busy machine slows both alike): a cache hit of
 * `analyze(t).classification` against `Classifier.classify(t)`, a hit of `analyze(t).effects`
 * against the session's former effects lookup (cannotChangeSession, then a Map), and a miss
 * (cache off: lexing and the fast path, or the parser) of each, for pgbench's SELECT in its
 * extended-protocol form. Run directly: `node --import tsx bench/analyze.ts`. No asserts on time.
 */
import { cpus, loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Analyzer } from '../src/sql/analyze.js';
import { Classifier } from '../src/sql/classify.js';
import { cannotChangeSession, sessionEffects } from '../src/sql/session-effects.js';

const PGBENCH_SELECT = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;';

/** Median over `trials` of the CPU ns per call of `fn`, each trial at least `trialMs` of CPU. */
function trial(fn: () => unknown, trialMs: number): number {
  let calls = 0;
  let cpuUs = 0;
  while (cpuUs < trialMs * 1000) {
    const start = process.cpuUsage();
    for (let i = 0; i < 1000; i++) fn();
    const used = process.cpuUsage(start);
    cpuUs += used.user + used.system;
    calls += 1000;
  }
  return (cpuUs * 1000) / calls;
}

/** The two functions in alternating trials; the median ns per call of each. */
function pair(a: () => unknown, b: () => unknown, trials = 9, trialMs = 40): [number, number] {
  for (let i = 0; i < 20_000; i++) {
    a();
    b();
  }
  const ta: number[] = [];
  const tb: number[] = [];
  for (let k = 0; k < trials; k++) {
    ta.push(trial(a, trialMs));
    tb.push(trial(b, trialMs));
  }
  return [median(ta), median(tb)];
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

export interface AnalyzeCosts {
  readonly rows: readonly { readonly what: string; readonly analyzerNs: number; readonly beforeNs: number }[];
}

export async function measureAnalyze(): Promise<AnalyzeCosts> {
  const analyzer = await Analyzer.create();
  const classifier = new Classifier();
  const effectsCache = new Map<string, readonly unknown[]>();
  const NONE: readonly unknown[] = [];
  const oldEffects = (q: string): readonly unknown[] => {
    if (cannotChangeSession(q)) return NONE;
    let e = effectsCache.get(q);
    if (e === undefined) effectsCache.set(q, (e = sessionEffects(q)));
    return e;
  };
  const missAnalyzer = new Analyzer({ cacheSize: 0 });
  const missClassifier = new Classifier({ cacheSize: 0 });
  const parseAnalyzer = new Analyzer({ cacheSize: 0, fastPath: false });
  const parseClassifier = new Classifier({ cacheSize: 0, fastPath: false });
  const t = PGBENCH_SELECT;
  const rows: { what: string; analyzerNs: number; beforeNs: number }[] = [];
  const add = (what: string, [analyzerNs, beforeNs]: [number, number]): void => {
    rows.push({ what, analyzerNs, beforeNs });
  };
  add(
    'hit: classification',
    pair(
      () => analyzer.analyze(t).classification,
      () => classifier.classify(t),
    ),
  );
  add(
    'hit: effects',
    pair(
      () => analyzer.analyze(t).effects,
      () => oldEffects(t),
    ),
  );
  add(
    'miss: classification (fast path)',
    pair(
      () => missAnalyzer.analyze(t).classification,
      () => missClassifier.classify(t),
    ),
  );
  add(
    'miss: classification (parser)',
    pair(
      () => parseAnalyzer.analyze(t).classification,
      () => parseClassifier.classify(t),
      5,
      100,
    ),
  );
  return { rows };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { rows } = await measureAnalyze();
  const load = loadavg()[0] ?? 0;
  console.log(`pgbench SELECT: ${PGBENCH_SELECT}`);
  console.log(
    `CPU ns per call, median; Node ${process.version}, ${cpus().length} CPUs, load ${load.toFixed(2)}`,
  );
  const width = Math.max(...rows.map((r) => r.what.length));
  console.log(`${''.padEnd(width)}  ${'analyzer'.padStart(9)}  ${'before'.padStart(9)}  ratio`);
  for (const r of rows) {
    const ratio = (r.analyzerNs / r.beforeNs).toFixed(2);
    console.log(
      `${r.what.padEnd(width)}  ${r.analyzerNs.toFixed(0).padStart(9)}  ${r.beforeNs.toFixed(0).padStart(9)}  ${ratio}`,
    );
  }
}
