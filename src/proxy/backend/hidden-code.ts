/**
 * The relations of a database behind which user code runs without the statement's text calling
 * it: views and materialized views (their body), tables with user triggers, rules or row-level
 * security, and tables whose column defaults, generated columns, check constraints or index
 * expressions call a user-defined function; and, since a statement on those reaches them too,
 * tables whose foreign keys cascade into one, and the parents (inheritance, partitioning) of one.
 * And whether an event trigger is enabled (then every command that may fire one is suspect).
 * A statement naming any of them (src/sql/relation-refs.ts) is "not provably free of hidden
 * effects": the session-state check runs before its connection serves another client
 * (src/proxy/session.ts, docs/proxy.md).
 *
 * Loaded from the catalog on a dedicated connection (kept between loads) with search_path pinned
 * to pg_catalog and a fully qualified query, so no client's session state can change its answer. Reloaded after DDL
 * relayed by the proxy and every `hidden_code_refresh_interval` seconds (DDL done elsewhere).
 * While not loaded, after a failed load, or between DDL and the reload, every statement naming a
 * relation outside the system catalogs counts as risky (fail safe).
 */
import { relationRefs } from '../../sql/relation-refs.js';
import type { RelationRefs } from '../../sql/relation-refs.js';
import type { ServerConn } from './server-conn.js';

/** User-defined objects have OIDs from FirstNormalObjectId on; initdb's own are below. */
const FIRST_NORMAL_OBJECT_ID = 16384;

const REGCLASS = (name: string) => `'pg_catalog.${name}'::pg_catalog.regclass`;
const EQ = 'OPERATOR(pg_catalog.=)';
const GE = 'OPERATOR(pg_catalog.>=)';
const GT = 'OPERATOR(pg_catalog.>)';
const NE = 'OPERATOR(pg_catalog.<>)';
const USER_FUNCTION = `d.refclassid ${EQ} ${REGCLASS('pg_proc')} AND d.refobjid ${GE} ${FIRST_NORMAL_OBJECT_ID}::pg_catalog.oid`;

const EVENT_TRIGGER = 'event trigger';
/** The `why` of rows naming relations whose writes may take a sequence value. */
const SEQUENCE = 'sequence';

/** Relations reached by a statement on `<cte>`'s: foreign keys' referenced tables and parents. */
const PARENTS_OF = (cte: string) =>
  `SELECT e.parent FROM ${cte} h JOIN (` +
  `SELECT f.conrelid AS child, f.confrelid AS parent FROM pg_catalog.pg_constraint f WHERE f.contype ${EQ} 'f' ` +
  `UNION ALL SELECT n.inhrelid, n.inhparent FROM pg_catalog.pg_inherits n) e ON e.child ${EQ} h.oid`;

