/**
 * Which groups a statement must run on, in two steps, because the proxy analyses a text once
 * (cached per text and catalog version, also at Parse for prepared statements) and routes each
 * execution with its Bind parameters:
 *
 * - `shardKeyPlan(sql, catalog)` parses the text with PostgreSQL's own parser, finds every
 *   relation it names (plan-analysis.ts: subqueries, CTEs, joins, INSERT rows) and what pins
 *   each distributed table's distribution column: a KeyPlan, whose answer is either fixed
 *   (local, reference tables only, every group, several groups, an error) or a set of key
 *   classes whose values are read at Bind.
 * - `resolveShards(plan, params, remainder)` (resolve-shards.ts) turns a KeyPlan and the Bind
 *   values into a ShardRoute, computing shards with the partition hash passed in.
 *
 * An unqualified name is looked up in the schemas of the session's search_path that hold catalog
 * tables (`PlanOptions.searchPath`, search-path.ts); a local table of the same name in an earlier
 * schema is not seen. Statements the sharding host runs on every group (DDL, reference writes,
 * split INSERTs) must name a table found that way outside `public` with its schema: the host's
 * sessions do not have the client's search_path. Views, functions and rules are not looked into: a view over a
 * distributed table, or a function reading one, is not seen (docs/sharding.md). Never a wrong
 * group: what is not understood needs every group (`multi`) or is refused (`error`). Pure.
 */
import { parseStatements } from '../sql/pg-parser.js';
import { isObj, unwrap, type Obj } from '../sql/tree-nodes.js';
import { mayNameCatalogTable } from './catalog-names.js';
import { cutInsert, type InsertText } from './insert-split.js';
import type { KeySet, KeySource } from './key-source.js';
import { Analysis, type Occurrence, type Refusal } from './plan-analysis.js';
import type { InsertRows } from './plan-insert.js';
import { planUtility } from './plan-utility.js';
import type { CopyOptions } from './copy-options.js';
import type { GlobalOccurrence } from './global-rewrite.js';
import { changesSearchPath, hostNamesQualified, type Seen } from './plan-search-path.js';
import type { Catalog, Colocation, DistributedTable, DistType, RelName } from './types.js';

export type ShardRoute =
  /** No distributed or reference table: group 0, as without sharding. */
  | { readonly kind: 'local' }
  /** Every distributed table pinned to shards of one group (reference tables may be mixed in). */
  | { readonly kind: 'one'; readonly group: string; readonly shards: readonly number[] }
  /** Reference (and system) tables only, read: any group answers. */
  | { readonly kind: 'reference-read' }
  /**
   * A write to a reference table or DDL on a catalog table: every group, atomically. `written`:
   * the reference tables a write changes (absent for DDL).
   */
  | {
      readonly kind: 'all';
      readonly reason: string;
      readonly written?: readonly RelName[];
      /** DROP INDEX: every group when the index is on a catalog table, else group 0 only. */
      readonly dropIndex?: boolean;
    }
  /**
   * COPY … FROM STDIN into a distributed table (each row to its shard's group) or a reference
   * table (every row to every group): `columns` as the statement lists them (null: all).
   */
  | {
      readonly kind: 'copy-in';
      readonly table: DistributedTable;
      readonly columns: readonly string[] | null;
      readonly options: CopyOptions;
    }
  /** A multi-row INSERT whose rows belong to several groups: one INSERT per group. */
  | { readonly kind: 'split-insert'; readonly parts: readonly InsertPart[] }
  /**
   * Needs several groups. `pushdown`: every distributed table of the statement is in one key
   * class of one colocation (joined on the distribution column), so the statement run on every
   * group — each on its own shards — does on the whole what it would do on one node.
   */
  | {
      readonly kind: 'multi';
      readonly groups: readonly string[];
      readonly reason: string;
      readonly pushdown?: boolean;
    }
  | { readonly kind: 'error'; readonly sqlstate: string; readonly message: string };

export interface InsertPart {
  readonly group: string;
  /** The INSERT of this group's rows, RETURNING and ON CONFLICT kept; `$n` renumbered from 1. */
  readonly sql: string;
  /** For each `$n` of `sql`, the 0-based index of its value among the original Bind's. */
  readonly paramIndexes: readonly number[];
  readonly shards: readonly number[];
}

