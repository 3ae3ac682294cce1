/**
 * One analysis per SQL text: `analyze(sql)` returns the text's StatementFacts, kept in one LRU
 * cache keyed by the exact text, and every member of the facts (read/write class, session
 * effects, hidden-effect risk, relation references, parse-tree facts for sharding) is computed
 * on first access and memoized on it (statement-facts.ts). This replaces the separate caches of
 * the classifier, the session-effects and risk caches of the session, and the relation-refs
 * cache of the hidden-code registry, each of which lexed or parsed the same text again. Texts
 * over 16 KiB are analysed each time and not cached (as the session-effects cache did): a few
 * large texts must not push thousands of small ones out. Never throws on client text.
 */
import { LruCache } from './lru-cache.js';
import { FunctionPolicy } from './read-only-functions.js';
import { DEFAULT_CACHE_SIZE } from './classify.js';
import type { ClassifierOptions } from './classify.js';
import { loadParser } from './pg-parser.js';
import { StatementFacts } from './statement-facts.js';
import type { AnalysisContext, AnalyzerStats } from './statement-facts.js';

export { StatementFacts, NO_EFFECTS } from './statement-facts.js';
export type { AnalyzerStats } from './statement-facts.js';
export type { ClassifierOptions as AnalyzerOptions } from './classify.js';
export type {
  Cell,
  CopyFacts,
  DdlKind,
  DdlKindName,
  Equality,
  InList,
  InsertFacts,
  OrderKey,
  OrderTarget,
  RelationRef,
  SelectShape,
  TransactionKind,
  Value,
} from './statement-shape.js';

/** Texts longer than this are analysed on every call, not cached. */
export const MAX_CACHED_TEXT = 16 * 1024;

export class Analyzer {
  /**
   * hits, misses, fastPath and parsed count classifications exactly as ClassifierStats does
   * (a hit is a `classification` read that was already memoized); cacheHits and cacheMisses
   * count analyze() calls; lexed counts texts lexed.
   */
  readonly stats: AnalyzerStats = {
    hits: 0,
    misses: 0,
    fastPath: 0,
    parsed: 0,
    cacheHits: 0,
    cacheMisses: 0,
    lexed: 0,
  };
  private readonly cache: LruCache<StatementFacts>;
  private readonly ctx: AnalysisContext;

  /**
   * Usable at once, but until the parser is loaded (see `create`; the first text that needs it
   * starts loading it) classifications that need it are 'write' / 'parser unavailable' and the
   * parse-tree members null, neither memoized.
   */
  constructor(opts: ClassifierOptions = {}) {
    this.cache = new LruCache(opts.cacheSize ?? DEFAULT_CACHE_SIZE);
    this.ctx = {
      policy: new FunctionPolicy(opts.readOnlyFunctions, opts.writeFunctions),
      fastPath: opts.fastPath ?? true,
      stats: this.stats,
      holder: null,
    };
  }

  /** An analyzer with the parser loaded (the WASM module is instantiated once per process). */
  static async create(opts: ClassifierOptions = {}): Promise<Analyzer> {
    await loadParser();
    return new Analyzer(opts);
  }

  /** The facts of `sql`: the same object for the same text while it stays in the cache. */
  analyze(sql: string): StatementFacts {
    const cached = this.cache.get(sql);
    if (cached !== undefined) {
      this.stats.cacheHits++;
      return cached;
    }
    this.stats.cacheMisses++;
    const facts = new StatementFacts(sql, this.ctx);
    if (sql.length <= MAX_CACHED_TEXT) this.cache.set(sql, facts);
    return facts;
  }

  /** Texts in the cache. */
  get size(): number {
    return this.cache.size;
  }
}