/** One row per relation name: (relname, why); and (NULL, 'event trigger') if any is enabled. */
export const HIDDEN_CODE_QUERY =
  'WITH RECURSIVE hidden(oid, why) AS (' +
  `SELECT c.oid, CASE c.relkind WHEN 'v' THEN 'view' ELSE 'materialized view' END FROM pg_catalog.pg_class c ` +
  `WHERE c.relkind IN ('v', 'm') AND c.oid ${GE} ${FIRST_NORMAL_OBJECT_ID}::pg_catalog.oid ` +
  `UNION SELECT t.tgrelid, 'trigger' FROM pg_catalog.pg_trigger t WHERE NOT t.tgisinternal ` +
  `UNION SELECT r.ev_class, 'rule' FROM pg_catalog.pg_rewrite r WHERE r.rulename ${NE} '_RETURN' ` +
  `AND r.ev_class ${GE} ${FIRST_NORMAL_OBJECT_ID}::pg_catalog.oid ` +
  `UNION SELECT c.oid, 'row-level security' FROM pg_catalog.pg_class c WHERE c.relrowsecurity ` +
  `UNION SELECT a.adrelid, 'a column default or generated column calling a function' ` +
  `FROM pg_catalog.pg_attrdef a JOIN pg_catalog.pg_depend d ON d.classid ${EQ} ${REGCLASS('pg_attrdef')} ` +
  `AND d.objid ${EQ} a.oid WHERE ${USER_FUNCTION} ` +
  `UNION SELECT k.conrelid, 'a constraint calling a function' ` +
  `FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_depend d ON d.classid ${EQ} ${REGCLASS('pg_constraint')} ` +
  `AND d.objid ${EQ} k.oid WHERE k.conrelid ${NE} 0::pg_catalog.oid AND ${USER_FUNCTION} ` +
  `UNION SELECT i.indrelid, 'an index expression calling a function' ` +
  `FROM pg_catalog.pg_index i JOIN pg_catalog.pg_depend d ON d.classid ${EQ} ${REGCLASS('pg_class')} ` +
  `AND d.objid ${EQ} i.indexrelid WHERE ${USER_FUNCTION} ` +
  `UNION SELECT e.parent, 'reaches a relation with hidden code' FROM hidden h JOIN (` +
  `SELECT f.conrelid AS child, f.confrelid AS parent FROM pg_catalog.pg_constraint f WHERE f.contype ${EQ} 'f' ` +
  `UNION ALL SELECT n.inhrelid, n.inhparent FROM pg_catalog.pg_inherits n) e ON e.child ${EQ} h.oid` +
  // Writes that may call nextval() unseen: a column default calling it (serial), an identity
  // column, and what reaches one (a cascading SET DEFAULT, an insert through a parent).
  '), seq(oid) AS (' +
  `SELECT a.adrelid FROM pg_catalog.pg_attrdef a WHERE pg_catalog.strpos(pg_catalog.pg_get_expr(a.adbin, a.adrelid), 'nextval') ${GT} 0 ` +
  `UNION SELECT a.attrelid FROM pg_catalog.pg_attribute a WHERE a.attidentity ${NE} '' AND NOT a.attisdropped ` +
  `UNION ${PARENTS_OF('seq')}` +
  ') SELECT c.relname::pg_catalog.text, pg_catalog.min(h.why) FROM hidden h ' +
  `JOIN pg_catalog.pg_class c ON c.oid ${EQ} h.oid GROUP BY c.relname ` +
  `UNION ALL SELECT DISTINCT c.relname::pg_catalog.text, '${SEQUENCE}' FROM seq s JOIN pg_catalog.pg_class c ON c.oid ${EQ} s.oid ` +
  `UNION ALL SELECT NULL, '${EVENT_TRIGGER}' WHERE EXISTS (SELECT FROM pg_catalog.pg_event_trigger ` +
  `WHERE evtenabled ${NE} 'D')`;

export const NOT_LOADED = 'a relation, while the list of relations with hidden code is not loaded';

export class HiddenCodeRegistry {
  /** Enabled event triggers exist: every command that may fire one is suspect. */
  private eventTriggers = false;
  /** Relation name → why it hides code; null until a load succeeds (or after one failed). */
  private relations: Map<string, string> | null = null;
  /** Relations whose writes may call nextval() (column defaults, identity); null with relations. */
  private sequences: ReadonlySet<string> | null = null;
  private sequencePattern: RegExp | null = null;
  /** Bumped by changed(): a load that started before the change does not count as current. */
  private generation = 0;
  private loadedGeneration = -1;
  private loading: Promise<void> | null = null;
  private again = false;
  private lastLoadStart = Number.NEGATIVE_INFINITY;
  /**
   * Matches every text holding one of the names as an identifier (and some others): a text it
   * does not match needs no lexing. Null: every text is lexed.
   */
  private pattern: RegExp | null = null;
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

  /** Loaded, current, and no relation hides code: statements need not even be lexed. */
  get empty(): boolean {
    return this.current && this.relations!.size === 0 && !this.eventTriggers;
  }

  get current(): boolean {
    return this.relations !== null && this.loadedGeneration === this.generation;
  }

  get size(): number | null {
    return this.relations?.size ?? null;
  }

