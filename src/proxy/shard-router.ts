/**
 * A sharded database's routing, as sessions ask it (DatabaseSharding): a statement text is
 * planned once per catalog version (sharding/shard-plan.ts, cached here by text) and resolved per
 * execution with its Bind values and PostgreSQL's partition hash (sharding/hash.ts). The
 * planner's answer becomes a ShardTarget:
 *
 * - one group → that group (reads and writes on its primary);
 * - no distributed or reference table: the database's own group (group 0) when the text names a
 *   relation or is DDL, anywhere otherwise (BEGIN, SET, SELECT now(): they follow the session);
 * - reference tables only, read → anywhere;
 * - writes to reference tables, DDL on distributed or reference tables, multi-row INSERTs split
 *   by group → 'host': the program that owns the proxy runs them on every group concerned with
 *   two-phase commit (runHost; sharding/every-group.ts);
 * - COPY … FROM STDIN into a distributed or reference table → 'copy': the host splits its rows
 *   by group (sharding/copy-in.ts);
 * - a read that needs several groups → 'global': group 0 runs it over the global tables (every
 *   group's shards through postgres_fdw), its text rewritten to name them (sharding/global-*.ts);
 *   or, when its distributed tables are one key class and its shape allows (aggregates, GROUP BY,
 *   DISTINCT, ORDER BY … LIMIT), 'host' with a 'scatter' work: every group runs it over its own
 *   shards and group 0 combines their rows (sharding/scatter-*.ts), the 'global' target kept for
 *   inside a transaction block;
 * - what else needs several groups → refused
 *   with 0A000 naming the reason until the executor for it exists (issue #16), never a partial
 *   answer.
 *
 * The Citus API calls are run by the program that owns the proxy too (runApi).
 */
import { apiCallOf } from '../sharding/api-call.js';
import { forced } from '../sharding/copy-options.js';
import { rewriteForGlobal } from '../sharding/global-rewrite.js';
import { relKey } from '../sharding/types.js';
import type { CopyInStart, CopyInWork } from '../sharding/copy-in.js';
import { isViewRead } from '../sharding/citus-views.js';
import { hashRemainder } from '../sharding/hash.js';
import { catalogSchemas, plannerPath, type SessionSearchPath } from '../sharding/search-path.js';
import { mayNameCatalogTable, resolveShards, shardKeyPlan, usesParams } from '../sharding/shard-plan.js';
import type { KeyPlan, ShardRoute } from '../sharding/shard-plan.js';
import type { Catalog, ColumnValue, DistributedTable } from '../sharding/types.js';
import { LruCache } from '../sql/lru-cache.js';
import { relationRefs } from '../sql/relation-refs.js';
import { SqlState } from '../protocol/sqlstate.js';
import type { EveryGroupWork } from '../sharding/every-group.js';
import { apiError } from './sharding.js';
import type { DatabaseSharding } from './sharding.js';
import type { ShardTarget } from './session/shard-target.js';
import type { ExplainNote } from './session/explain-note.js';
import { explainFormat, routeFacts } from '../sharding/explain-route.js';
import { ANY, HOME } from './session/shard-target.js';
import { ShapePlans } from './shard-shapes.js';
import { ShardHolds } from './shard-hold.js';
import type { ShardHold } from './shard-hold.js';
import type { TxDecider } from './session/multi-group.js';
import { planScatter, type ScatterPlan } from '../sharding/scatter-plan.js';

/** Plans kept per text (the classifier's cache holds 5,000; plans are smaller). */
const PLAN_CACHE_ENTRIES = 5000;

/** Distinct (search_path, user) pairs remembered per catalog version. */
const PATHS_KEPT = 1000;

const NEEDS_PARAMS: ShardTarget = { kind: 'needs-params' };
const LOCAL_ROUTE: ShardRoute = { kind: 'local' };

interface Planned {
  readonly version: number;
  readonly plan: KeyPlan;
  /** The plan's answer does not depend on Bind values: its target, made once. */
  readonly fixed: ShardTarget | null;
  readonly usesParams: boolean;
}

/** Which distributed tables have a global table on group 0, for which catalog version. */
export interface GlobalTables {
  readonly version: number;
  readonly tables: ReadonlySet<string>;
}