/** One colocation inside a key class: the shard ids of its tables are `firstShardId + remainder`. */
export interface ColocPart {
  readonly colocation: Colocation;
  readonly type: DistType;
  readonly firstShardIds: readonly number[];
}

/** Distributed tables whose distribution columns hold the same values in the statement. */
export interface KeyClass {
  readonly key: KeySet;
  readonly colocs: readonly ColocPart[];
  /**
   * The type modifier the keys are coerced with before PostgreSQL hashes them: the INSERT
   * target's distribution column typmod when the keys are values being stored (VALUES rows, an
   * INSERT … SELECT constant), else -1 (a value compared in WHERE is not coerced to the column's
   * typmod).
   */
  readonly typmod: number;
}

export type KeyPlan =
  | {
      readonly kind: 'fixed';
      readonly route: ShardRoute;
      readonly writes: boolean;
      /** False when the answer depends on the moment (the parser was not ready), not the text. */
      readonly cacheable: boolean;
      /**
       * Transaction control and settings (BEGIN, COMMIT, SET, SHOW): among other statements of
       * one Query they run where those run; alone they are local.
       */
      readonly neutral?: boolean;
      /** A read: where it names distributed tables (for the global path when it needs several groups). */
      readonly global?: readonly GlobalOccurrence[];
    }
  | {
      readonly kind: 'keys';
      readonly classes: readonly KeyClass[];
      /** UPDATE … SET k = v / ON CONFLICT … SET k = v: v must fall in the shard of class `cls`. */
      readonly assigns: readonly {
        readonly cls: number;
        readonly source: KeySource;
        readonly type: DistType;
        /** The assigned column's typmod: the value is coerced with it before it is stored. */
        readonly typmod: number;
      }[];
      /** A multi-row INSERT … VALUES that may be split by group: class `cls` holds one key per row. */
      readonly insert: { readonly cls: number; readonly text: InsertText } | null;
      /** Classes whose keys are an INSERT's (VALUES rows, INSERT … SELECT constant): never NULL. */
      readonly insertClasses: readonly number[];
      readonly writes: boolean;
      readonly groups: readonly string[];
      /** A read: where it names distributed tables (for the global path when it needs several groups). */
      readonly global?: readonly GlobalOccurrence[];
    }
  /** Several statements in one Query message: all must land on one group. */
  | {
      readonly kind: 'statements';
      readonly plans: readonly KeyPlan[];
      readonly writes: boolean;
      readonly groups: readonly string[];
    };

export interface PlanOptions {
  /**
   * A distributed table's columns in order, for `INSERT INTO t VALUES (…)` without a column
   * list (the catalog does not keep them); without it such an INSERT is refused.
   */
  readonly columnsOf?: (table: DistributedTable) => readonly string[] | null;
  /**
   * The schemas an unqualified name is looked up in, in order: the session's search_path
   * narrowed to schemas holding catalog tables (search-path.ts plannerPath). Default: `public`.
   */
  readonly searchPath?: readonly string[];
}

/** A parse already done by the caller: the text and libpg-query's statement nodes. */
export interface ParsedText {
  readonly sql: string;
  readonly stmts: readonly unknown[];
}

const LOCAL: KeyPlan = Object.freeze({
  kind: 'fixed',
  route: Object.freeze({ kind: 'local' }),
  writes: false,
  cacheable: true,
});
const LOCAL_WRITE: KeyPlan = Object.freeze({
  kind: 'fixed',
  route: Object.freeze({ kind: 'local' }),
  writes: true,
  cacheable: true,
});
const NEUTRAL: KeyPlan = Object.freeze({
  kind: 'fixed',
  route: Object.freeze({ kind: 'local' }),
  writes: false,
  cacheable: true,
  neutral: true,
});
const NEUTRAL_KINDS = new Set(['TransactionStmt', 'VariableSetStmt', 'VariableShowStmt']);
const REFERENCE_READ: KeyPlan = Object.freeze({
  kind: 'fixed',
  route: Object.freeze({ kind: 'reference-read' }),
  writes: false,
  cacheable: true,
});

