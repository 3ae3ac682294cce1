/**
 * What of a database runs user code without the statement's text calling it: relations (a view's
 * body, triggers, rules, row-level security, defaults, checks, index expressions and operator
 * classes calling user functions, foreign tables' wrappers, columns of such types; and the tables
 * reaching one through foreign keys or inheritance), types (user input/output functions, user
 * casts, domains whose checks or defaults call user functions), user operators, functions
 * reachable by attribute notation (`t.f` calls `f(t)`), user casts between built-in types, a
 * `search_path` default (`ALTER ROLE`/`ALTER DATABASE … SET`) that puts a schema before pg_catalog,
 * and enabled event triggers. The catalog query and what each finding means are in
 * hidden-code-query.ts. A statement that may reach any of them, lexically and conservatively
 * (src/sql/relation-refs.ts), is "not provably free of hidden effects": the session-state check
 * runs before its connection serves another client (src/proxy/session.ts, docs/proxy.md).
 *
 * Loaded from the catalog on a dedicated connection (kept between loads) with search_path pinned
 * to pg_catalog and a fully qualified query, so no client's session state can change its answer. Reloaded after DDL
 * relayed by the proxy and every `hidden_code_refresh_interval` seconds (DDL done elsewhere).
 * While not loaded, after a failed load, or between DDL and the reload, every statement that is
 * not bare (`SELECT 1`, `BEGIN`) counts as risky, and so does the default search_path (fail safe).
 */
import { isDdlText, relationRefs } from '../../sql/relation-refs.js';
import type { RelationRefs } from '../../sql/relation-refs.js';
import { searchPathShadowsBuiltins } from '../../sql/session-safety.js';
import { HIDDEN_CODE_QUERY } from './hidden-code-query.js';
import type { ServerConn } from './server-conn.js';

export { HIDDEN_CODE_QUERY } from './hidden-code-query.js';

/** What one load found (see hidden-code-query.ts for each kind). */
interface Found {
  /** Relation or type name → why (`relation v (view)`), matched against every identifier. */
  readonly names: Map<string, string>;
  /** Operator symbols of user operators. */
  readonly operators: Set<string>;
  /** User functions callable with one argument: `x.f` may call them. */
  readonly attributeFunctions: Set<string>;
  /** A user cast function between two built-in types exists: any statement may run it. */
  readonly builtinCasts: boolean;
  /** A role's or the database's default search_path puts a schema before pg_catalog. */
  readonly pathShadows: boolean;
  readonly eventTriggers: boolean;
  /** Relations whose writes may call nextval() unseen (serial, identity, and what reaches one). */
  readonly sequences: Set<string>;
}

export const NOT_LOADED = 'a statement, while the list of hidden code is not loaded';

export class HiddenCodeRegistry {
  /** The last successful load; null until one succeeds (or after one failed). */
  private found: Found | null = null;
  private sequencePattern: RegExp | null = null;
  /** Bumped by changed(): a load that started before the change does not count as current. */
  private generation = 0;
  private loadedGeneration = -1;
  private loading: Promise<void> | null = null;
  private again = false;
  private lastLoadStart = Number.NEGATIVE_INFINITY;
  /**
   * Matches every text holding one of the names as an identifier or one of the operators (and
   * some others): a text it does not match needs no lexing. Null: every text is lexed.
   */
  private pattern: RegExp | null = null;
  /** Loaded, current, and nothing hides code: statements need not even be lexed. */
  private nothing = false;
  /** Kept between loads: a login every few seconds would cost more than the query. */
  private conn: ServerConn | null = null;
  private closed = false;
  /** The last load's error, for logs and SHOW; null after a success. */
  lastError: string | null = null;
  loads = 0;

  /** `open`: a dedicated connection to the database (replaced when its pool is). */
  constructor(
    public open: () => Promise<ServerConn>,
    /** Told when loading starts failing (with the error) and when it works again (null). */
    private readonly onStateChange: (error: string | null) => void = () => undefined,
  ) {}

  /** Loaded, current, and nothing hides code: statements need not even be lexed. */
  get empty(): boolean {
    return this.nothing && this.current;
  }

  get current(): boolean {
    return this.found !== null && this.loadedGeneration === this.generation;
  }

  /** How many relation and type names are listed, or null when not loaded. */
  get size(): number | null {
    return this.found?.names.size ?? null;
  }