export class ShardRouter implements DatabaseSharding {
  private readonly plans = new LruCache<Planned>(PLAN_CACHE_ENTRIES);
  private readonly noTable = new LruCache<boolean>(PLAN_CACHE_ENTRIES);
  /** Per session search_path and user: the schemas the planner looks names up in (null: public only). */
  private readonly paths = new Map<string, readonly string[] | null>();
  /** The catalog version `paths` and `onlyPublic` are for. */
  private pathsVersion = -1;
  /** Every catalog table is in `public`: the default search_path plans as public only. */
  private onlyPublic = true;
  /** Plans by literal shape, for texts with their values inline (shard-shapes.ts). */
  private readonly shapes = new ShapePlans(PLAN_CACHE_ENTRIES);
  /** Texts rewritten for the global tables, by plan key ('' when one cannot be). */
  private readonly globalTexts = new LruCache<{ readonly version: number; readonly text: string }>(
    PLAN_CACHE_ENTRIES,
  );

  /** Fast-path targets by the general path's text that stands for them on group 0. */
  private readonly byGlobalText = new LruCache<{ readonly version: number; readonly target: ShardTarget }>(
    PLAN_CACHE_ENTRIES,
  );
  /** Fast-path plans by text (null: the general path answers it). */
  private readonly scatterPlans = new LruCache<{
    readonly version: number;
    readonly plan: ScatterPlan | null;
  }>(PLAN_CACHE_ENTRIES);

  constructor(
    /** The newest catalog, or null while it is not known (then every statement is refused). */
    private readonly catalog: () => Catalog | null,
    /** Runs an API call's text for a user: its replies (ending with ReadyForQuery). */
    private readonly runApi: (sql: string, user: string, searchPath?: string) => Promise<Buffer[]>,
    /** A distributed table's columns in order (`INSERT INTO t VALUES …` names none), if known. */
    private readonly columnsOf: (t: DistributedTable) => readonly string[] | null = () => null,
    /** Runs a statement on several groups for a user: its replies (ending with ReadyForQuery). */
    private readonly runHost: (work: EveryGroupWork, user: string) => Promise<Buffer[]> = () =>
      Promise.resolve(apiError('0A000', 'statements on several groups are not supported here')),
    /** Starts a COPY … FROM STDIN split by row (sharding/copy-in.ts). */
    private readonly runCopy: (work: CopyInWork, user: string) => Promise<CopyInStart> = () =>
      Promise.resolve({
        ok: false,
        replies: apiError('0A000', 'COPY into catalog tables is not supported here'),
      }),
    /** A table's columns as COPY without a column list takes them (generated columns left out). */
    private readonly copyColumnsOf: ColumnsOf = () => null,
    /** The global tables built on group 0 (null: none yet): reads across groups use them. */
    private readonly globalTables: () => GlobalTables | null = () => null,
    /** A call of a user function that reads distributed tables (null: there is none). */
    private readonly functionCalls: () => RegExp | null = () => null,
    /** Records the decisions of transactions that wrote on several groups (null: none may). */
    readonly decider: TxDecider | null = null,
    /** Shards held for a move's cutover (shard-hold.ts). */
    readonly holds: ShardHolds = new ShardHolds(),
    /**
     * A rebuild of the global tables for a newer catalog is on its way (after a shard move, say):
     * reads that need them wait for it instead of being refused. Null: none.
     */
    private readonly globalPending: () => ShardHold | null = () => null,
  ) {}

  /** The tables' columns changed (plans made without them are dropped). */
  columnsChanged(): void {
    this.plans.clear();
    this.shapes.clear();
  }

  get active(): boolean {
    const c = this.catalog();
    return c === null || c.tables.size > 0;
  }

  isApi(sql: string): boolean {
    return apiCallOf(sql) !== null;
  }

  api(sql: string, user: string, searchPath?: string): Promise<Buffer[]> {
    return this.runApi(sql, user, searchPath);
  }

  host(work: EveryGroupWork, user: string): Promise<Buffer[]> {
    return this.runHost(work, user);
  }

  copyIn(work: CopyInWork, user: string): Promise<CopyInStart> {
    return this.runCopy(work, user);
  }

  /** The route an EXPLAIN shows (sharding/explain-route.ts); null for what is not one EXPLAIN. */
  explain(sql: string, params: readonly (ColumnValue | null)[]): ExplainNote | null {
    const format = explainFormat(sql);
    const catalog = this.catalog();
    if (format === null || catalog === null) return null;
    const plan = mayNameCatalogTable(sql, catalog) ? this.planned(sql, catalog, null).plan : null;
    const route = plan === null ? LOCAL_ROUTE : resolveShards(plan, params, hashRemainder);
    const facts = routeFacts(plan, route, params, catalog);
    return facts === null ? null : { format, facts };
  }