export function shardKeyPlan(
  input: string | ParsedText,
  catalog: Catalog,
  options: PlanOptions = {},
): KeyPlan {
  const sql = typeof input === 'string' ? input : input.sql;
  if (!mayNameCatalogTable(sql, catalog)) return LOCAL;
  let stmts: readonly unknown[];
  if (typeof input === 'string') {
    const parsed = parseStatements(sql);
    if (parsed.kind === 'rejected') return LOCAL; // group 0 answers the syntax error
    if (parsed.kind !== 'parsed') {
      return fixed(
        {
          kind: 'error',
          sqlstate: '0A000',
          message: 'cannot route a statement on distributed tables: the SQL parser is not ready',
        },
        false,
        false,
      );
    }
    stmts = parsed.stmts;
  } else stmts = input.stmts;
  const plans: KeyPlan[] = [];
  /** A statement before changed the search_path: later ones are planned with the old one. */
  let pathChanged = false;
  for (const raw of stmts) {
    const node = isObj(raw) ? raw.stmt : undefined;
    const n = unwrap(node);
    if (n === null) continue;
    const seen: Seen = { unqualified: null };
    const plan = planStatement(n[0], n[1], stmts.length === 1 ? sql : null, catalog, options, seen);
    plans.push(
      pathChanged && seen.unqualified !== null
        ? fixed(
            {
              kind: 'error',
              sqlstate: '0A000',
              message: `"${seen.unqualified}" follows a change of search_path in the same query: send the SET in a query of its own, or name the table with its schema`,
            },
            plan.writes,
          )
        : plan,
    );
    if (changesSearchPath(n[0], n[1])) pathChanged = true;
  }
  if (plans.length === 0) return LOCAL;
  if (plans.length > 1 && plans.some((p) => p.kind === 'fixed' && p.route.kind === 'all')) {
    // The host runs it in a transaction of its own on every group: a BEGIN or COMMIT beside it
    // would end that transaction early.
    return fixed({ kind: 'error', sqlstate: '0A000', message: ALONE }, true);
  }
  const significant = plans.filter((p) => !(p.kind === 'fixed' && p.neutral === true));
  if (significant.length <= 1) return significant[0] ?? plans[0]!;
  return {
    kind: 'statements',
    plans: significant,
    writes: significant.some((p) => p.writes),
    groups: catalog.groups,
  };
}

const ALONE =
  'a statement on every group (DDL on a distributed or reference table, a write to a reference table) must be sent alone, not with other statements in one query';

function fixed(route: ShardRoute, writes: boolean, cacheable = true): KeyPlan {
  return { kind: 'fixed', route, writes, cacheable };
}

function refused(r: Refusal, writes: boolean): KeyPlan {
  return fixed({ kind: 'error', sqlstate: r.sqlstate, message: r.message }, writes);
}

