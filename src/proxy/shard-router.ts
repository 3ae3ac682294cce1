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
 * - what else needs several groups (scatter-gather reads, COPY into a reference table) → refused
 *   with 0A000 naming the reason until the executor for it exists (issue #16), never a partial
 *   answer.
 *
 * The Citus API calls are run by the program that owns the proxy too (runApi).
 */
import { apiCallOf } from '../sharding/api-call.js';
import { isViewRead } from '../sharding/citus-views.js';
import { hashRemainder } from '../sharding/hash.js';
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
import { ANY, HOME } from './session/shard-target.js';
import { ShapePlans } from './shard-shapes.js';

/** Plans kept per text (the classifier's cache holds 5,000; plans are smaller). */
const PLAN_CACHE_ENTRIES = 5000;

const NEEDS_PARAMS: ShardTarget = { kind: 'needs-params' };

interface Planned {
  readonly version: number;
  readonly plan: KeyPlan;
  /** The plan's answer does not depend on Bind values: its target, made once. */
  readonly fixed: ShardTarget | null;
  readonly usesParams: boolean;
}

export class ShardRouter implements DatabaseSharding {
  private readonly plans = new LruCache<Planned>(PLAN_CACHE_ENTRIES);
  private readonly noTable = new LruCache<boolean>(PLAN_CACHE_ENTRIES);
  /** Plans by literal shape, for texts with their values inline (shard-shapes.ts). */
  private readonly shapes = new ShapePlans(PLAN_CACHE_ENTRIES);

  constructor(
    /** The newest catalog, or null while it is not known (then every statement is refused). */
    private readonly catalog: () => Catalog | null,
    /** Runs an API call's text for a user: its replies (ending with ReadyForQuery). */
    private readonly runApi: (sql: string, user: string) => Promise<Buffer[]>,
    /** A distributed table's columns in order (`INSERT INTO t VALUES …` names none), if known. */
    private readonly columnsOf: (t: DistributedTable) => readonly string[] | null = () => null,
    /** Runs a statement on several groups for a user: its replies (ending with ReadyForQuery). */
    private readonly runHost: (work: EveryGroupWork, user: string) => Promise<Buffer[]> = () =>
      Promise.resolve(apiError('0A000', 'statements on several groups are not supported here')),
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

  api(sql: string, user: string): Promise<Buffer[]> {
    return this.runApi(sql, user);
  }

  host(work: EveryGroupWork, user: string): Promise<Buffer[]> {
    return this.runHost(work, user);
  }

  target(sql: string, params: readonly (ColumnValue | null)[] | null): ShardTarget {
    const catalog = this.catalog();
    if (catalog === null) return CATALOG_UNKNOWN;
    if (isViewRead(sql)) return VIEWS_READ(sql);
    // A text planned before (a prepared statement, the extended protocol) needs no pre-check.
    let p = this.plans.get(sql);
    if (p === undefined || p.version !== catalog.version) {
      if (!mayNameCatalogTable(sql, catalog)) return this.localTarget(sql);
      p = this.planned(sql, catalog);
    }
    if (p.fixed !== null) return p.fixed === HOME ? this.localTarget(sql) : p.fixed;
    if (params === null && p.usesParams) return NEEDS_PARAMS;
    const route = resolveShards(p.plan, params ?? [], (type, value, modulus) =>
      hashRemainder(type, value, modulus),
    );
    const t = targetOf(route, sql);
    return t === HOME ? this.localTarget(sql) : t;
  }

  /** The plan of a text not in the text cache (or planned under an older catalog). */
  private planned(sql: string, catalog: Catalog): Planned {
    const byShape = this.shapes.plan(sql, catalog.version, (text) =>
      shardKeyPlan(text, catalog, { columnsOf: this.columnsOf }),
    );
    const plan = byShape?.plan ?? shardKeyPlan(sql, catalog, { columnsOf: this.columnsOf });
    const p: Planned = {
      version: catalog.version,
      plan,
      // Transaction control and settings (neutral) follow the session, wherever it is.
      fixed: plan.kind === 'fixed' ? (plan.neutral === true ? ANY : targetOf(plan.route, sql)) : null,
      usesParams: usesParams(plan),
    };
    // A plan shared by its shape is not kept by text: those texts rarely come back.
    if (byShape?.shared !== true && (plan.kind !== 'fixed' || plan.cacheable)) this.plans.set(sql, p);
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

const CATALOG_UNKNOWN: ShardTarget = {
  kind: 'refuse',
  sqlstate: SqlState.CANNOT_CONNECT_NOW,
  message: 'the sharding catalog is not loaded yet (is the state store reachable?); try again',
};

/** The session's target for a planner's route of statement `sql`. */
function targetOf(r: ShardRoute, sql: string): ShardTarget {
  switch (r.kind) {
    case 'local':
      return HOME;
    case 'one':
      return { kind: 'group', group: r.group };
    case 'reference-read':
      return ANY;
    case 'error':
      return { kind: 'refuse', sqlstate: r.sqlstate, message: r.message };
    case 'all':
      if (r.copy === true) return notYet(`${r.reason}: it must run on every group at once`);
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
      return notYet(r.reason);
  }
}

function notYet(reason: string): ShardTarget {
  return {
    kind: 'refuse',
    sqlstate: SqlState.FEATURE_NOT_SUPPORTED,
    message: `statements on several groups are not supported yet (${reason})`,
  };
}