  /**
   * The default search_path of a session (what a role or the database sets, when the client sets
   * none) may put a schema before pg_catalog: true also while not loaded (fail safe).
   */
  get defaultPathShadows(): boolean {
    return !this.current || this.found!.pathShadows;
  }

  /**
   * Why running a statement with these references may run user code it does not call, or null.
   * `uncommittedDdl`: the caller's own transaction changed the schema, which the registry cannot
   * see yet (fail safe for that caller).
   */
  riskOf(refs: RelationRefs, uncommittedDdl = false): string | null {
    const f = this.found;
    if (f === null || uncommittedDdl || !this.current) return refs.bare ? null : NOT_LOADED;
    if (f.eventTriggers && refs.utility) return 'a command that may fire an event trigger';
    if (f.builtinCasts && !refs.bare) return 'a user cast between built-in types';
    if (f.names.size > 0)
      for (const n of refs.names) {
        const why = f.names.get(n);
        if (why !== undefined) return why;
      }
    if (f.operators.size > 0) for (const o of refs.operators) if (f.operators.has(o)) return `operator ${o}`;
    if (f.attributeFunctions.size > 0)
      for (const n of refs.dotted)
        if (f.attributeFunctions.has(n)) return `function ${n}() by attribute notation`;
    return null;
  }

  /**
   * riskOf for a statement text: nothing to look for (loaded, nothing hides code) costs no
   * lexing; otherwise a text the names' and operators' regular expression does not match costs
   * one regex test, and the others one lexer pass (cached by text) and Set lookups.
   */
  riskOfText(sql: string, uncommittedDdl = false): string | null {
    if (!uncommittedDdl && this.current) {
      if (this.nothing) return null;
      const f = this.found!;
      if (this.pattern && !f.eventTriggers && !f.builtinCasts && !this.pattern.test(sql)) return null;
    }
    return this.riskOf(cachedRefs(sql), uncommittedDdl);
  }

  /** Some relation's writes may call nextval() (or the registry does not know: fail safe). */
  get mayHaveSequences(): boolean {
    return !this.current || this.found === null || this.found.sequences.size > 0;
  }

  /**
   * Whether a statement text names a relation whose writes may call nextval() unseen (a serial
   * or identity column, a default calling nextval), so that the session may hold sequence state
   * after it (currval, lastval). While not loaded, any user relation counts (fail safe).
   */
  sequenceRiskOfText(sql: string, uncommittedDdl = false): boolean {
    const seqs = this.found?.sequences ?? null;
    if (seqs === null || uncommittedDdl || !this.current) {
      const refs = cachedRefs(sql);
      return refs.userRelation || refs.utility;
    }
    if (seqs.size === 0) return false;
    if (this.sequencePattern && !this.sequencePattern.test(sql)) return false;
    return cachedRefs(sql).names.some((n) => seqs.has(n));
  }

  /** The schema may have changed (DDL committed through the proxy): fail safe until reloaded. */
  changed(): void {
    this.generation++;
    void this.refresh();
  }

  /** Loads once `intervalMs` has passed since the last load started (0: only when not loaded). */
  maybeRefresh(now: number, intervalMs: number): void {
    if (this.loading) return;
    if (this.current && (intervalMs <= 0 || now - this.lastLoadStart < intervalMs)) return;
    void this.refresh();
  }

  /** Loads the registry now (or once more after the load under way). Never rejects. */
  refresh(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.loading = this.load().finally(() => {
      this.loading = null;
      if (this.again) {
        this.again = false;
        void this.refresh();
      }
    });
    return this.loading;
  }

  /** Closes its connection; later loads open none. */
  close(): void {
    this.closed = true;
    this.conn?.close();
    this.conn = null;
  }

  /** The catalog query's rows, on the kept connection, or on a fresh one if that one fails. */
  private async query(): Promise<(string | null)[][]> {
    for (let attempt = 0; ; attempt++) {
      const reused = this.conn !== null && !this.conn.closed;
      if (!reused) {
        this.conn?.close();
        this.conn = null;
        const c = await this.open();
        if (this.closed) {
          c.close();
          throw new Error('the proxy is shutting down');
        }
        this.conn = c;
      }
      try {
        const r = await this.conn!.query(HIDDEN_CODE_QUERY, 30_000);
        if (r.error)
          throw new Error(r.error.fields.find((f) => f.code === 'M')?.value ?? 'the catalog query failed');
        return r.rows;
      } catch (e) {
        this.conn?.close();
        this.conn = null;
        if (!reused || attempt > 0) throw e;
      }
    }
  }