const QUERIES = new Set(['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/** One statement; `sql` is its text when it is the only statement (needed to split an INSERT). */
function planStatement(
  kind: string,
  body: Obj,
  sql: string | null,
  catalog: Catalog,
  options: PlanOptions,
  seen: Seen,
): KeyPlan {
  if (NEUTRAL_KINDS.has(kind)) return NEUTRAL;
  const a = new Analysis(catalog, options.columnsOf ?? null, options.searchPath);
  try {
    return planAnalysed(kind, body, sql, catalog, options, seen, a);
  } finally {
    seen.unqualified ??= a.unqualified;
  }
}

function planAnalysed(
  kind: string,
  body: Obj,
  sql: string | null,
  catalog: Catalog,
  options: PlanOptions,
  seen: Seen,
  a: Analysis,
): KeyPlan {
  if (QUERIES.has(kind)) {
    a.query(kind, body, null, []);
    const plan = hostNamesQualified(
      a,
      decide(a, kind === 'InsertStmt' && sql !== null ? { body, sql } : null),
    );
    return kind === 'SelectStmt' ? withGlobal(plan, a) : plan;
  }
  const inner = unwrap(body.query);
  if ((kind === 'ExplainStmt' || kind === 'DeclareCursorStmt') && inner !== null) {
    return planStatement(inner[0], inner[1], null, catalog, options, seen);
  }
  return hostNamesQualified(
    a,
    planUtility(kind, body, a, (q) => decide(q, null)),
  );
}

/** A read's plan with where it names distributed tables (the global path's rewrite needs them). */
function withGlobal(plan: KeyPlan, a: Analysis): KeyPlan {
  if (plan.writes || plan.kind === 'statements') return plan;
  if (plan.kind === 'fixed' && plan.route.kind !== 'multi') return plan;
  const global: GlobalOccurrence[] = [];
  for (const o of a.occs) {
    if (o.kind !== 'distributed' || o.table === null) continue;
    if (o.location < 0) return plan;
    global.push({ location: o.location, table: o.table, qualified: o.qualified, aliased: o.aliased });
  }
  return { ...plan, global };
}

/** The plan of an analysed query. */
export function decide(a: Analysis, insert: { body: Obj; sql: string } | null): KeyPlan {
  let dist: Occurrence | null = null;
  let reference: Occurrence | null = null;
  let local: Occurrence | null = null;
  let refWrite: Occurrence | null = null;
  let writes = false;
  for (const o of a.occs) {
    if (o.write) writes = true;
    if (o.kind === 'distributed') dist ??= o;
    else if (o.kind === 'reference') {
      reference ??= o;
      if (o.write) refWrite ??= o;
    } else if (o.kind === 'local') local ??= o;
  }
  if (dist === null && reference === null) return writes ? LOCAL_WRITE : LOCAL;
  if (a.merge)
    return fixed(
      {
        kind: 'error',
        sqlstate: '0A000',
        message: 'MERGE on distributed or reference tables is not supported yet',
      },
      true,
    );
  if (a.refusal !== null) return refused(a.refusal, writes);
  if (dist !== null && local !== null) {
    return refused(
      {
        sqlstate: '0A000',
        message:
          `local table "${local.name}" cannot be used with distributed table "${dist.name}" in one statement: ` +
          'local tables live on group 0 only (make it a reference or distributed table)',
      },
      writes,
    );
  }
  if (refWrite !== null) {
    const other = dist ?? local;
    if (other !== null) {
      return refused(
        {
          sqlstate: '0A000',
          message: `a write to reference table "${refWrite.name}" reaches every group and cannot read ${other.kind} table "${other.name}" in the same statement`,
        },
        true,
      );
    }
    if (a.volatileCall !== null) {
      return refused(
        {
          sqlstate: '0A000',
          message:
            `a write to reference table "${refWrite.name}" cannot call volatile function ${a.volatileCall}: ` +
            'every group would compute its own value',
        },
        true,
      );
    }
    const written: RelName[] = [];
    for (const o of a.occs)
      if (o.kind === 'reference' && o.write && o.table !== null) written.push(o.table.rel);
    return fixed({ kind: 'all', reason: `write to reference table "${refWrite.name}"`, written }, true);
  }
  if (dist === null) {
    if (local !== null || writes || a.localCall !== null) return writes ? LOCAL_WRITE : LOCAL;
    return REFERENCE_READ;
  }
  return keyClasses(a, writes, insert);
}

/** The key classes of the distributed tables, or the reason the statement needs several groups. */
function keyClasses(a: Analysis, writes: boolean, insert: { body: Obj; sql: string } | null): KeyPlan {
  const groups = a.catalog.groups;
  // Members of each class, and the class each one follows when it has no pin of its own.
  const members = new Map<number, Occurrence[]>();
  for (const o of a.occs) {
    if (o.kind !== 'distributed') continue;
    const r = a.root(o.id);
    const list = members.get(r);
    if (list === undefined) members.set(r, [o]);
    else list.push(o);
  }
  const target = (r: number): number => {
    // Follow correlations from an unpinned class to a pinned one (a bounded walk: no cycles).
    let at = r;
    for (let steps = 0; steps <= members.size; steps++) {
      if (a.pins[at] !== null) return at;
      let next: number | null = null;
      for (const o of members.get(at) ?? []) {
        const f = a.follows[o.id];
        if (f !== null && f !== undefined && a.root(f) !== at) {
          next = a.root(f);
          break;
        }
      }
      if (next === null) return at;
      at = next;
    }
    return at;
  };
  const byTarget = new Map<number, Occurrence[]>();
  for (const [r, list] of members) {
    const t = target(r);
    const into = byTarget.get(t);
    if (into === undefined) byTarget.set(t, [...list]);
    else into.push(...list);
  }
  const classes: KeyClass[] = [];
  /** Classes holding an INSERT's keys (never NULL), and the top statement's own VALUES rows. */
  const insertClasses: number[] = [];
  let top: InsertRows | null = null;
  for (const [r, list] of byTarget) {
    const colocs = colocParts(a.catalog, list);
    const key = a.pins[r] ?? null;
    if (key === null) {
      if (colocs.length > 1) {
        return refused(
          {
            sqlstate: '0A000',
            message:
              `distributed tables "${list[0]!.name}" and "${list.find((o) => o.table!.colocationId !== list[0]!.table!.colocationId)!.name}" ` +
              'are joined on their distribution columns but are not colocated, and no value pins them to one shard',
          },
          writes,
        );
      }
      const o = list[0]!;
      return fixed(
        {
          kind: 'multi',
          groups,
          reason: `distributed table "${o.name}" is not pinned to one shard by its distribution column "${o.table!.column}"`,
          pushdown: byTarget.size === 1,
        },
        writes,
      );
    }
    let typmod = -1;
    for (const rows of a.insertRows) {
      if (!list.includes(rows.occ)) continue;
      insertClasses.push(classes.length);
      typmod = rows.occ.table!.typmod ?? -1;
      if (insert !== null && rows.values && rows.relation === insert.body.relation) top = rows;
    }
    classes.push({ key, colocs, typmod });
  }
  const assigns = a.assigns.map((x) => ({
    cls: classIndex(byTarget, x.occ),
    source: x.source,
    type: x.occ.table!.type!,
    typmod: x.occ.table!.typmod ?? -1,
  }));
  let split: { cls: number; text: InsertText } | null = null;
  if (top !== null && insert !== null && top.sources.length > 1) {
    const text = cutInsert(insert.sql, top.sources.length);
    const cls = classIndex(byTarget, top.occ);
    if (text !== null) split = { cls, text };
  }
  return { kind: 'keys', classes, assigns, insert: split, insertClasses, writes, groups };
}

function classIndex(byTarget: Map<number, Occurrence[]>, o: Occurrence): number {
  let i = 0;
  for (const list of byTarget.values()) {
    if (list.includes(o)) return i;
    i++;
  }
  return -1;
}

function colocParts(catalog: Catalog, list: readonly Occurrence[]): ColocPart[] {
  const out: { colocation: Colocation; type: DistType; firstShardIds: number[] }[] = [];
  for (const o of list) {
    const t = o.table!;
    const c = catalog.colocations.get(t.colocationId);
    if (c === undefined) continue; // an inconsistent catalog: resolve finds no colocation and refuses
    let part = out.find((p) => p.colocation.id === c.id);
    if (part === undefined) {
      part = { colocation: c, type: t.type!, firstShardIds: [] };
      out.push(part);
    }
    if (!part.firstShardIds.includes(t.firstShardId)) part.firstShardIds.push(t.firstShardId);
  }
  return out;
}

/**
 * Whether resolving `plan` reads Bind values: false for fixed routes and for keys the text gives,
 * so a caller may resolve such a plan before Bind (at Parse, or once per text).
 */
export function usesParams(plan: KeyPlan): boolean {
  if (plan.kind === 'fixed') return false;
  if (plan.kind === 'statements') return plan.plans.some(usesParams);
  const param = (s: KeySource): boolean => s.kind === 'param';
  return (
    plan.classes.some((c) =>
      c.key.kind === 'one' ? param(c.key.source) : c.key.kind === 'list' ? c.key.sources.some(param) : true,
    ) || plan.assigns.some((x) => param(x.source))
  );
}

export { resolveShards, type Remainder } from './resolve-shards.js';
export { mayNameCatalogTable } from './catalog-names.js';
