/**
 * The fast path for reads across groups (docs/sharding.md, "The fast path"): whether a SELECT
 * whose distributed tables are one key class (the planner's `pushdown` on a 'multi' route) can be
 * answered by running one query on every group — each over its own shards, under the same table
 * names — and combining their rows on group 0 with a second query that PostgreSQL runs over
 * them (scatter-run.ts). Two shapes:
 *
 * - `aggregate`: GROUP BY, aggregates count/sum/min/max/avg/bool_and/bool_or/every, HAVING,
 *   DISTINCT, ORDER BY, LIMIT/OFFSET. Each group returns its partial rows (the group keys, each
 *   aggregate's partial: avg as sum and count); the final query re-aggregates them (count and
 *   sum as sum, min as min, …), then applies HAVING, DISTINCT, ORDER BY and LIMIT itself, with
 *   the statement's own expressions over the keys. A SELECT DISTINCT without aggregates is this
 *   shape with its targets as the keys.
 * - `rows`: no aggregate, with a LIMIT: each group returns its first `limit + offset` rows in the
 *   statement's order (the sort keys as extra columns); the final query orders those keys and
 *   picks which rows are sent, the groups' own row values unchanged.
 *
 * Everything else — subqueries, CTEs, windows, set operations, DISTINCT ON, other aggregates,
 * outer joins, functions whose value depends on the moment, parameters outside WHERE, a
 * concatenation without LIMIT (it streams better on the general path) — gets null: the general
 * path (global tables on group 0) answers it. Pure.
 */
import { parseStatements } from '../sql/pg-parser.js';
import { isObj, unwrap, type Obj } from '../sql/tree-nodes.js';
import { StatementText, figureColname, firstLocation, sameNode, type Span } from './scatter-text.js';
import { FinalText, NotHere, hasAggregate, list, no, safeEverywhere } from './scatter-final.js';
import { relKey, type Catalog } from './types.js';

/** Partial rows one group may return before the statement is left to the general path. */
export const SCATTER_ROW_CAP = 50_000;

/** A piece of the final query's text: literal, or filled in once the partial columns' types are known. */
export type FinalPiece =
  | string
  /** The source of the partial rows (`(SELECT … FROM unnest($1::text[], …)) AS p`). */
  | { readonly source: true }
  /** The SQL type name of partial column `type`. */
  | { readonly type: number }
  /** The same, for a sum's cast (a float4 sum is left to the general path). */
  | { readonly sum: number }
  /** avg from partial columns sum and count (its form depends on the sum's type). */
  | { readonly avg: readonly [number, number] };

export type ScatterPlan =
  | {
      readonly shape: 'aggregate';
      /** The query every group runs. */
      readonly groupSql: string;
      /** Partial value columns (each group's rows). */
      readonly values: number;
      /** Columns whose collation the final query keeps (keys, min, max), when of a text type. */
      readonly collations: readonly Collated[];
      /** The statement's FROM clause alone (for the collation query). */
      readonly from: string;
      readonly final: readonly FinalPiece[];
    }
  | {
      readonly shape: 'rows';
      readonly groupSql: string;
      /**
       * Sort keys (their direction), each an extra column after the statement's own; then one
       * more column (a guard, not sent).
       */
      readonly sorts: readonly string[];
      /** The sort keys' collations (`at`: the sort key's index). */
      readonly collations: readonly Collated[];
      readonly from: string;
      /** LIMIT and OFFSET: constants, or Bind parameters (their 0-based index). */
      readonly limit: Count;
      readonly offset: Count;
    };

/** A LIMIT or OFFSET: a constant, or the Bind parameter `param` (0-based). */
export type Count = number | { readonly param: number };

/**
 * A column whose collation the final query must apply: `at` its index (a partial value, or a
 * sort key), `expr` an expression of the same collation: pg_collation_for(min(expr)) over no
 * rows on group 0 tells it (pg_collation_for fails on types without collations, so it is asked
 * only for the columns the groups described as text).
 */
export interface Collated {
  readonly at: number;
  readonly expr: string;
}

const CLAUSE_WORDS = ['group', 'having', 'window', 'order', 'limit', 'offset', 'fetch', 'for'];

interface Clause {
  node: unknown;
  span: Span;
}

