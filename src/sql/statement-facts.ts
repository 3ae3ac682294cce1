/**
 * Everything the proxy asks of one SQL text, each member computed on first access and memoized
 * on the object (see analyze.ts for the cache that keeps one object per text). The hot path pays
 * only for what it asks: a proxy without replicas never asks `classification`, most texts never
 * need their tokens for `effects` (a regex proves them free first), and the parse-tree members
 * (`statements` … `transaction`) are read for sharding only.
 *
 * Each member has exactly the semantics of the function it replaces: `classification` is
 * Classifier.classify's answer (an answer given while the parser is unavailable is not memoized:
 * the next access computes it again); `effects` is sessionEffects (the shared empty array when
 * cannotChangeSession proves there are none); `risk`, `runsUserCode` and `mayHideEffects` are
 * those of session-safety.ts; `refs` is relationRefs and `ddl` is isDdlText.
 *
 * A text is lexed at most once for all the members that read tokens, and parsed at most once for
 * classification and the tree members: the tokens and the parse outcome are held by the object
 * while members that need them are still to be computed, by at most one object per analyzer at a
 * time (the last one that lexed or parsed; the next one makes it drop them), and dropped as soon
 * as every member that needs them is computed, so 5,000 cached objects never keep token arrays
 * or trees alive.
 *
 * The tree members describe the FIRST statement of the text only (`statements` tells how many
 * there are). They are null when the text is too large or too deeply nested to parse, or the
 * parser rejected it; null and not memoized while the parser is unavailable.
 */
import { lex } from './lexer.js';
import type { TokenList } from './token-list.js';
import { classifyParsed, classifyUnparsed, digestTokens, freeze } from './classify.js';
import type { ClassifierStats, Computed, TokenDigest } from './classify.js';
import type { Classification } from './classification.js';
import type { FunctionPolicy } from './read-only-functions.js';
import { parseStatements } from './pg-parser.js';
import type { ParseOutcome } from './pg-parser.js';
import { tooDeepToParse, tooLargeToParse } from './parse-guard.js';
import { cannotChangeSession, sessionEffectsOf } from './session-effects.js';
import type { SessionEffect } from './session-effect.js';
import { mayHideEffects, riskOf } from './session-safety.js';
import { isDdlText, relationRefsOf } from './relation-refs.js';
import type { RelationRefs } from './relation-refs.js';
import { structureOf } from './statement-shape.js';
import type {
  CopyFacts,
  DdlKind,
  Equality,
  InsertFacts,
  RelationRef,
  SelectShape,
  Structure,
  TransactionKind,
} from './statement-shape.js';

export interface AnalyzerStats extends ClassifierStats {
  /** analyze() calls answered from the cache. */
  cacheHits: number;
  /** analyze() calls that made a new facts object (new text, or one too long to cache). */
  cacheMisses: number;
  /** Texts lexed (once per facts object at most, unless its tokens were dropped and asked again). */
  lexed: number;
}

/** What the facts objects of one analyzer share. */
export interface AnalysisContext {
  readonly policy: FunctionPolicy;
  readonly fastPath: boolean;
  readonly stats: AnalyzerStats;
  /** The one facts object holding tokens or a parse outcome, if any. */
  holder: StatementFacts | null;
}

/** The effects of a text that cannot change session state; shared, frozen. */
export const NO_EFFECTS: readonly SessionEffect[] = Object.freeze([]);

const SEQUENCE_CALL = /nextval|setval/i;
const LISTS_STATEMENTS = /pg_prepared_statements/i;
const COMMITS = /^\s*(commit|end)\b(?!\s+prepared)/i;

export class StatementFacts {
  private tokenList: TokenList | null = null;
  private outcome: ParseOutcome | null = null;
  private digest: TokenDigest | undefined = undefined;
  private deep: boolean | undefined = undefined;
  private cls: Classification | undefined = undefined;
  private fx: readonly SessionEffect[] | undefined = undefined;
  private riskReason: string | null | undefined = undefined;
  private userCode: boolean | undefined = undefined;
  private hides: boolean | undefined = undefined;
  private relationRefs: RelationRefs | undefined = undefined;
  private isDdl: boolean | undefined = undefined;
  private seq: boolean | undefined = undefined;
  private lists: boolean | undefined = undefined;
  private commit: boolean | undefined = undefined;
  private struct: Structure | null | undefined = undefined;

  constructor(
    readonly sql: string,
    private readonly ctx: AnalysisContext,
  ) {}

  /** Classifier.classify's answer, with its policy and stats. */
  get classification(): Classification {
    const known = this.cls;
    if (known !== undefined) {
      this.ctx.stats.hits++;
      return known;
    }
    const stats = this.ctx.stats;
    stats.misses++;
    let computed: Computed;
    try {
      const d = (this.digest ??= this.takeDigest());
      computed =
        classifyUnparsed(this.sql, d, stats) ?? classifyParsed(this.parsed(), d.hint, this.ctx.policy, stats);
    } catch {
      // Not expected (every step returns values), but a proxy must not fall over on client text.
      computed = { result: freeze('write', 'unclassifiable', null), cacheable: false };
    }
    if (computed.cacheable) this.cls = computed.result;
    this.releaseIfDone();
    return computed.result;
  }

  /** One effect per statement (sessionEffects), or NO_EFFECTS when cannotChangeSession. */
  get effects(): readonly SessionEffect[] {
    if (this.fx === undefined) {
      this.fx = cannotChangeSession(this.sql) ? NO_EFFECTS : sessionEffectsOf(this.tokens());
      this.releaseIfDone();
    }
    return this.fx;
  }

