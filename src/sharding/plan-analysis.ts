/**
 * The walk of one statement's parse tree (libpg-query's JSON) that the shard planner
 * (shard-plan.ts) draws its plan from: every relation the statement names, in every subquery,
 * CTE, join and RETURNING list, looked up in the catalog (an unqualified name in the first
 * schema of the session's search_path that holds a catalog table of that name: search-path.ts),
 * and what pins the distribution column of each distributed table.
 *
 * Tables whose distribution columns are equated in one query level (`a.k = b.k` in WHERE or an
 * inner join's ON, `JOIN … USING (k)`) form one class, united symmetrically; a pin (`k = v`,
 * `IN`, `= ANY`) found in a WHERE conjunct or a pin-safe ON clause of that level limits the
 * whole class. A correlated equality (`inner.k = outer.k`) only limits the inner table: the inner
 * class follows the outer one and is pinned when that one is. Pins under OR or NOT, in an outer
 * join's ON clause, on an outer level's table or on a derived table's columns are not pins. What
 * is not understood pins nothing, so the statement then needs every group (never a wrong group).
 * Pure, no I/O.
 */
import { conjuncts } from '../sql/where-equalities.js';
import { isObj, unwrap, type Obj } from '../sql/tree-nodes.js';
import { anyArrayOf, keySourceOf, listOf, type KeySet, type KeySource } from './key-source.js';
import { classifyCall, sqlValueCall } from './plan-functions.js';
import { analyseInsert, type InsertRows } from './plan-insert.js';
import { analyseMerge, analyseModify } from './plan-modify.js';
import { catalogTableNames } from './search-path.js';
import { relKey, type Catalog, type DistributedTable } from './types.js';

export type RelKind = 'distributed' | 'reference' | 'local' | 'system';

export interface Occurrence {
  readonly id: number;
  /** The name as written (`s.t`, `t`), for messages. */
  readonly name: string;
  readonly kind: RelKind;
  readonly table: DistributedTable | null;
  write: boolean;
  /** Where the text names it (the RangeVar's byte offset, -1 when unknown), with a schema or not, aliased or not. */
  readonly location: number;
  readonly qualified: boolean;
  readonly aliased: boolean;
}

interface Binding {
  readonly name: string;
  readonly schema: string | null;
  /** Null for a derived table, a function, a CTE or a join alias: its columns are not followed. */
  readonly occ: Occurrence | null;
}

export interface Scope {
  readonly bindings: Binding[];
  readonly parent: Scope | null;
}

export interface Refusal {
  readonly sqlstate: string;
  readonly message: string;
}

const PUBLIC_ONLY: readonly string[] = ['public'];

