/**
 * The read/write classifier: tells the router whether a Query text (or the text of a Parse
 * message) may run on a replica. Each distinct text is classified once and kept in an LRU
 * cache; a miss is answered by a token-level fast path for the obvious shapes, else by the real
 * PostgreSQL parser (libpg-query) and a walk of the parse tree. The answer is a class, the
 * reason (for logs and SHOW), and any routing hint found in a comment; what to do with them is
 * the router's decision. It never throws: text that cannot be classified (syntax errors, inputs
 * too big or too deeply nested to parse, a parser failure) is a write, which the primary can
 * always run or reject.
 * https://www.postgresql.org/docs/current/hot-standby.html#HOT-STANDBY-USERS lists what a
 * standby accepts.
 */
import { lex } from './lexer.js';
import { routingHintOf } from './hints.js';
import type { RoutingHint } from './hints.js';
import { LruCache } from './lru-cache.js';
import { FunctionPolicy } from './read-only-functions.js';
import { fastPathClass } from './classify-fast-path.js';
import type { FastAnswer } from './classify-fast-path.js';
import type { TokenList } from './token-list.js';
import type { ParseOutcome } from './pg-parser.js';
import { tooDeepToParse, tooLargeToParse } from './parse-guard.js';
import { loadParser, parseStatements } from './pg-parser.js';
import { classifyStatement, combine } from './classify-tree.js';
import type { Verdict } from './classify-tree.js';
import type { Classification, StatementClass } from './classification.js';

export type { Classification, StatementClass } from './classification.js';

export interface ClassifierOptions {
  /** Functions that may run on a replica, besides the built-in list; lowercased, schema-qualified or not. */
  readonly readOnlyFunctions?: readonly string[];
  /** Functions that always make a statement a write; they override both allow lists. */
  readonly writeFunctions?: readonly string[];
  /** Entries in the LRU cache keyed by statement text; default 5,000, 0 disables it. */
  readonly cacheSize?: number;
  /** Answer obvious cases without the parser (default true); off for tests and benchmarks. */
  readonly fastPath?: boolean;
}

export interface ClassifierStats {
  /** Answers served from the cache. */
  hits: number;
  /** Answers computed: fastPath + parsed + those given without either (too big, too deep, parser down). */
  misses: number;
  fastPath: number;
  /** Texts handed to the parser, including the ones it rejected. */
  parsed: number;
}

export const DEFAULT_CACHE_SIZE = 5000;

/** An answer and whether it may be cached (not when the parser was merely unavailable). */
export interface Computed {
  readonly result: Classification;
  readonly cacheable: boolean;
}

export class Classifier {
  readonly stats: ClassifierStats = { hits: 0, misses: 0, fastPath: 0, parsed: 0 };
  private readonly cache: LruCache<Classification>;
  private readonly policy: FunctionPolicy;
  private readonly fastPath: boolean;

  /**
   * Usable at once, but until the parser is loaded (see `create`; the first such statement
   * starts loading it) statements that need it are answered 'write' / 'parser unavailable' and
   * not cached.
   */
  constructor(opts: ClassifierOptions = {}) {
    this.cache = new LruCache(opts.cacheSize ?? DEFAULT_CACHE_SIZE);
    this.policy = new FunctionPolicy(opts.readOnlyFunctions, opts.writeFunctions);
    this.fastPath = opts.fastPath ?? true;
  }

  /** A classifier with the parser loaded (the WASM module is instantiated once per process). */
  static async create(opts: ClassifierOptions = {}): Promise<Classifier> {
    await loadParser();
    return new Classifier(opts);
  }

  classify(sql: string): Classification {
    const cached = this.cache.get(sql);
    if (cached !== undefined) {
      this.stats.hits++;
      return cached;
    }
    this.stats.misses++;
    let computed: Computed;
    try {
      computed = this.compute(sql);
    } catch {
      // Not expected (every step returns values), but a proxy must not fall over on client text.
      computed = { result: freeze('write', 'unclassifiable', null), cacheable: false };
    }
    if (computed.cacheable) this.cache.set(sql, computed.result);
    return computed.result;
  }

  private compute(sql: string): Computed {
    const d = digestTokens(lex(sql), this.fastPath);
    return (
      classifyUnparsed(sql, d, this.stats) ??
      classifyParsed(parseStatements(sql), d.hint, this.policy, this.stats)
    );
  }
}

/**
 * What classification needs from a text's tokens, so that the tokens can be dropped once it is
 * taken (the analyzer lexes a text once for classification and session effects): the routing
 * hint, the fast path's answer, and whether the text is too deeply nested to parse (only looked
 * at when the fast path has no answer, as the classifier always did).
 */
export interface TokenDigest {
  readonly empty: boolean;
  readonly hint: RoutingHint | null;
  readonly fast: FastAnswer | null;
  /** Null when not looked at (empty text or a fast-path answer). */
  readonly tooDeep: boolean | null;
}

export function digestTokens(tokens: TokenList, fastPath: boolean): TokenDigest {
  const hint = routingHintOf(tokens);
  if (tokens.count === 0) return { empty: true, hint, fast: null, tooDeep: null };
  const fast = fastPath ? fastPathClass(tokens) : null;
  if (fast !== null) return { empty: false, hint, fast, tooDeep: null };
  return {
    empty: false,
    hint,
    fast: null,
    tooDeep: tooLargeToParse(tokens.text) ? null : tooDeepToParse(tokens),
  };
}

/**
 * The classifier's core, from a digest of the text's tokens: the answer given without the
 * parser (empty text, the fast path, the guards), or null when the parse tree must decide
 * (then `classifyParsed` with parseStatements' outcome, or a caller's memo of it).
 */
export function classifyUnparsed(sql: string, d: TokenDigest, stats: ClassifierStats): Computed | null {
  const hint = d.hint;
  if (d.empty) return answer({ cls: 'read', reason: 'empty' }, hint);
  if (d.fast !== null) {
    stats.fastPath++;
    return answer(d.fast, hint);
  }
  if (tooLargeToParse(sql)) return answer({ cls: 'write', reason: 'too large to parse' }, hint);
  if (d.tooDeep === true) return answer({ cls: 'write', reason: 'too deeply nested to parse' }, hint);
  return null;
}

/** The answer from the parser's outcome for the text. */
export function classifyParsed(
  outcome: ParseOutcome,
  hint: RoutingHint | null,
  policy: FunctionPolicy,
  stats: ClassifierStats,
): Computed {
  switch (outcome.kind) {
    case 'unavailable':
      return answer({ cls: 'write', reason: 'parser unavailable' }, hint, false);
    case 'crashed':
      // Cached: the same text would only crash the replacement instance too.
      return answer({ cls: 'write', reason: 'unparsable' }, hint);
    case 'rejected':
      stats.parsed++;
      return answer({ cls: 'write', reason: 'unparsable' }, hint);
    case 'parsed': {
      stats.parsed++;
      const verdicts = outcome.stmts.map((raw) =>
        classifyStatement((raw as { stmt?: unknown } | null)?.stmt, policy),
      );
      return answer(combine(verdicts), hint);
    }
  }
}

/** A module function, not a closure per call: the answer is built on every miss. */
function answer(v: Verdict, hint: RoutingHint | null, cacheable = true): Computed {
  return { result: freeze(v.cls, v.reason, hint), cacheable };
}

export function freeze(cls: StatementClass, reason: string, hint: RoutingHint | null): Classification {
  return Object.freeze({ cls, reason, hint });
}
