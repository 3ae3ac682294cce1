/**
 * What sharding needs to know of a statement, read from libpg-query's parse tree (its JSON form,
 * every node `{ TypeName: {…} }`, node names of PostgreSQL's parsenodes.h): the relations it
 * reads and writes, the `column = value` conjuncts of its WHERE, the rows of an INSERT … VALUES,
 * the ORDER BY / LIMIT / aggregate shape of a SELECT, the kind of DDL, the COPY target, and the
 * kind of transaction control. Only the first statement of a text is described (`statements`
 * says how many there are): a text holding several is not a candidate for single-group routing
 * anyway. Pure and iterative where trees can be deep; never throws on any tree shape.
 */
import { isObj, rangeVarName, unwrap, walkTree, type Obj } from './tree-nodes.js';
import { equalitiesOf, valueOf, constOf, type Equality, type Value } from './where-equalities.js';

export type { Equality, Value, InList } from './where-equalities.js';

/** A cell of an INSERT … VALUES row. */
export type Cell = Value | { readonly kind: 'default' } | { readonly kind: 'other' };

export interface RelationRef {
  /** As written: `schema.table` or `table`. */
  readonly name: string;
  readonly schema: string | null;
  readonly relname: string;
  readonly alias: string | null;
  /** The statement writes it (DML target, COPY FROM, TRUNCATE, DDL target). */
  readonly written: boolean;
}

export interface InsertFacts {
  readonly relation: string;
  readonly columns: readonly string[] | null;
  /** VALUES rows only; null for INSERT … SELECT and DEFAULT VALUES. */
  readonly rows: readonly (readonly Cell[])[] | null;
  readonly onConflict: boolean;
  readonly returning: boolean;
}

export type OrderTarget =
  | { readonly kind: 'column'; readonly name: string }
  | { readonly kind: 'position'; readonly position: number }
  | { readonly kind: 'expression' };

export interface OrderKey {
  readonly target: OrderTarget;
  readonly desc: boolean;
  /** As PostgreSQL applies it: explicit NULLS FIRST/LAST, else first for DESC, last for ASC. */
  readonly nullsFirst: boolean;
}

export interface SelectShape {
  readonly orderBy: readonly OrderKey[];
  /** LIMIT n / $n; null when absent or LIMIT ALL (or an expression). */
  readonly limit: Value | null;
  readonly offset: Value | null;
  /** Aggregate calls in the target list (lowercased names, repeated as written), not windowed. */
  readonly aggregates: readonly string[];
  readonly groupBy: boolean;
  readonly distinct: boolean;
  readonly having: boolean;
  readonly windowFunctions: boolean;
  /** UNION / INTERSECT / EXCEPT at the top. */
  readonly setOperation: boolean;
}

export type DdlKindName =
  'create-table' | 'alter-table' | 'drop-table' | 'create-index' | 'drop-index' | 'truncate' | 'other-ddl';

export interface DdlKind {
  readonly kind: DdlKindName;
  /** The tables concerned (for CREATE INDEX the indexed table; for DROP INDEX the indexes). */
  readonly relations: readonly string[];
}

export interface CopyFacts {
  /** Null for COPY (query) TO. */
  readonly relation: string | null;
  readonly direction: 'from' | 'to';
  readonly columns: readonly string[] | null;
}

export type TransactionKind =
  | 'begin'
  | 'commit'
  | 'rollback'
  | 'savepoint'
  | 'release'
  | 'rollback-to'
  | 'prepare-transaction'
  | 'commit-prepared'
  | 'rollback-prepared';

/** Everything above for one text. */
export interface Structure {
  readonly statements: number;
  readonly relations: readonly RelationRef[];
  readonly equalities: readonly Equality[];
  readonly insert: InsertFacts | null;
  readonly shape: SelectShape | null;
  readonly ddlKind: DdlKind | null;
  readonly copy: CopyFacts | null;
  readonly transaction: TransactionKind | null;
}

