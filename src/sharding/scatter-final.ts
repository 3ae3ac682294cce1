/**
 * The final query's expressions for the fast path's aggregate shape (scatter-plan.ts): the
 * statement's own text for a target, HAVING or ORDER BY item, with each aggregate call replaced by
 * the combine of its partial columns (`count` as the sum of the groups' counts, `avg` as the sum
 * of their sums over the sum of their counts, …) and each group key by its partial column; what
 * cannot be written so (a column that is not a key, a function outside a short list of
 * pg_catalog's scalar ones, an aggregate other than the eight) throws NotHere: the statement
 * stays on the general path. Also which statements evaluate the same on every group as on one
 * node (safeEverywhere: no subquery, no function of the moment or the session). Pure.
 */
import { isObj, unwrap, type Obj } from '../sql/tree-nodes.js';
import { sameNode, type Span, type StatementText } from './scatter-text.js';
import type { Collated, FinalPiece } from './scatter-plan.js';

export const PARTIAL_AGGREGATES = new Set([
  'count',
  'sum',
  'min',
  'max',
  'avg',
  'bool_and',
  'bool_or',
  'every',
]);

/** Scalar functions the final query may apply to keys and combined aggregates (pg_catalog's). */
const FINAL_FUNCTIONS = new Set([
  'round',
  'trunc',
  'abs',
  'floor',
  'ceil',
  'ceiling',
  'sign',
  'sqrt',
  'cbrt',
  'power',
  'pow',
  'mod',
  'div',
  'exp',
  'ln',
  'log',
  'log10',
  'scale',
  'lower',
  'upper',
  'initcap',
  'length',
  'char_length',
  'character_length',
  'octet_length',
  'concat',
  'concat_ws',
  'substr',
  'substring',
  'left',
  'right',
  'btrim',
  'ltrim',
  'rtrim',
  'trim',
  'replace',
  'lpad',
  'rpad',
  'split_part',
  'strpos',
  'position',
  'md5',
  'to_char',
  'date_trunc',
  'date_part',
  'extract',
  'numeric',
  'int4',
  'int8',
  'float8',
  'text',
]);

/** The statement does not fit the fast path. */
export class NotHere extends Error {}
export function no(): never {
  throw new NotHere();
}

export function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

/** A function's name, lower case as the parser gives it, and whether it is schema-qualified other than pg_catalog. */
export function funcName(f: Obj): { name: string; foreign: boolean } | null {
  const parts = list(f.funcname).map((p) => {
    const u = unwrap(p);
    return u !== null && u[0] === 'String' && typeof u[1].sval === 'string' ? u[1].sval : null;
  });
  if (parts.length === 0 || parts.some((p) => p === null)) return null;
  const name = parts[parts.length - 1]!;
  return { name, foreign: parts.length > 1 && parts[0] !== 'pg_catalog' };
}

/** The final query's expressions: the statement's own text, aggregates and keys replaced. */
export class FinalText {
  constructor(
    private readonly t: StatementText,
    private readonly keys: readonly { node: unknown; text: string }[],
    /** The partial columns' expressions (the keys first): aggregates' partials are added. */
    private readonly partials: string[],
    /** Partial columns whose collation is carried (keys, min, max). */
    private readonly collated: Collated[],
  ) {}

  /** The pieces of expression `node` written at `span`. */
  expr(node: unknown, span: Span): FinalPiece[] {
    const whole = this.keyOf(node);
    if (whole >= 0) return [`p.v${whole}`];
    const cuts: { span: Span; pieces: FinalPiece[] }[] = [];
    this.walk(node, cuts);
    cuts.sort((a, b) => a.span.start - b.span.start);
    const out: FinalPiece[] = [];
    let at = span.start;
    for (const c of cuts) {
      if (c.span.start < at || c.span.end > span.end) no();
      out.push(this.t.sql.slice(at, c.span.start), ...c.pieces);
      at = c.span.end;
    }
    out.push(this.t.sql.slice(at, span.end));
    return out;
  }

  private keyOf(node: unknown): number {
    return this.keys.findIndex((k) => sameNode(k.node, node));
  }

  private walk(node: unknown, cuts: { span: Span; pieces: FinalPiece[] }[]): void {
    if (Array.isArray(node)) {
      for (const x of node) this.walk(x, cuts);
      return;
    }
    const n = unwrap(node);
    if (n === null) return;
    const [kind, b] = n;
    const key = this.keyOf(node);
    if (key >= 0) {
      const loc = typeof b.location === 'number' ? b.location : -1;
      const span =
        kind === 'ColumnRef' ? this.t.columnExtent(loc) : kind === 'FuncCall' ? this.t.callExtent(loc) : null;
      if (span === null) no();
      cuts.push({ span, pieces: [`p.v${key}`] });
      return;
    }
    switch (kind) {
      case 'FuncCall': {
        const name = funcName(b) ?? no();
        if (name.foreign) no();
        if (PARTIAL_AGGREGATES.has(name.name)) {
          cuts.push(this.aggregate(name.name, b));
          return;
        }
        if (!FINAL_FUNCTIONS.has(name.name) || b.agg_star === true || b.agg_distinct === true) no();
        if (list(b.agg_order).length > 0 || b.agg_filter !== undefined || b.func_variadic === true) no();
        this.walk(b.args, cuts);
        return;
      }
      case 'ColumnRef':
        no(); // a column that is not a group key
        break;
      case 'A_Const':
      case 'TypeName':
        return;
      case 'TypeCast':
        this.walk(b.arg, cuts);
        return;
      case 'A_Expr':
      case 'BoolExpr':
      case 'NullTest':
      case 'BooleanTest':
      case 'CaseExpr':
      case 'CaseWhen':
      case 'CoalesceExpr':
      case 'MinMaxExpr':
      case 'CollateClause':
      case 'List':
        for (const [k, v] of Object.entries(b))
          if (k !== 'name' && k !== 'collname' && typeof v === 'object') this.walk(v, cuts);
        return;
      default:
        no();
    }
  }