  private async load(): Promise<void> {
    const generation = this.generation;
    this.lastLoadStart = performance.now();
    try {
      const found = foundOf(await this.query());
      if (this.lastError !== null) this.onStateChange(null);
      this.found = found;
      this.nothing =
        found.names.size === 0 &&
        found.operators.size === 0 &&
        found.attributeFunctions.size === 0 &&
        !found.builtinCasts &&
        !found.eventTriggers;
      this.pattern = prefilter([...found.names.keys(), ...found.attributeFunctions], found.operators);
      this.sequencePattern = prefilter(found.sequences);
      this.loadedGeneration = generation;
      this.lastError = null;
      this.loads++;
    } catch (e) {
      // Fail safe: statements that are not bare are checked until a load succeeds.
      this.found = null;
      const first = this.lastError === null;
      this.lastError = e instanceof Error ? e.message : String(e);
      if (first && !this.closed) this.onStateChange(this.lastError);
    }
  }
}

/** The catalog query's rows `(kind, name, why)` as a Found. */
export function foundOf(rows: readonly (readonly (string | null)[])[]): Found {
  const names = new Map<string, string>();
  const operators = new Set<string>();
  const attributeFunctions = new Set<string>();
  let builtinCasts = false;
  let pathShadows = false;
  let eventTriggers = false;
  const sequences = new Set<string>();
  for (const [kind, name, why] of rows) {
    if (kind === 'n' && name) {
      if (!names.has(name)) names.set(name, why ?? name);
    } else if (kind === 'o' && name) operators.add(name);
    else if (kind === 'a' && name) attributeFunctions.add(name);
    else if (kind === 'c') builtinCasts = true;
    else if (kind === 's' && why && searchPathShadowsBuiltins(why)) pathShadows = true;
    else if (kind === 'e') eventTriggers = true;
    else if (kind === 'q' && name) sequences.add(name);
  }
  return { names, operators, attributeFunctions, builtinCasts, pathShadows, eventTriggers, sequences };
}

const MAX_PREFILTER_NAMES = 500;

/**
 * A case-insensitive regular expression that matches any text in which one of `names` could be
 * an identifier token: the name not preceded by a letter or `_` (a token cannot start there) nor
 * followed by a character that would continue it, or `U&`
 * (a Unicode-escaped quoted identifier spells a name differently). A superset of the lexer's
 * answer, never a subset: when a name cannot be matched that way (it holds a `"`, which SQL
 * doubles) or the names are too many for one expression, null (always lex). Each of `operators`
 * matches wherever its symbol occurs (an operator token is a substring of the text).
 */
export function prefilter(names: Iterable<string>, operators: Iterable<string> = []): RegExp | null {
  const parts: string[] = [];
  for (const n of names) {
    if (n.includes('"') || parts.length >= MAX_PREFILTER_NAMES) return null;
    parts.push(escape(n));
  }
  const ops: string[] = [];
  for (const o of operators) {
    if (parts.length + ops.length >= MAX_PREFILTER_NAMES) return null;
    ops.push(escape(o));
  }
  if (parts.length === 0 && ops.length === 0) return null;
  const alternatives = ['u&'];
  if (parts.length > 0) alternatives.push(`(?<![\\p{L}_])(?:${parts.join('|')})(?![\\p{L}\\p{N}_$])`);
  if (ops.length > 0) alternatives.push(...ops);
  return new RegExp(alternatives.join('|'), 'iu');
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** True when `sql` is a CREATE, ALTER or DROP statement (or holds one): a regex test first. */
export function isDdl(sql: string): boolean {
  return isDdlText(sql, cachedRefs);
}

const REFS_CACHE_SIZE = 2000;
const REFS_CACHE_MAX_KEY = 16 * 1024;
const refsCache = new Map<string, RelationRefs>();

/** relationRefs by text, cached: drivers send the same few texts over and over. */
export function cachedRefs(sql: string): RelationRefs {
  let r = refsCache.get(sql);
  if (r !== undefined) return r;
  r = relationRefs(sql);
  if (sql.length > REFS_CACHE_MAX_KEY) return r;
  if (refsCache.size >= REFS_CACHE_SIZE) refsCache.delete(refsCache.keys().next().value!);
  refsCache.set(sql, r);
  return r;
}