/** The structure of a parsed text: `stmts` as parseStatements gives them (RawStmt bodies). */
export function structureOf(stmts: readonly unknown[]): Structure {
  const raw = stmts[0];
  const node = unwrap(isObj(raw) ? raw.stmt : undefined);
  const name = node?.[0] ?? '';
  const body = node?.[1] ?? {};
  return {
    statements: stmts.length,
    relations: node === null ? [] : relationsOf(node),
    equalities: node === null ? [] : equalitiesOf(name, body),
    insert: name === 'InsertStmt' ? insertOf(body) : null,
    shape: name === 'SelectStmt' && !Array.isArray(body.valuesLists) ? shapeOf(body) : null,
    ddlKind: ddlKindOf(name, body),
    copy: name === 'CopyStmt' ? copyOf(body) : null,
    transaction: name === 'TransactionStmt' ? transactionOf(body) : null,
  };
}

function isRangeVar(v: Obj): boolean {
  return typeof v.relname === 'string' && typeof v.relpersistence === 'string';
}

const DML = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/** Every RangeVar of the statement, once per (name, alias), minus references to its CTEs. */
function relationsOf([name, body]: [string, Obj]): RelationRef[] {
  const written = new Set<Obj>();
  const targets = writeTargets(name, body);
  for (const t of targets) written.add(t);
  if (DML.has(name) && isObj(body.relation)) written.add(body.relation);
  const ctes = new Set<string>();
  const found: Obj[] = [];
  walkTree(
    [body],
    (key, child) => {
      if (DML.has(key) && isObj(child) && isObj(child.relation)) written.add(child.relation);
      if (key === 'CommonTableExpr' && isObj(child) && typeof child.ctename === 'string')
        ctes.add(child.ctename);
      return 'into';
    },
    (n) => {
      if (isRangeVar(n)) found.push(n);
    },
  );
  const out = new Map<string, RelationRef>();
  // The walk is depth-first from the end: reverse for the order of the text.
  for (const rv of found.reverse()) {
    if (typeof rv.schemaname !== 'string' && ctes.has(String(rv.relname))) continue;
    const alias = isObj(rv.alias) && typeof rv.alias.aliasname === 'string' ? rv.alias.aliasname : null;
    const ref: RelationRef = {
      name: rangeVarName(rv),
      schema: typeof rv.schemaname === 'string' ? rv.schemaname : null,
      relname: String(rv.relname),
      alias,
      written: written.has(rv),
    };
    const key = `${ref.name} ${alias ?? ''}`;
    const prev = out.get(key);
    if (prev === undefined || (!prev.written && ref.written)) out.set(key, ref);
  }
  return [...out.values()];
}

/** RangeVars the top statement writes. */
function writeTargets(name: string, body: Obj): Obj[] {
  const one = (v: unknown): Obj[] => (isObj(v) ? [v] : []);
  switch (name) {
    case 'CopyStmt':
      return body.is_from === true ? one(body.relation) : [];
    case 'TruncateStmt':
      return listOf(body.relations).flatMap((r) => one(unwrap(r)?.[1]));
    case 'CreateStmt':
    case 'AlterTableStmt':
    case 'IndexStmt':
      return one(body.relation);
    case 'CreateTableAsStmt':
      return isObj(body.into) ? one(body.into.rel) : [];
    case 'ViewStmt':
      return one(body.view);
    default:
      return [];
  }
}