/** The fast-path plan of `sql`, or null: the general path answers it. */
export function planScatter(sql: string, catalog: Catalog): ScatterPlan | null {
  const parsed = parseStatements(sql);
  if (parsed.kind !== 'parsed' || parsed.stmts.length !== 1) return null;
  const top = parsed.stmts[0];
  const n = unwrap(isObj(top) ? top.stmt : undefined);
  if (n === null || n[0] !== 'SelectStmt') return null;
  const s = n[1];
  if (!plainSelect(s) || !fromTables(s.fromClause, catalog) || !safeEverywhere(s)) return null;
  const text = new StatementText(sql);
  try {
    return new Planner(s, text).plan();
  } catch (e) {
    if (e instanceof NotHere) return null;
    throw e;
  }
}

/** One SELECT without what the fast path leaves to the general one. */
function plainSelect(s: Obj): boolean {
  if (s.op !== 'SETOP_NONE' || s.withClause !== undefined || s.intoClause !== undefined) return false;
  if (list(s.lockingClause).length > 0 || list(s.windowClause).length > 0 || s.valuesLists !== undefined)
    return false;
  if (s.groupDistinct === true) return false;
  const d = list(s.distinctClause);
  if (d.length > 1 || (d.length === 1 && unwrap(d[0]) !== null)) return false; // DISTINCT ON
  if (s.limitOption === 'LIMIT_OPTION_WITH_TIES') return false;
  return list(s.fromClause).length > 0;
}

/** FROM holds catalog tables only (no subquery, function, outer join, ONLY, sampling). */
function fromTables(from: unknown, catalog: Catalog): boolean {
  const ok = (item: unknown): boolean => {
    const n = unwrap(item);
    if (n === null) return false;
    if (n[0] === 'RangeVar') {
      const b = n[1];
      if (b.inh !== true || typeof b.relname !== 'string') return false;
      const schema = typeof b.schemaname === 'string' ? b.schemaname : 'public';
      if (b.catalogname !== undefined) return false;
      return catalog.tables.has(relKey({ schema, name: b.relname }));
    }
    if (n[0] === 'JoinExpr') {
      const b = n[1];
      return b.jointype === 'JOIN_INNER' && b.alias === undefined && ok(b.larg) && ok(b.rarg);
    }
    return false;
  };
  return list(from).every(ok);
}

