/**
 * The analyzer against what it replaces, in ns of CPU per call, each pair measured in the same
 * run in alternating trials (so a busy machine slows both alike): a cache hit of
 * `analyze(t).classification` against `Classifier.classify(t)`, a hit of `analyze(t).effects`
 * against the session's former effects lookup (cannotChangeSession, then a Map), and a miss
 * (cache off: lexing and the fast path, or the parser) of each, for pgbench's SELECT in its
 * extended-protocol form. Run directly: `node --import tsx bench/analyze.ts`. No asserts on time.
 */
import { cpus, loadavg } from 'node:os';
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
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

export interface AnalyzeRow {
  readonly what: string;
  readonly analyzerNs: number;
  readonly beforeNs: number;
}

export const CASES = ['hit: classification', 'hit: effects', 'miss: fast path', 'miss: parser'] as const;
export type Case = (typeof CASES)[number];

/** One case, both ways, in alternating trials. */
export async function measureAnalyze(what: Case): Promise<AnalyzeRow> {
  const t = PGBENCH_SELECT;
  let pairTimes: [number, number];
  switch (what) {
    case 'hit: classification': {
      const analyzer = await Analyzer.create();
      const classifier = new Classifier();
      pairTimes = pair(
        () => analyzer.analyze(t).classification,
        () => classifier.classify(t),
      );
      break;
    }
    case 'hit: effects': {
      const analyzer = await Analyzer.create();
      const effectsCache = new Map<string, readonly unknown[]>();
      const NONE: readonly unknown[] = [];
      pairTimes = pair(
        () => analyzer.analyze(t).effects,
        () => {
          if (cannotChangeSession(t)) return NONE;
          let e = effectsCache.get(t);
          if (e === undefined) effectsCache.set(t, (e = sessionEffects(t)));
          return e;
        },
      );
      break;
    }
    case 'miss: fast path': {
      const analyzer = await Analyzer.create({ cacheSize: 0 });
      const classifier = new Classifier({ cacheSize: 0 });
      pairTimes = pair(
        () => analyzer.analyze(t).classification,
        () => classifier.classify(t),
      );
      break;
    }
    case 'miss: parser': {
      const analyzer = await Analyzer.create({ cacheSize: 0, fastPath: false });
      const classifier = new Classifier({ cacheSize: 0, fastPath: false });
      pairTimes = pair(
        () => analyzer.analyze(t).classification,
        () => classifier.classify(t),
        5,
        100,
      );
      break;
    }
  }
  return { what, analyzerNs: pairTimes[0], beforeNs: pairTimes[1] };
}

/**
 * Every case, each in a child process of its own: measured in one process, code shared by the
 * cases (the LRU cache, the lexer) sees several object shapes and is optimised for none, which
 * skews the later cases by 10 % or more.
 */
export function measureAll(): AnalyzeRow[] {
  const self = fileURLToPath(import.meta.url);
  return CASES.map((what) => {
    const out = execFileSync(process.execPath, [...process.execArgv, self, '--case', what], {
      encoding: 'utf8',
    });
    return JSON.parse(out) as AnalyzeRow;
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--case');
  if (i >= 0) {
    process.stdout.write(JSON.stringify(await measureAnalyze(process.argv[i + 1] as Case)));
    process.exit(0);
  }
  const rows = measureAll();
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