function listOf(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function stringsOf(v: unknown): string[] {
  const out: string[] = [];
  for (const item of listOf(v)) {
    const s = unwrap(item);
    if (s !== null && s[0] === 'String' && typeof s[1].sval === 'string') out.push(s[1].sval);
  }
  return out;
}

function insertOf(body: Obj): InsertFacts {
  const cols = listOf(body.cols).map((c) => {
    const t = unwrap(c);
    return t !== null && typeof t[1].name === 'string' ? t[1].name : '';
  });
  const select = unwrap(body.selectStmt);
  let rows: Cell[][] | null = null;
  if (select !== null && select[0] === 'SelectStmt' && Array.isArray(select[1].valuesLists)) {
    rows = select[1].valuesLists.map((row) => {
      const items = unwrap(row)?.[1].items;
      return listOf(items).map(cellOf);
    });
  }
  const returning = isObj(body.returningClause)
    ? listOf(body.returningClause.exprs).length > 0
    : listOf(body.returningList).length > 0;
  return {
    relation: isObj(body.relation) ? rangeVarName(body.relation) : '',
    columns: cols.length > 0 ? cols : null,
    rows,
    onConflict: body.onConflictClause !== undefined,
    returning,
  };
}

function cellOf(node: unknown): Cell {
  const n = unwrap(node);
  if (n !== null && n[0] === 'SetToDefault') return { kind: 'default' };
  return valueOf(node) ?? { kind: 'other' };
}

const AGGREGATES = new Set(
  (
    'count sum min max avg array_agg string_agg bool_and bool_or every bit_and bit_or bit_xor ' +
    'json_agg jsonb_agg json_object_agg jsonb_object_agg json_objectagg json_arrayagg xmlagg ' +
    'stddev stddev_pop stddev_samp variance var_pop var_samp range_agg range_intersect_agg any_value ' +
    'corr covar_pop covar_samp regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope ' +
    'regr_sxx regr_sxy regr_syy mode percentile_cont percentile_disc rank dense_rank percent_rank cume_dist'
  ).split(' '),
);

function shapeOf(body: Obj): SelectShape {
  const orderBy = listOf(body.sortClause).map((s): OrderKey => {
    const sb = unwrap(s)?.[1] ?? {};
    const desc = sb.sortby_dir === 'SORTBY_DESC';
    const nulls = sb.sortby_nulls;
    return {
      target: orderTarget(sb.node),
      desc,
      nullsFirst: nulls === 'SORTBY_NULLS_FIRST' ? true : nulls === 'SORTBY_NULLS_LAST' ? false : desc,
    };
  });
  const aggregates: string[] = [];
  let windowFunctions = Array.isArray(body.windowClause);
  // The target list's expressions, not what sub-selects in it compute.
  walkTree(listOf(body.targetList), (key, child) => {
    if (key === 'SubLink') return 'skip';
    if (key === 'FuncCall' && isObj(child)) {
      const names = stringsOf(child.funcname);
      const fn = (names[names.length - 1] ?? '').toLowerCase();
      if (child.over !== undefined) windowFunctions = true;
      else if (AGGREGATES.has(fn) || child.agg_star === true || child.agg_distinct === true)
        aggregates.push(fn);
    }
    return 'into';
  });
  return {
    orderBy,
    limit: body.limitOption === 'LIMIT_OPTION_WITH_TIES' ? null : limitValue(body.limitCount),
    offset: limitValue(body.limitOffset),
    aggregates: aggregates.reverse(),
    groupBy: listOf(body.groupClause).length > 0,
    distinct: Array.isArray(body.distinctClause),
    having: body.havingClause !== undefined,
    windowFunctions,
    setOperation: body.op !== undefined && body.op !== 'SETOP_NONE',
  };
}

function limitValue(node: unknown): Value | null {
  const n = unwrap(node);
  if (n !== null && n[0] === 'A_Const' && n[1].isnull === true) return null; // LIMIT ALL / NULL
  return valueOf(node);
}

function orderTarget(node: unknown): OrderTarget {
  const n = unwrap(node);
  if (n !== null && n[0] === 'ColumnRef') {
    const fields = stringsOf(n[1].fields);
    if (fields.length > 0 && fields.length === listOf(n[1].fields).length)
      return { kind: 'column', name: fields.join('.') };
  }
  const c = constOf(node);
  if (c !== null && c.cast === null && /^\d+$/.test(c.text))
    return { kind: 'position', position: Number(c.text) };
  return { kind: 'expression' };
}

const OTHER_DDL = new Set([
  'CreateTableAsStmt',
  'ViewStmt',
  'CreateSeqStmt',
  'AlterSeqStmt',
  'CreateFunctionStmt',
  'AlterFunctionStmt',
  'CreateSchemaStmt',
  'CreateExtensionStmt',
  'AlterExtensionStmt',
  'CreateTrigStmt',
  'RuleStmt',
  'DefineStmt',
  'CompositeTypeStmt',
  'CreateEnumStmt',
  'AlterEnumStmt',
  'CreateRangeStmt',
  'CreateDomainStmt',
  'AlterDomainStmt',
  'RenameStmt',
  'AlterObjectSchemaStmt',
  'AlterOwnerStmt',
  'CommentStmt',
  'CreatePolicyStmt',
  'AlterPolicyStmt',
  'CreateEventTrigStmt',
  'CreateForeignTableStmt',
  'CreateStatsStmt',
  'GrantStmt',
]);

function ddlKindOf(name: string, body: Obj): DdlKind | null {
  const rel = (v: unknown): string[] => (isObj(v) ? [rangeVarName(v)] : []);
  switch (name) {
    case 'CreateStmt':
      return { kind: 'create-table', relations: rel(body.relation) };
    case 'AlterTableStmt':
      return {
        kind: body.objtype === 'OBJECT_TABLE' ? 'alter-table' : 'other-ddl',
        relations: rel(body.relation),
      };
    case 'IndexStmt':
      return { kind: 'create-index', relations: rel(body.relation) };
    case 'TruncateStmt':
      return { kind: 'truncate', relations: listOf(body.relations).flatMap((r) => rel(unwrap(r)?.[1])) };
    case 'DropStmt': {
      const names = listOf(body.objects).map((o) => {
        const items = unwrap(o)?.[1].items;
        return stringsOf(items).join('.');
      });
      const kind =
        body.removeType === 'OBJECT_TABLE'
          ? 'drop-table'
          : body.removeType === 'OBJECT_INDEX'
            ? 'drop-index'
            : 'other-ddl';
      return { kind, relations: kind === 'other-ddl' ? [] : names };
    }
    default:
      if (OTHER_DDL.has(name) || /^(Create|Alter|Drop)/.test(name)) {
        if (name === 'RenameStmt' && body.renameType === 'OBJECT_TABLE')
          return { kind: 'alter-table', relations: rel(body.relation) };
        return { kind: 'other-ddl', relations: [] };
      }
      return null;
  }
}

function copyOf(body: Obj): CopyFacts {
  const columns = stringsOf(body.attlist);
  return {
    relation: isObj(body.relation) ? rangeVarName(body.relation) : null,
    direction: body.is_from === true ? 'from' : 'to',
    columns: columns.length > 0 ? columns : null,
  };
}

const TRANSACTION_KINDS: Readonly<Record<string, TransactionKind>> = {
  TRANS_STMT_BEGIN: 'begin',
  TRANS_STMT_START: 'begin',
  TRANS_STMT_COMMIT: 'commit',
  TRANS_STMT_ROLLBACK: 'rollback',
  TRANS_STMT_SAVEPOINT: 'savepoint',
  TRANS_STMT_RELEASE: 'release',
  TRANS_STMT_ROLLBACK_TO: 'rollback-to',
  TRANS_STMT_PREPARE: 'prepare-transaction',
  TRANS_STMT_COMMIT_PREPARED: 'commit-prepared',
  TRANS_STMT_ROLLBACK_PREPARED: 'rollback-prepared',
};

function transactionOf(body: Obj): TransactionKind | null {
  return TRANSACTION_KINDS[String(body.kind)] ?? null;
}