  /**
   * Why running a statement with these references may run user code through a relation, or
   * null. `uncommittedDdl`: the caller's own transaction changed the schema, which the registry
   * cannot see yet (fail safe for that caller).
   */
  riskOf(refs: RelationRefs, uncommittedDdl = false): string | null {
    const r = this.relations;
    if (r === null || uncommittedDdl || !this.current)
      return refs.userRelation || refs.utility ? NOT_LOADED : null;
    if (this.eventTriggers && refs.utility) return 'a command that may fire an event trigger';
    if (r.size === 0) return null;
    for (const n of refs.names) {
      const why = r.get(n);
      if (why !== undefined) return `relation ${n} (${why})`;
    }
    return null;
  }

  /**
   * riskOf for a statement text: nothing to look for (loaded, no relation hides code) costs no
   * lexing; otherwise one Set lookup per distinct identifier of the text, its identifiers cached
   * by text.
   */
  riskOfText(sql: string, uncommittedDdl = false): string | null {
    if (!uncommittedDdl && this.current && !this.eventTriggers) {
      if (this.relations!.size === 0) return null;
      if (this.pattern && !this.pattern.test(sql)) return null;
    }
    return this.riskOf(cachedRefs(sql), uncommittedDdl);
  }

  /** Some relation's writes may call nextval() (or the registry does not know: fail safe). */
  get mayHaveSequences(): boolean {
    return !this.current || this.sequences === null || this.sequences.size > 0;
  }

  /**
   * Whether a statement text names a relation whose writes may call nextval() unseen (a serial
   * or identity column, a default calling nextval), so that the session may hold sequence state
   * after it (currval, lastval). While not loaded, any user relation counts (fail safe).
   */
  sequenceRiskOfText(sql: string, uncommittedDdl = false): boolean {
    const seqs = this.sequences;
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
      const rows = await this.query();
      const m = new Map<string, string>();
      const seqs = new Set<string>();
      let eventTriggers = false;
      for (const [name, why] of rows) {
        if (name && why === SEQUENCE) seqs.add(name);
        else if (name) m.set(name, why ?? 'hidden code');
        else if (why === EVENT_TRIGGER) eventTriggers = true;
      }
      if (this.lastError !== null) this.onStateChange(null);
      this.relations = m;
      this.sequences = seqs;
      this.sequencePattern = prefilter(seqs);
      this.eventTriggers = eventTriggers;
      this.pattern = prefilter(m.keys());
      this.loadedGeneration = generation;
      this.lastError = null;
      this.loads++;
    } catch (e) {
      // Fail safe: statements naming a non-catalog relation are checked until a load succeeds.
      this.relations = null;
      this.sequences = null;
      const first = this.lastError === null;
      this.lastError = e instanceof Error ? e.message : String(e);
      if (first && !this.closed) this.onStateChange(this.lastError);
    }
  }
}

const MAX_PREFILTER_NAMES = 500;

/**
 * A case-insensitive regular expression that matches any text in which one of `names` could be
 * an identifier token: the name not preceded by a letter or `_` (a token cannot start there) nor
 * followed by a character that would continue it, or `U&`
 * (a Unicode-escaped quoted identifier spells a name differently). A superset of the lexer's
 * answer, never a subset: when a name cannot be matched that way (it holds a `"`, which SQL
 * doubles) or the names are too many for one expression, null (always lex).
 */
export function prefilter(names: Iterable<string>): RegExp | null {
  const parts: string[] = [];
  for (const n of names) {
    if (n.includes('"') || parts.length >= MAX_PREFILTER_NAMES) return null;
    parts.push(n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  }
  if (parts.length === 0) return null;
  return new RegExp(`u&|(?<![\\p{L}_])(?:${parts.join('|')})(?![\\p{L}\\p{N}_$])`, 'iu');
}

/** True when `sql` is a CREATE, ALTER or DROP statement (or holds one): a regex test first. */
export function isDdl(sql: string): boolean {
  return DDL_TEXT.test(sql) && cachedRefs(sql).ddl;
}

const DDL_TEXT = /\b(?:create|alter|drop)\b/i;
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