  target(sql: string, params: readonly (ColumnValue | null)[] | null, path?: SessionSearchPath): ShardTarget {
    const t = this.targetNow(sql, params, path);
    return this.holds.active ? this.heldOr(t, sql, params, path) : t;
  }

  /**
   * `t`, or the hold it waits for (shard-hold.ts): a statement on one group when its shards are
   * held there, a statement on several groups while any shard is held.
   */
  private heldOr(
    t: ShardTarget,
    sql: string,
    params: readonly (ColumnValue | null)[] | null,
    path?: SessionSearchPath,
  ): ShardTarget {
    if (t.kind === 'host' || t.kind === 'copy' || t.kind === 'global') {
      if (t.kind === 'host' && t.work.kind === 'views') return t;
      const h = this.holds.any();
      return h === null ? t : { kind: 'held', hold: h };
    }
    if (t.kind !== 'group') return t;
    const catalog = this.catalog();
    if (catalog === null) return t;
    const schemas = path === undefined ? null : this.schemasFor(path, catalog);
    let p = this.plans.get(planKey(sql, schemas));
    if (p === undefined || p.version !== catalog.version) p = this.planned(sql, catalog, schemas);
    const route = p.plan.kind === 'fixed' ? p.plan.route : resolveShards(p.plan, params ?? [], hashRemainder);
    const h = route.kind === 'one' ? this.holds.forRoute(route) : this.holds.anyOn(t.group);
    if (h === null) return t;
    h.waited++;
    return { kind: 'held', hold: h };
  }

  private targetNow(
    sql: string,
    params: readonly (ColumnValue | null)[] | null,
    path?: SessionSearchPath,
  ): ShardTarget {
    const catalog = this.catalog();
    if (catalog === null) return CATALOG_UNKNOWN;
    if (isViewRead(sql)) return VIEWS_READ(sql);
    const calls = this.functionCalls();
    if (calls !== null) {
      const m = calls.exec(sql);
      if (m !== null) return functionRefusal(m[1]!);
    }
    const schemas = path === undefined ? null : this.schemasFor(path, catalog);
    const back = this.byGlobalText.get(sql);
    if (back !== undefined && back.version === catalog.version && schemas === null) return back.target;
    // A text planned before (a prepared statement, the extended protocol) needs no pre-check.
    let p = this.plans.get(planKey(sql, schemas));
    if (p === undefined || p.version !== catalog.version) {
      if (!mayNameCatalogTable(sql, catalog)) return this.localTarget(sql);
      p = this.planned(sql, catalog, schemas);
    }
    if (p.fixed !== null) {
      if (p.plan.kind === 'fixed' && p.plan.route.kind === 'multi' && !p.plan.writes)
        return this.fast(this.global(sql, catalog, schemas, p.fixed), sql, catalog, schemas, p.plan.route);
      return p.fixed === HOME ? this.localTarget(sql) : p.fixed;
    }
    if (params === null && p.usesParams) return NEEDS_PARAMS;
    const route = resolveShards(p.plan, params ?? [], hashRemainder);
    const t = targetOf(route, sql, this.copyColumnsOf, p.plan.writes);
    if (route.kind === 'multi' && !p.plan.writes)
      return this.fast(this.global(sql, catalog, schemas, t), sql, catalog, schemas, route);
    return t === HOME ? this.localTarget(sql) : t;
  }

  /**
   * A read that needs several groups: group 0 over the global tables (sharding/global-tables.ts)
   * when they are ready for this catalog and the text can be rewritten safely; else `otherwise`.
   * The rewrite needs where this very text names its tables, so it plans the text itself (a plan
   * shared by literal shape holds another text's positions), once per text.
   */
  private global(
    sql: string,
    catalog: Catalog,
    schemas: readonly string[] | null,
    otherwise: ShardTarget,
  ): ShardTarget {
    const ready = this.globalTables();
    if (ready === null || ready.version !== catalog.version) {
      const pending = this.globalPending();
      return pending === null ? GLOBAL_NOT_READY : { kind: 'held', hold: pending };
    }
    const key = planKey(sql, schemas);
    let hit = this.globalTexts.get(key);
    if (hit === undefined || hit.version !== catalog.version) {
      const plan = shardKeyPlan(sql, catalog, {
        columnsOf: this.columnsOf,
        ...(schemas === null ? {} : { searchPath: schemas }),
      });
      const occs = plan.kind === 'statements' ? undefined : plan.global;
      const usable = occs !== undefined && occs.every((o) => ready.tables.has(relKey(o.table.rel)));
      hit = { version: catalog.version, text: usable ? (rewriteForGlobal(sql, occs, catalog) ?? '') : '' };
      this.globalTexts.set(key, hit);
    }
    if (hit.text === '') return otherwise;
    return { kind: 'global', text: hit.text };
  }