/** Statements (as parse-tree node names) whose analysis is a query's. */
const QUERY_KINDS = new Set(['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

export class Analysis {
  readonly occs: Occurrence[] = [];
  /** Union-find links between occurrences (distributed ones only are ever linked). */
  readonly link: number[] = [];
  /** The best pin found for each occurrence (on its class root after `finish`). */
  readonly pins: (KeySet | null)[] = [];
  /** `follows[i] = j`: occurrence i's class is limited to the keys of j's class (correlation). */
  readonly follows: (number | null)[] = [];
  /** UPDATE … SET k = v on a distributed table: the target and the new value. */
  readonly assigns: { readonly occ: Occurrence; readonly source: KeySource }[] = [];
  refusal: Refusal | null = null;
  /** Subqueries already analysed by a conjunct (`k IN (SELECT …)`): the later walk skips them. */
  private readonly done = new WeakSet<object>();
  /** Each INSERT into a distributed table whose keys the text gives (VALUES rows, or a constant). */
  readonly insertRows: InsertRows[] = [];
  /**
   * The first call seen whose value differs from one group to another (`nextval`, `now()`,
   * CURRENT_TIMESTAMP, `random()`): a write to a reference table may not compute it on every group.
   */
  volatileCall: string | null = null;
  /**
   * The first call seen of a function that is not a well-known built-in (a user function, a
   * sequence function): it may read what only group 0 holds, so a read of reference tables
   * calling it stays on group 0.
   */
  localCall: string | null = null;
  /** A MERGE naming a catalog table was seen (refused by the planner). */
  merge = false;

  constructor(
    readonly catalog: Catalog,
    /** The table's columns in order (for INSERT without a column list), when the caller knows them. */
    readonly columnsOf: ((table: DistributedTable) => readonly string[] | null) | null,
    /**
     * Where an unqualified name is looked up: the schemas of the session's search_path that hold
     * catalog tables, in order (search-path.ts plannerPath); the default path gives `public`.
     */
    readonly searchPath: readonly string[] = PUBLIC_ONLY,
  ) {}

  /**
   * The first unqualified name found in a schema other than `public` by way of the search_path:
   * statements run by the sharding host (on every group) may not use such names, since the
   * host's sessions do not have the client's search_path.
   */
  viaPath: string | null = null;
  /** The first unqualified name that some catalog table has (in whatever schema). */
  unqualified: string | null = null;

  /** The catalog table `schema.relname` (schema null: unqualified, looked up in the search path). */
  private lookup(schema: string | null, relname: string): DistributedTable | null {
    if (schema !== null) return this.catalog.tables.get(relKey({ schema, name: relname })) ?? null;
    if (catalogTableNames(this.catalog).has(relname)) this.unqualified ??= relname;
    for (const s of this.searchPath) {
      const t = this.catalog.tables.get(relKey({ schema: s, name: relname }));
      if (t !== undefined) {
        if (s !== 'public') this.viaPath ??= relname;
        return t;
      }
    }
    return null;
  }

  refuse(sqlstate: string, message: string): void {
    this.refusal ??= { sqlstate, message };
  }

  /** The catalog entry of a RangeVar (unqualified: by the search path), or null. */
  tableOf(rv: Obj): DistributedTable | null {
    const relname = typeof rv.relname === 'string' ? rv.relname : '';
    return this.lookup(typeof rv.schemaname === 'string' ? rv.schemaname : null, relname);
  }

  occurrence(rv: Obj, write: boolean): Occurrence {
    const relname = typeof rv.relname === 'string' ? rv.relname : '';
    const schema = typeof rv.schemaname === 'string' ? rv.schemaname : null;
    const name = schema === null ? relname : `${schema}.${relname}`;
    let kind: RelKind;
    let table: DistributedTable | null = null;
    if (
      schema === 'pg_catalog' ||
      schema === 'information_schema' ||
      (schema === null && relname.startsWith('pg_'))
    ) {
      kind = 'system';
    } else {
      table = this.lookup(schema, relname);
      kind = table === null ? 'local' : table.kind;
      // ONLY t: on the groups t is the partitioned parent, which holds no rows itself.
      if (kind === 'distributed' && rv.inh !== true)
        this.refuse('0A000', `ONLY on distributed table "${name}" is not supported`);
    }
    const occ: Occurrence = {
      id: this.occs.length,
      name,
      kind,
      table,
      write,
      location: typeof rv.location === 'number' ? rv.location : -1,
      qualified: schema !== null,
      aliased: isObj(rv.alias),
    };
    this.occs.push(occ);
    this.link.push(occ.id);
    this.pins.push(null);
    this.follows.push(null);
    return occ;
  }

  root(i: number): number {
    let r = i;
    while (this.link[r] !== r) r = this.link[r]!;
    while (this.link[i] !== r) {
      const next = this.link[i]!;
      this.link[i] = r;
      i = next;
    }
    return r;
  }

  unite(a: Occurrence, b: Occurrence): void {
    const ra = this.root(a.id);
    const rb = this.root(b.id);
    if (ra === rb) return;
    this.link[rb] = ra;
    this.pins[ra] = better(this.pins[ra] ?? null, this.pins[rb] ?? null);
  }

  pin(o: Occurrence, key: KeySet): void {
    const r = this.root(o.id);
    this.pins[r] = better(this.pins[r] ?? null, key);
  }

  /** The pin of an occurrence's class, or null. */
  pinOf(o: Occurrence): KeySet | null {
    return this.pins[this.root(o.id)] ?? null;
  }

  // ---- the walk ----

  /** A statement that is a query (SELECT, INSERT, UPDATE, DELETE, MERGE); returns its scope. */
  query(kind: string, body: Obj, outer: Scope | null, ctes: readonly string[]): Scope {
    const scope: Scope = { bindings: [], parent: outer };
    const inner = this.withClause(body.withClause, outer, ctes);
    switch (kind) {
      case 'SelectStmt':
        this.select(body, scope, inner);
        break;
      case 'InsertStmt':
        analyseInsert(this, body, scope, inner);
        break;
      case 'UpdateStmt':
      case 'DeleteStmt':
        analyseModify(this, kind, body, scope, inner);
        break;
      default:
        analyseMerge(this, body, scope, inner);
    }
    return scope;
  }

  /** The CTEs of a WITH: each body analysed with the CTE names it sees; returns the names in scope after. */
  private withClause(w: unknown, outer: Scope | null, ctes: readonly string[]): readonly string[] {
    if (!isObj(w) || !Array.isArray(w.ctes)) return ctes;
    const names: string[] = [];
    for (const c of w.ctes as unknown[]) {
      const n = unwrap(c);
      if (n !== null && typeof n[1].ctename === 'string') names.push(n[1].ctename);
    }
    const all = [...ctes, ...names];
    const recursive = w.recursive === true;
    (w.ctes as unknown[]).forEach((c, i) => {
      const n = unwrap(c);
      if (n === null) return;
      const visible = recursive ? all : [...ctes, ...names.slice(0, i)];
      this.expressions(n[1].ctequery, outer, visible);
    });
    return all;
  }

  private select(body: Obj, scope: Scope, ctes: readonly string[]): void {
    if (body.op !== undefined && body.op !== 'SETOP_NONE') {
      // The arms are bare SelectStmt bodies (typed fields carry no node name in the JSON).
      for (const arm of [body.larg, body.rarg])
        if (isObj(arm)) this.query('SelectStmt', arm, scope.parent, ctes);
      this.expressions([body.sortClause, body.limitCount, body.limitOffset], scope, ctes);
      return;
    }
    if (isObj(body.intoClause)) {
      // SELECT … INTO creates a table on the group the statement runs on: a local table.
      const rel = body.intoClause.rel;
      if (isObj(rel)) this.occurrence(rel, true);
    }
    if (Array.isArray(body.fromClause)) this.fromList(body.fromClause as unknown[], scope, ctes);
    this.where(body.whereClause, scope, ctes, true);
    for (const key of [
      'targetList',
      'groupClause',
      'havingClause',
      'windowClause',
      'sortClause',
      'limitCount',
      'limitOffset',
      'distinctClause',
      'valuesLists',
    ]) {
      this.expressions(body[key], scope, ctes);
    }
    // lockingClause names FROM items by alias, not relations: nothing to look up.
  }

  /** The bindings of a FROM list, then its join conditions and the derived tables in it. */
  fromList(items: readonly unknown[], scope: Scope, ctes: readonly string[]): void {
    const later: (() => void)[] = [];
    for (const item of items) this.fromItem(item, scope, ctes, true, later);
    for (const f of later) f();
  }

  private fromItem(
    item: unknown,
    scope: Scope,
    ctes: readonly string[],
    pinsSafe: boolean,
    later: (() => void)[],
  ): Occurrence[] {
    const n = unwrap(item);
    if (n === null) return [];
    const [kind, body] = n;
    const alias = isObj(body.alias) && typeof body.alias.aliasname === 'string' ? body.alias.aliasname : null;
    if (kind === 'RangeVar') {
      const relname = typeof body.relname === 'string' ? body.relname : '';
      const schema = typeof body.schemaname === 'string' ? body.schemaname : null;
      if (schema === null && ctes.includes(relname)) {
        scope.bindings.push({ name: alias ?? relname, schema: null, occ: null });
        return [];
      }
      const occ = this.occurrence(body, false);
      scope.bindings.push({ name: alias ?? relname, schema: alias === null ? schema : null, occ });
      return [occ];
    }
    if (kind === 'JoinExpr') {
      const outerJoin = body.jointype !== undefined && body.jointype !== 'JOIN_INNER';
      const childSafe = pinsSafe && !outerJoin;
      const left = this.fromItem(body.larg, scope, ctes, childSafe, later);
      const right = this.fromItem(body.rarg, scope, ctes, childSafe, later);
      if (alias !== null) scope.bindings.push({ name: alias, schema: null, occ: null });
      if (Array.isArray(body.usingClause)) {
        for (const u of body.usingClause as unknown[]) {
          const s = unwrap(u);
          const col = s !== null && typeof s[1].sval === 'string' ? s[1].sval : null;
          if (col === null) continue;
          const l = left.filter((o) => o.table?.kind === 'distributed' && o.table.column === col);
          const r = right.filter((o) => o.table?.kind === 'distributed' && o.table.column === col);
          if (l.length === 1 && r.length === 1) this.unite(l[0]!, r[0]!);
        }
      }
      if (body.quals !== undefined) later.push(() => this.where(body.quals, scope, ctes, childSafe));
      return [...left, ...right];
    }
    // A derived table, a function in FROM, a table sample, XMLTABLE, JSON_TABLE: its own queries
    // are analysed (after the plain bindings, so a LATERAL one resolves its outer references).
    scope.bindings.push({ name: alias ?? '', schema: null, occ: null });
    if (kind === 'RangeSubselect') later.push(() => this.expressions(body.subquery, scope, ctes));
    else later.push(() => this.expressions(body, scope, ctes));
    return [];
  }

  /** WHERE or ON: pins and equalities of the top-level AND conjuncts, then every subquery in it. */
  where(expr: unknown, scope: Scope, ctes: readonly string[], pinsSafe: boolean): void {
    if (expr === undefined || expr === null) return;
    for (const c of conjuncts(expr)) this.conjunct(c, scope, ctes, pinsSafe);
    this.expressions(expr, scope, ctes);
  }

  private conjunct(node: unknown, scope: Scope, ctes: readonly string[], pinsSafe: boolean): void {
    const n = unwrap(node);
    if (n !== null && n[0] === 'SubLink') return this.inSubquery(n[1], scope, ctes);
    if (n === null || n[0] !== 'A_Expr') return;
    const e = n[1];
    if (operatorName(e.name) !== '=') return;
    if (e.kind === 'AEXPR_OP') {
      const l = this.column(e.lexpr, scope);
      const r = this.column(e.rexpr, scope);
      if (l !== null && r !== null) {
        if (l.local && r.local) this.unite(l.occ, r.occ);
        else if (l.local !== r.local) {
          const [inner, outer] = l.local ? [l.occ, r.occ] : [r.occ, l.occ];
          this.follows[inner.id] ??= outer.id;
        }
        return;
      }
      if (!pinsSafe) return;
      const col = l ?? r;
      if (col === null || !col.local) return;
      const s = keySourceOf(l !== null ? e.rexpr : e.lexpr, col.occ.table!.type!);
      if (s === null) return;
      // `k = NULL` is never true: the class reads no row, so any group answers.
      this.pin(col.occ, s.kind === 'null' ? EMPTY : { kind: 'one', source: s });
      return;
    }
    if (!pinsSafe) return;
    if (e.kind === 'AEXPR_IN') {
      const col = this.column(e.lexpr, scope);
      if (col === null || !col.local) return;
      const items = unwrap(e.rexpr);
      if (items === null || items[0] !== 'List') return;
      const key = listOf(items[1].items, col.occ.table!.type!);
      if (key !== null) this.pin(col.occ, key);
      return;
    }
    if (e.kind === 'AEXPR_OP_ANY') {
      const col = this.column(e.lexpr, scope);
      if (col === null || !col.local) return;
      const key = anyArrayOf(e.rexpr, col.occ.table!.type!);
      if (key !== null) this.pin(col.occ, key);
    }
  }

  /**
   * `k IN (SELECT j FROM t …)` / `k = ANY (SELECT …)` as a top-level conjunct, k and j
   * distribution columns: only t's rows with j equal to some k of the outer rows can make the
   * test true, so t follows k's class (a semi-join on the distribution column). `NOT IN` is no
   * conjunct of this form and is not followed.
   */
  private inSubquery(link: Obj, scope: Scope, ctes: readonly string[]): void {
    if (link.subLinkType !== 'ANY_SUBLINK') return;
    if (link.operName !== undefined && operatorName(link.operName) !== '=') return;
    const outer = this.column(link.testexpr, scope);
    const sub = unwrap(link.subselect);
    if (outer === null || !outer.local || sub === null || sub[0] !== 'SelectStmt') return;
    const body = sub[1];
    if ((body.op !== undefined && body.op !== 'SETOP_NONE') || !Array.isArray(body.targetList)) return;
    if (body.targetList.length !== 1) return;
    const inner = this.query('SelectStmt', body, scope, ctes);
    this.done.add(body);
    const target = unwrap(body.targetList[0]);
    const col = target === null ? null : this.column(target[1].val, inner);
    if (col !== null && col.local) this.follows[col.occ.id] ??= outer.occ.id;
  }

  /**
   * The distributed occurrence whose distribution column `node` names, and whether it is bound
   * in this query level (`local`) or an outer one. An unqualified name is resolved only in this
   * level, and only when exactly one table there has a distribution column of that name (any
   * other table with such a column would make the name ambiguous, an error in PostgreSQL).
   */
  column(node: unknown, scope: Scope): { occ: Occurrence; local: boolean } | null {
    const n = unwrap(node);
    if (n === null || n[0] !== 'ColumnRef' || !Array.isArray(n[1].fields)) return null;
    const fields: string[] = [];
    for (const f of n[1].fields as unknown[]) {
      const s = unwrap(f);
      if (s === null || s[0] !== 'String' || typeof s[1].sval !== 'string') return null;
      fields.push(s[1].sval);
    }
    const col = fields[fields.length - 1]!;
    if (fields.length === 1) {
      let found: Occurrence | null = null;
      for (const b of scope.bindings) {
        if (b.occ?.table?.kind === 'distributed' && b.occ.table.column === col) {
          if (found !== null) return null;
          found = b.occ;
        }
      }
      return found === null ? null : { occ: found, local: true };
    }
    if (fields.length > 3) return null;
    const qualifier = fields[fields.length - 2]!;
    const schema = fields.length === 3 ? fields[0]! : null;
    for (let s: Scope | null = scope; s !== null; s = s.parent) {
      for (const b of s.bindings) {
        if (b.name !== qualifier || (schema !== null && b.schema !== schema)) continue;
        const t = b.occ?.table;
        if (b.occ === null || t === null || t === undefined || t.kind !== 'distributed' || t.column !== col)
          return null;
        return { occ: b.occ, local: s === scope };
      }
    }
    return null;
  }

  /** Every query nested anywhere under `node` (subqueries, CTE bodies, RETURNING), analysed in `scope`. */
  expressions(node: unknown, scope: Scope | null, ctes: readonly string[]): void {
    const stack: unknown[] = [node];
    while (stack.length > 0) {
      const v = stack.pop();
      // Children are pushed last first, so that relations are met in the order of the text.
      if (Array.isArray(v)) {
        for (let i = v.length - 1; i >= 0; i--)
          if (typeof v[i] === 'object' && v[i] !== null) stack.push(v[i]);
        continue;
      }
      if (!isObj(v)) continue;
      const n = unwrap(v);
      if (n !== null && QUERY_KINDS.has(n[0]) && Object.keys(v).length === 1) {
        if (!this.done.has(n[1])) this.query(n[0], n[1], scope, ctes);
        continue;
      }
      if (n !== null && n[0] === 'RangeVar' && Object.keys(v).length === 1) {
        this.occurrence(n[1], false); // a relation outside a FROM list: looked up, never pinned
        continue;
      }
      if (n !== null && n[0] === 'FuncCall') this.call(n[1]);
      else if (n !== null && n[0] === 'SQLValueFunction') this.volatileCall ??= sqlValueCall(n[1]);
      if (typeof v.relname === 'string' && 'relpersistence' in v) {
        this.occurrence(v, false); // a bare RangeVar (a typed field, as ALTER TABLE's relation)
        continue;
      }
      const keys = Object.keys(v);
      for (let i = keys.length - 1; i >= 0; i--) {
        const child = v[keys[i]!];
        if (typeof child === 'object' && child !== null) stack.push(child);
      }
    }
  }

  private call(f: Obj): void {
    const c = classifyCall(f);
    if (c === null) return;
    if (c.volatile) this.volatileCall ??= c.name;
    if (!c.builtin) this.localCall ??= c.name;
  }
}

/** A class that reads no row (`k = NULL`, `k IN (NULL)`). */
export const EMPTY: KeySet = { kind: 'list', sources: [] };

function rank(k: KeySet): number {
  if (k.kind === 'one') return 0;
  if (k.kind === 'list') return k.sources.length === 0 ? -1 : 1;
  return 2;
}

/** Two pins on one class: the rows read satisfy both, so either alone is right; keep the narrower. */
function better(a: KeySet | null, b: KeySet | null): KeySet | null {
  if (a === null) return b;
  if (b === null) return a;
  return rank(b) < rank(a) ? b : a;
}

function operatorName(name: unknown): string | null {
  if (!Array.isArray(name) || name.length !== 1) return null;
  const s = unwrap(name[0]);
  return s !== null && s[0] === 'String' && typeof s[1].sval === 'string' ? s[1].sval : null;
}