  /** False when the text certainly calls nothing and runs no hidden SQL (a regex test). */
  get mayHideEffects(): boolean {
    return (this.hides ??= mayHideEffects(this.sql));
  }

  /** hiddenEffectRisk: why the text may change session state unseen, or null. */
  get risk(): string | null {
    if (this.riskReason === undefined) {
      this.riskReason = this.mayHideEffects ? riskOf(this.tokens(), false) : null;
      this.releaseIfDone();
    }
    return this.riskReason;
  }

  /** runsUserCode: a DO block, CALL, or a function not provably built-in. */
  get runsUserCode(): boolean {
    if (this.userCode === undefined) {
      this.userCode = this.mayHideEffects ? riskOf(this.tokens(), true) !== null : false;
      this.releaseIfDone();
    }
    return this.userCode;
  }

  /** relationRefs of the text. */
  get refs(): RelationRefs {
    if (this.relationRefs === undefined) {
      this.relationRefs = relationRefsOf(this.tokens());
      this.releaseIfDone();
    }
    return this.relationRefs;
  }

  /** A CREATE, ALTER or DROP statement, or a text holding one (a regex test first). */
  get ddl(): boolean {
    return (this.isDdl ??= isDdlText(this.sql, () => this.refs));
  }

  /** The text mentions nextval or setval. */
  get sequenceCall(): boolean {
    return (this.seq ??= SEQUENCE_CALL.test(this.sql));
  }

  /** The text mentions pg_prepared_statements. */
  get listsStatements(): boolean {
    return (this.lists ??= LISTS_STATEMENTS.test(this.sql));
  }

  /** The text starts with COMMIT or END (not COMMIT PREPARED). */
  get commits(): boolean {
    return (this.commit ??= COMMITS.test(this.sql));
  }

  /** Statements in the text; null when it could not be parsed. */
  get statements(): number | null {
    return this.structure()?.statements ?? null;
  }

  /** Relations the first statement reads or writes. */
  get relations(): readonly RelationRef[] | null {
    return this.structure()?.relations ?? null;
  }

  /** `column = constant | $n` (and IN lists) at the top AND level of the first statement's WHERE. */
  get equalities(): readonly Equality[] | null {
    return this.structure()?.equalities ?? null;
  }

  get insert(): InsertFacts | null {
    return this.structure()?.insert ?? null;
  }

  get shape(): SelectShape | null {
    return this.structure()?.shape ?? null;
  }

  get ddlKind(): DdlKind | null {
    return this.structure()?.ddlKind ?? null;
  }

  get copy(): CopyFacts | null {
    return this.structure()?.copy ?? null;
  }

  get transaction(): TransactionKind | null {
    return this.structure()?.transaction ?? null;
  }

  private structure(): Structure | null {
    if (this.struct !== undefined) return this.struct;
    let result: Structure | null = null;
    let memo = true;
    if (this.tokensEmpty()) {
      result = structureOf([]);
    } else if (!tooLargeToParse(this.sql) && !this.tooDeep()) {
      const outcome = this.parsed();
      if (outcome.kind === 'parsed') result = structureOf(outcome.stmts);
      else memo = outcome.kind !== 'unavailable';
    }
    if (memo) this.struct = result;
    this.releaseIfDone();
    return result;
  }

  /** Nothing but white space and comments (the parser rejects such text). */
  private tokensEmpty(): boolean {
    return this.digest?.empty ?? this.tokens().count === 0;
  }

  private tooDeep(): boolean {
    if (this.deep === undefined) this.deep = tooDeepToParse(this.tokens());
    return this.deep;
  }

  private takeDigest(): TokenDigest {
    const d = digestTokens(this.tokens(), this.ctx.fastPath);
    if (d.tooDeep !== null) this.deep = d.tooDeep;
    return d;
  }

  private tokens(): TokenList {
    if (this.tokenList === null) {
      this.tokenList = lex(this.sql);
      this.ctx.stats.lexed++;
      this.hold();
    }
    return this.tokenList;
  }

  /** The parse outcome, parsed once; an `unavailable` outcome is not kept. */
  private parsed(): ParseOutcome {
    if (this.outcome !== null) return this.outcome;
    const outcome = parseStatements(this.sql);
    if (outcome.kind !== 'unavailable') {
      this.outcome = outcome;
      this.hold();
    }
    return outcome;
  }

  private hold(): void {
    const prev = this.ctx.holder;
    if (prev !== this) {
      prev?.release();
      this.ctx.holder = this;
    }
  }

  private release(): void {
    this.tokenList = null;
    this.outcome = null;
    if (this.ctx.holder === this) this.ctx.holder = null;
  }

  /** Drops tokens and tree once nothing left to compute can need them. */
  private releaseIfDone(): void {
    if (this.tokenList === null && this.outcome === null) return;
    const tokensDone =
      this.digest !== undefined &&
      this.fx !== undefined &&
      this.riskReason !== undefined &&
      this.userCode !== undefined &&
      this.relationRefs !== undefined &&
      (this.deep !== undefined || this.struct !== undefined);
    const treeDone = this.cls !== undefined && this.struct !== undefined;
    if (tokensDone) this.tokenList = null;
    if (treeDone) this.outcome = null;
    if (this.tokenList === null && this.outcome === null && this.ctx.holder === this) this.ctx.holder = null;
  }
}