  /**
   * A read across groups whose distributed tables are one key class: the fast path
   * (sharding/scatter-plan.ts) when its shape allows, run by the host on every group and
   * combined on group 0; `general` (the global tables) otherwise, and inside a transaction block
   * (the target carries it: the session's own transaction must see its own writes). Only for the
   * default search_path: the host's sessions have no other.
   */
  private fast(
    general: ShardTarget,
    sql: string,
    catalog: Catalog,
    schemas: readonly string[] | null,
    route: ShardRoute,
  ): ShardTarget {
    if (general.kind !== 'global' || route.kind !== 'multi' || route.pushdown !== true || schemas !== null)
      return general;
    let hit = this.scatterPlans.get(sql);
    if (hit === undefined || hit.version !== catalog.version) {
      hit = { version: catalog.version, plan: planScatter(sql, catalog) };
      this.scatterPlans.set(sql, hit);
    }
    if (hit.plan === null) return general;
    const work = {
      kind: 'scatter',
      sql,
      plan: hit.plan,
      groups: route.groups,
      home: catalog.groups[0]!,
      global: general.text,
    } as const;
    // The general text, prepared on group 0 in its place (a Parse alone), comes back here when
    // bound: the fast path again, or inside a transaction block group 0 itself.
    this.byGlobalText.set(general.text, {
      version: catalog.version,
      target: { kind: 'host', reason: 'a read across groups', work, general: HOME },
    });
    return { kind: 'host', reason: 'a read across groups', work, general };
  }

  /**
   * The schemas the planner looks unqualified names up in for a session's search_path, or null
   * for `public` only (the default path while every catalog table is in public: no cost).
   */
  private schemasFor(path: SessionSearchPath, catalog: Catalog): readonly string[] | null {
    if (this.pathsVersion !== catalog.version) {
      this.paths.clear();
      this.pathsVersion = catalog.version;
      const schemas = catalogSchemas(catalog);
      this.onlyPublic = schemas.size === 1 && schemas.has('public');
    }
    if (path.value === undefined && this.onlyPublic) return null;
    const memo = path.memo;
    if (memo !== undefined && memo.version === catalog.version) return memo.schemas;
    const key = `${path.value ?? '\u0000'}\u0000${path.user}`;
    let schemas = this.paths.get(key);
    if (schemas === undefined) {
      const p = plannerPath(path.value, path.user, catalog);
      schemas = p.length === 1 && p[0] === 'public' ? null : p;
      if (this.paths.size >= PATHS_KEPT) this.paths.clear();
      this.paths.set(key, schemas);
    }
    path.memo = { version: catalog.version, schemas };
    return schemas;
  }

  /** The plan of a text not in the text cache (or planned under an older catalog). */
  private planned(sql: string, catalog: Catalog, schemas: readonly string[] | null): Planned {
    const options = { columnsOf: this.columnsOf, ...(schemas === null ? {} : { searchPath: schemas }) };
    // The plan depends on the search path only when it is not plain `public`: then the cache
    // keys start with its schemas.
    const scope = schemas === null ? '' : `${schemas.join('\u0000')}\u0001`;
    const byShape = this.shapes.plan(
      sql,
      catalog.version,
      (text) => shardKeyPlan(text, catalog, options),
      scope,
    );
    const plan = byShape?.plan ?? shardKeyPlan(sql, catalog, options);
    const p: Planned = {
      version: catalog.version,
      plan,
      // Transaction control and settings (neutral) follow the session, wherever it is.
      fixed:
        plan.kind === 'fixed'
          ? plan.neutral === true
            ? ANY
            : targetOf(plan.route, sql, this.copyColumnsOf, plan.writes)
          : null,
      usesParams: usesParams(plan),
    };
    // A plan shared by its shape is not kept by text: those texts rarely come back.
    if (byShape?.shared !== true && (plan.kind !== 'fixed' || plan.cacheable))
      this.plans.set(planKey(sql, schemas), p);
    return p;
  }

  /**
   * A statement on no distributed or reference table: group 0's when it names a relation (a
   * local table) or is DDL; else it follows the session (BEGIN, SET, SELECT now()).
   */
  private localTarget(sql: string): ShardTarget {
    let none = this.noTable.get(sql);
    if (none === undefined) {
      const r = relationRefs(sql);
      none = !r.userRelation && !r.ddl;
      this.noTable.set(sql, none);
    }
    return none ? ANY : HOME;
  }
}