  /** An aggregate call: its partial columns and its final combine. */
  private aggregate(name: string, b: Obj): { span: Span; pieces: FinalPiece[] } {
    if (b.agg_distinct === true || list(b.agg_order).length > 0 || b.func_variadic === true) no();
    if (b.agg_within_group === true || b.over !== undefined) no();
    const args = list(b.args);
    if (b.agg_star === true ? name !== 'count' || args.length > 0 : args.length !== 1) no();
    if (args.some((a) => hasAggregate(a))) no();
    const span = this.t.callExtent(b.location as number) ?? no();
    const call = this.t.text(span);
    // The call's text from its name on: `name(args) FILTER (…)`, the name replaced.
    const nameSpan = this.t.callExtent(b.location as number)!;
    const [a0] = this.t.tokenRange(nameSpan);
    let open = a0;
    while (!this.t.isPunct(open, '(')) open++;
    const tail = this.t.sql.slice(this.t.tokens[open]!.start, span.end);
    const arg = this.t.sql.slice(this.t.tokens[open]!.end, this.t.tokens[this.t.closing(open)]!.start);
    const add = (text: string, collate = false): number => {
      this.partials.push(text);
      const i = this.partials.length - 1;
      if (collate) this.collated.push({ at: i, expr: arg });
      return i;
    };
    const v = (i: number) => `p.v${i}`;
    switch (name) {
      case 'count': {
        const i = add(call);
        return { span, pieces: [`(pg_catalog.sum(${v(i)})::pg_catalog.int8)`] };
      }
      case 'sum': {
        const i = add(call);
        return { span, pieces: [`(pg_catalog.sum(${v(i)})::`, { sum: i }, ')'] };
      }
      case 'min':
      case 'max': {
        const i = add(call, true);
        return { span, pieces: [`pg_catalog.${name}(${v(i)})`] };
      }
      case 'bool_and':
      case 'every': {
        const i = add(call);
        return { span, pieces: [`pg_catalog.bool_and(${v(i)})`] };
      }
      case 'bool_or': {
        const i = add(call);
        return { span, pieces: [`pg_catalog.bool_or(${v(i)})`] };
      }
      case 'avg': {
        const s = add(`pg_catalog.sum${tail}`);
        const c = add(`pg_catalog.count${tail}`);
        return { span, pieces: [{ avg: [s, c] }] };
      }
      default:
        return no();
    }
  }
}

/** The subtree calls an aggregate the fast path knows (others are caught by FinalText). */
export function hasAggregate(node: unknown): boolean {
  let found = false;
  const visit = (v: unknown): void => {
    if (found) return;
    if (Array.isArray(v)) {
      for (const x of v) visit(x);
      return;
    }
    if (!isObj(v)) return;
    for (const [k, x] of Object.entries(v)) {
      if (k === 'FuncCall' && isObj(x)) {
        const name = funcName(x);
        if (
          name !== null &&
          (PARTIAL_AGGREGATES.has(name.name) || x.agg_star === true || x.agg_distinct === true)
        )
          found = true;
      }
      if (typeof x === 'object') visit(x);
    }
  };
  visit(node);
  return found;
}

/** Functions whose value differs between groups or from one node's (time, randomness, session). */
const MOMENT_FUNCTIONS = new Set([
  'now',
  'random',
  'random_normal',
  'setseed',
  'clock_timestamp',
  'statement_timestamp',
  'transaction_timestamp',
  'timeofday',
  'nextval',
  'currval',
  'lastval',
  'setval',
  'gen_random_uuid',
  'current_setting',
  'set_config',
  'version',
  'txid_current',
  'txid_current_if_assigned',
  'txid_current_snapshot',
  'current_database',
  'current_schema',
  'current_schemas',
  'inet_client_addr',
  'inet_client_port',
  'inet_server_addr',
  'inet_server_port',
]);

/** No node whose value would differ per group or that the planner does not follow. */
export function safeEverywhere(s: Obj): boolean {
  let safe = true;
  const visit = (v: unknown): void => {
    if (!safe) return;
    if (Array.isArray(v)) {
      for (const x of v) visit(x);
      return;
    }
    if (!isObj(v)) return;
    for (const [k, x] of Object.entries(v)) {
      if (
        k === 'SubLink' ||
        k === 'SQLValueFunction' ||
        k === 'GroupingSet' ||
        k === 'GroupingFunc' ||
        k === 'RangeSubselect' ||
        k === 'RangeFunction' ||
        k === 'RangeTableSample' ||
        k === 'XmlExpr' ||
        k === 'CurrentOfExpr'
      ) {
        safe = false;
        return;
      }
      if (k === 'FuncCall' && isObj(x)) {
        const name = funcName(x);
        if (
          name === null ||
          MOMENT_FUNCTIONS.has(name.name) ||
          name.name.startsWith('pg_') ||
          x.over !== undefined
        ) {
          safe = false;
          return;
        }
      }
      if (typeof x === 'object') visit(x);
    }
  };
  visit(s);
  return safe;
}