function quoteName(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

/** A LIMIT or OFFSET: a non-negative constant or a Bind parameter; null when absent or ALL. */
function count(node: unknown): Count | null | 'bad' {
  const n = unwrap(node);
  if (n !== null && n[0] === 'ParamRef' && typeof n[1].number === 'number') return { param: n[1].number - 1 };
  return constant(node);
}

/** A non-negative integer constant (LIMIT, OFFSET), null when absent or LIMIT ALL. */
function constant(node: unknown): number | null | 'bad' {
  if (node === undefined) return null;
  const n = unwrap(node);
  if (n === null || n[0] !== 'A_Const') return 'bad';
  if (n[1].isnull === true) return null;
  const iv = isObj(n[1].ival) ? n[1].ival.ival : undefined;
  if (isObj(n[1].ival) && iv === undefined) return 0;
  return typeof iv === 'number' && iv >= 0 ? iv : 'bad';
}

class Planner {
  /** Token index of the depth-0 FROM. */
  private readonly fromTok: number;
  private readonly targets: { node: unknown; span: Span; name: string | null; star: boolean }[] = [];
  /** FROM and WHERE, as written. */
  private readonly fromWhere: Span;
  /** FROM alone. */
  private readonly fromOnly: Span;
  private readonly group: Clause[] = [];
  private readonly having: Clause | null = null;
  private readonly order: { node: unknown; span: Span; dir: string }[] = [];
  private readonly limit: Count | null;
  private readonly offset: Count;

  constructor(
    private readonly s: Obj,
    private readonly t: StatementText,
  ) {
    const tx = t;
    if (!tx.isWord(0, 'select')) no();
    let i = 1;
    if (tx.isWord(1, 'distinct') || tx.isWord(1, 'all')) i = 2;
    // FROM: the last depth-0 FROM before the first table.
    const firstTable = tx.at(firstLocation(s.fromClause));
    let from = -1;
    for (let k = i; k < tx.tokens.length && tx.tokens[k]!.start < firstTable; k++)
      if (tx.depthOf(k) === 0 && tx.isWord(k, 'from')) from = k;
    if (from < 0) no();
    this.fromTok = from;
    const targetNodes = list(s.targetList);
    const items = tx.items(i, from) ?? no();
    if (items.length !== targetNodes.length) no();
    items.forEach((span, k) => {
      const rt = unwrap(targetNodes[k]);
      if (rt === null || rt[0] !== 'ResTarget') no();
      const name = typeof rt[1].name === 'string' ? rt[1].name : null;
      let exprSpan = span;
      if (name !== null) {
        // Cut the alias (`AS name` or `name`) off the target's text.
        const [a, b] = tx.tokenRange(span);
        const last = tx.tokens[b - 1]!;
        if (last.value !== name || (last.kind !== 'ident' && last.kind !== 'quoted_ident')) no();
        const cut = tx.isWord(b - 2, 'as') ? b - 2 : b - 1;
        if (cut <= a) no();
        exprSpan = tx.spanOf(a, cut);
      }
      const v = unwrap(rt[1].val);
      const star =
        v !== null && v[0] === 'ColumnRef' && list(v[1].fields).some((f) => unwrap(f)?.[0] === 'A_Star');
      this.targets.push({ node: rt[1].val, span: exprSpan, name: name ?? figureColname(rt[1].val), star });
    });
    const fwEnd = tx.clauseEnd(from + 1, CLAUSE_WORDS);
    if (fwEnd <= from + 1) no();
    this.fromWhere = tx.spanOf(from, fwEnd);
    let where = fwEnd;
    if (s.whereClause !== undefined) {
      const at = tx.at(firstLocation(s.whereClause));
      for (let k = from + 1; k < fwEnd && tx.tokens[k]!.start < at; k++)
        if (tx.depthOf(k) === 0 && tx.isWord(k, 'where')) where = k;
      if (where === fwEnd) no();
    }
    if (where <= from + 1) no();
    this.fromOnly = tx.spanOf(from, where);
    let k = fwEnd;
    const groupNodes = list(s.groupClause);
    if (groupNodes.length > 0) {
      if (!tx.isWord(k, 'group')) no();
      const end = tx.clauseEnd(k + 2, CLAUSE_WORDS);
      const g = tx.items(k + 2, end) ?? no();
      if (g.length !== groupNodes.length) no();
      g.forEach((span, j) => this.group.push({ node: groupNodes[j], span }));
      k = end;
    }
    if (s.havingClause !== undefined) {
      if (!tx.isWord(k, 'having')) no();
      const end = tx.clauseEnd(k + 1, CLAUSE_WORDS);
      if (end <= k + 1) no();
      this.having = { node: s.havingClause, span: tx.spanOf(k + 1, end) };
      k = end;
    }
    const sortNodes = list(s.sortClause);
    if (sortNodes.length > 0) {
      if (!tx.isWord(k, 'order')) no();
      const end = tx.clauseEnd(k + 2, CLAUSE_WORDS);
      const o = tx.items(k + 2, end) ?? no();
      if (o.length !== sortNodes.length) no();
      o.forEach((span, j) => {
        const sb = unwrap(sortNodes[j]);
        if (sb === null || sb[0] !== 'SortBy' || sb[1].sortby_dir === 'SORTBY_USING') no();
        // The expression is the item without its trailing ASC/DESC and NULLS FIRST/LAST.
        const [a, b0] = tx.tokenRange(span);
        let b = b0;
        if (tx.isWord(b - 2, 'nulls') && (tx.isWord(b - 1, 'first') || tx.isWord(b - 1, 'last'))) b -= 2;
        if (tx.isWord(b - 1, 'asc') || tx.isWord(b - 1, 'desc')) b -= 1;
        if (b <= a) no();
        const dir =
          (sb[1].sortby_dir === 'SORTBY_DESC' ? ' DESC' : sb[1].sortby_dir === 'SORTBY_ASC' ? ' ASC' : '') +
          (sb[1].sortby_nulls === 'SORTBY_NULLS_FIRST'
            ? ' NULLS FIRST'
            : sb[1].sortby_nulls === 'SORTBY_NULLS_LAST'
              ? ' NULLS LAST'
              : '');
        this.order.push({ node: sb[1].node, span: tx.spanOf(a, b), dir });
      });
    }
    const limit = count(s.limitCount);
    const offset = count(s.limitOffset);
    if (limit === 'bad' || offset === 'bad') no();
    this.limit = limit;
    this.offset = offset ?? 0;
    // Bind parameters only in WHERE (every group evaluates them; the rest is written again), and
    // as LIMIT and OFFSET themselves.
    const counts = [s.limitCount, s.limitOffset].map((n) => unwrap(n)).filter((n) => n?.[0] === 'ParamRef');
    for (const p of locationsOf(s, 'ParamRef')) {
      const at = tx.at(p);
      if (counts.some((c) => c![1].location === p)) continue;
      if (at < this.fromOnly.end || at >= this.fromWhere.end) no();
    }
  }

  plan(): ScatterPlan | null {
    const aggregates = this.targets.some((t) => hasAggregate(t.node)) || hasAggregate(this.s.havingClause);
    const distinct = list(this.s.distinctClause).length > 0;
    if (aggregates || this.group.length > 0 || this.having !== null) return this.aggregatePlan(distinct);
    if (distinct) return this.distinctPlan();
    return this.rowsPlan();
  }

  /** The text of a target's expression. */
  private exprText(i: number): string {
    return this.t.text(this.targets[i]!.span);
  }

  /** GROUP BY items as expressions: an ordinal or output name resolved to its target. */
  private groupKeys(): { node: unknown; text: string }[] {
    return this.group.map((g) => {
      const n = unwrap(g.node);
      if (n !== null && n[0] === 'A_Const') {
        const k = constant(g.node);
        if (typeof k !== 'number' || k < 1 || k > this.targets.length) no();
        return { node: this.targets[k - 1]!.node, text: this.exprText(k - 1) };
      }
      const bare = bareName(g.node);
      if (bare !== null) {
        // An output name that is not the same column: PostgreSQL would take an input column first.
        const t = this.targets.find((x) => x.name === bare && !x.star);
        if (t !== undefined && !sameNode(t.node, g.node)) no();
      }
      return { node: g.node, text: this.t.text(g.span) };
    });
  }

  private aggregatePlan(distinct: boolean, keysIn?: { node: unknown; text: string }[]): ScatterPlan {
    if (this.targets.some((t) => t.star)) no();
    const keys = keysIn ?? this.groupKeys();
    const partials: string[] = [];
    const collated: Collated[] = [];
    keys.forEach((k, i) => {
      partials.push(k.text);
      collated.push({ at: i, expr: k.text });
    });
    const final = new FinalText(this.t, keys, partials, collated);
    const targets: FinalPiece[][] = this.targets.map((t) => final.expr(t.node, t.span));
    const having = this.having === null ? null : final.expr(this.having.node, this.having.span);
    const order = this.order.map((o) => {
      const bare = bareName(o.node);
      const isOrdinal = unwrap(o.node)?.[0] === 'A_Const';
      // An ordinal, or an output column's name: the final query has the same output columns.
      if (isOrdinal || (bare !== null && this.targets.some((t) => t.name === bare)))
        return [this.t.text(o.span)] as FinalPiece[];
      return final.expr(o.node, o.span);
    });
    const values = partials.length;
    if (values === 0) no(); // neither a key nor an aggregate (`SELECT 1 FROM t HAVING true`)
    const cols = partials.map((p, i) => `${p} AS ${quoteName(`v${i}`)}`);
    const groupBy = keys.length > 0 ? ` GROUP BY ${keys.map((_, i) => String(i + 1)).join(', ')}` : '';
    const groupSql = `SELECT ${cols.join(', ')} ${this.t.text(this.fromWhere)}${groupBy} LIMIT ${SCATTER_ROW_CAP + 1}`;
    const pieces: FinalPiece[] = [distinct ? 'SELECT DISTINCT ' : 'SELECT '];
    targets.forEach((p, i) => {
      const name = this.targets[i]!.name ?? no();
      if (i > 0) pieces.push(', ');
      pieces.push(...p, ` AS ${quoteName(name)}`);
    });
    pieces.push(' FROM ', { source: true });
    if (keys.length > 0) pieces.push(` GROUP BY ${keys.map((_, i) => `p.v${i}`).join(', ')}`);
    if (having !== null) pieces.push(' HAVING ', ...having);
    order.forEach((p, i) => pieces.push(i === 0 ? ' ORDER BY ' : ', ', ...p, this.order[i]!.dir));
    // LIMIT $1 here would leave the groups' query a parameter it does not use.
    if ((this.limit !== null && typeof this.limit !== 'number') || typeof this.offset !== 'number') no();
    if (this.limit !== null) pieces.push(` LIMIT ${this.limit}`);
    if (this.offset > 0) pieces.push(` OFFSET ${this.offset}`);
    return {
      shape: 'aggregate',
      groupSql,
      values,
      collations: collated,
      from: this.t.text(this.fromOnly),
      final: pieces,
    };
  }

  /** SELECT DISTINCT without aggregates: grouped by its targets. */
  private distinctPlan(): ScatterPlan {
    if (this.targets.some((t) => t.star)) no();
    return this.aggregatePlan(
      true,
      this.targets.map((t, i) => ({ node: t.node, text: this.exprText(i) })),
    );
  }

  /** No aggregate: each group's first limit + offset rows, merged in order. */
  private rowsPlan(): ScatterPlan | null {
    if (this.limit === null) return null; // a whole concatenation streams on the general path
    // Each group's first limit + offset rows (parameters: checked against the bound when bound).
    const term = (c: Count) => (typeof c === 'number' ? String(c) : `$${c.param + 1}::pg_catalog.int8`);
    const n =
      typeof this.limit === 'number' && typeof this.offset === 'number'
        ? String(this.limit + this.offset)
        : `(${term(this.limit)} + ${term(this.offset)})`;
    if (
      typeof this.limit === 'number' &&
      typeof this.offset === 'number' &&
      this.limit + this.offset > SCATTER_ROW_CAP
    )
      return null;
    const star = this.targets.some((t) => t.star);
    const sorts = this.order.map((o) => {
      const node = unwrap(o.node);
      if (node !== null && node[0] === 'A_Const') {
        const k = constant(o.node);
        if (star || typeof k !== 'number' || k < 1 || k > this.targets.length) no();
        return this.exprText(k - 1);
      }
      const bare = bareName(o.node);
      const named = bare === null ? [] : this.targets.filter((t) => t.name === bare && !t.star);
      if (named.length > 1 || (named.length === 1 && star)) no();
      if (named.length === 1) return this.t.text(named[0]!.span);
      return this.t.text(o.span);
    });
    // A guard: a column outside any aggregate, so that a statement that aggregates after all (a
    // user-defined aggregate the planner does not know) fails on the groups (42803) and goes to
    // the general path instead of giving one row per group.
    const guard = `${firstTableRef(this.s.fromClause) ?? no()}.tableoid AS "pgscale_g"`;
    const extra = sorts.map((e, i) => `(${e}) AS ${quoteName(`pgscale_s${i}`)}`);
    const targetText = this.t.text({
      start: this.targets[0]!.span.start,
      end: this.t.tokens[this.fromTok - 1]!.end,
    });
    const orderBy = sorts.map((_, i) => `${quoteName(`pgscale_s${i}`)}${this.order[i]!.dir}`).join(', ');
    const groupSql =
      `SELECT ${targetText}${extra.map((x) => `, ${x}`).join('')}, ${guard} ${this.t.text(this.fromWhere)}` +
      `${orderBy === '' ? '' : ` ORDER BY ${orderBy}`} LIMIT ${n}`;
    return {
      shape: 'rows',
      groupSql,
      sorts: this.order.map((o) => o.dir),
      collations: sorts.map((expr, at) => ({ at, expr })),
      from: this.t.text(this.fromOnly),
      limit: this.limit,
      offset: this.offset,
    };
  }
}

/** How the statement refers to its first table (its alias, else its name), quoted. */
function firstTableRef(from: unknown): string | null {
  let n = unwrap(list(from)[0]);
  while (n !== null && n[0] === 'JoinExpr') n = unwrap(n[1].larg);
  if (n === null || n[0] !== 'RangeVar') return null;
  const b = n[1];
  const alias = isObj(b.alias) && typeof b.alias.aliasname === 'string' ? b.alias.aliasname : null;
  if (alias !== null) return quoteName(alias);
  const rel = quoteName(String(b.relname));
  return typeof b.schemaname === 'string' ? `${quoteName(b.schemaname)}.${rel}` : rel;
}

/** A column reference of one name (`g`), or null. */
function bareName(node: unknown): string | null {
  const n = unwrap(node);
  if (n === null || n[0] !== 'ColumnRef') return null;
  const f = list(n[1].fields);
  if (f.length !== 1) return null;
  const s = unwrap(f[0]);
  return s !== null && s[0] === 'String' && typeof s[1].sval === 'string' ? s[1].sval : null;
}

/** The locations of every node of `kind` under `node`. */
function locationsOf(node: unknown, kind: string): number[] {
  const out: number[] = [];
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (const x of v) visit(x);
      return;
    }
    if (!isObj(v)) return;
    for (const [k, x] of Object.entries(v)) {
      if (k === kind && isObj(x) && typeof x.location === 'number') out.push(x.location);
      if (typeof x === 'object') visit(x);
    }
  };
  visit(node);
  return out;
}