/** A read of citus_tables / citus_shards: the host answers it on group 0 with the views in front. */
const VIEWS_READ = (sql: string): ShardTarget => ({
  kind: 'host',
  reason: 'a read of citus_tables or citus_shards',
  work: { kind: 'views', sql },
});

/** A call of a function whose body reads distributed tables: it would read one group's rows only. */
function functionRefusal(name: string): ShardTarget {
  return {
    kind: 'refuse',
    sqlstate: SqlState.FEATURE_NOT_SUPPORTED,
    message: `function ${name}() reads a distributed table, and pgscale does not look into functions: its call would see one group's rows only`,
  };
}

const GLOBAL_NOT_READY: ShardTarget = {
  kind: 'refuse',
  sqlstate: SqlState.FEATURE_NOT_SUPPORTED,
  message:
    'this read needs several groups: it runs over the global tables on group 0, which are not built for the current catalog yet (the controller log says why); try again',
};

const CATALOG_UNKNOWN: ShardTarget = {
  kind: 'refuse',
  sqlstate: SqlState.CANNOT_CONNECT_NOW,
  message: 'the sharding catalog is not loaded yet (is the state store reachable?); try again',
};

/** The session's target for a planner's route of statement `sql`. */
/** The plan caches' key of `sql` under a search path's schemas (a text cannot start with U+0001). */
function planKey(sql: string, schemas: readonly string[] | null): string {
  return schemas === null ? sql : `${schemas.join('\u0000')}\u0001${sql}`;
}

function targetOf(r: ShardRoute, sql: string, copyColumnsOf: ColumnsOf, writes = false): ShardTarget {
  switch (r.kind) {
    case 'local':
      return HOME;
    case 'one':
      return { kind: 'group', group: r.group };
    case 'reference-read':
      return ANY;
    case 'error':
      return { kind: 'refuse', sqlstate: r.sqlstate, message: r.message };
    case 'copy-in':
      return copyTarget(r, sql, copyColumnsOf);
    case 'all':
      return {
        kind: 'host',
        reason: r.reason,
        work: {
          kind: 'all',
          sql,
          reason: r.reason,
          compare: r.written ?? [],
          ...(r.dropIndex === true ? { dropIndex: true } : {}),
        },
      };
    case 'split-insert': {
      const reason = `the rows of this INSERT belong to ${r.parts.length} groups`;
      return { kind: 'host', reason, work: { kind: 'split', sql, parts: r.parts } };
    }
    case 'multi':
      if (r.pushdown === true && writes)
        return {
          kind: 'host',
          reason: `a write on every group (${r.reason})`,
          work: { kind: 'all', sql, reason: r.reason, compare: [], distributed: true },
        };
      return notYet(r.reason);
  }
}

type ColumnsOf = (t: DistributedTable) => readonly string[] | null;

/** COPY … FROM STDIN into a catalog table: split by the host, where its distribution column is among its columns. */
function copyTarget(
  r: Extract<ShardRoute, { kind: 'copy-in' }>,
  sql: string,
  copyColumnsOf: ColumnsOf,
): ShardTarget {
  const t = r.table;
  const refuse = (message: string): ShardTarget => ({
    kind: 'refuse',
    sqlstate: SqlState.FEATURE_NOT_SUPPORTED,
    message,
  });
  const columns = r.columns ?? copyColumnsOf(t);
  if (columns === null) return refuse(`COPY into "${t.rel.name}": its columns are not known yet; try again`);
  let keyIndex: number | null = null;
  if (t.kind === 'distributed') {
    keyIndex = columns.indexOf(t.column ?? '');
    if (keyIndex < 0)
      return refuse(
        `COPY into distributed table "${t.rel.name}" must give its distribution column "${t.column ?? ''}"`,
      );
  }
  const column = t.column ?? '';
  return {
    kind: 'copy',
    reason: `COPY into ${t.kind} table "${t.rel.name}"`,
    work: {
      sql,
      table: t,
      options: r.options,
      keyIndex,
      keyForced: {
        notNull: forced(r.options.forceNotNull, column),
        null: forced(r.options.forceNull, column),
      },
      columnCount: columns.length,
    },
  };
}

function notYet(reason: string): ShardTarget {
  return {
    kind: 'refuse',
    sqlstate: SqlState.FEATURE_NOT_SUPPORTED,
    message: `statements on several groups are not supported yet (${reason})`,
  };
}
