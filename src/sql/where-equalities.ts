/**
 * The `column = value` conjuncts of a statement's WHERE, for routing by a distribution column:
 * those at the top AND level (nested ANDs are flattened; anything under OR or NOT is not a
 * conjunct and is skipped), with the value a constant or a `$n` parameter, either side of `=`.
 * `column IN (v1, v2, …)` whose items are all constants or parameters is reported too, as an
 * `in` value (the router may send it to each group owning one of them); `= ANY($1)` and every
 * other operator are not. The column is resolved to its relation when qualified by a table name
 * or alias of the FROM list, or when that list holds exactly one plain relation; else null.
 */
import { isObj, rangeVarName, unwrap, type Obj } from './tree-nodes.js';

export type Value =
  /** A literal: its text as PostgreSQL's grammar keeps it (`5`, `abc`, `1.5`, `true`), and the type of a cast on it. */
  | { readonly kind: 'const'; readonly text: string; readonly cast: string | null }
  | { readonly kind: 'param'; readonly index: number };

export interface InList {
  readonly kind: 'in';
  readonly values: readonly Value[];
}

export interface Equality {
  readonly column: string;
  /** The relation's name as written in FROM (`s.t` or `t`), or null when it cannot be told. */
  readonly relation: string | null;
  readonly value: Value | InList;
}

/** A FROM-list relation: its name as written, its alias, and its parts for matching qualifiers. */
interface FromRel {
  readonly name: string;
  readonly schema: string | null;
  readonly relname: string;
  readonly alias: string | null;
}

/** The equalities of the top statement `name` with body `body`. */
export function equalitiesOf(name: string, body: Obj): Equality[] {
  let where: unknown;
  const from: unknown[] = [];
  switch (name) {
    case 'SelectStmt':
      if (body.op !== undefined && body.op !== 'SETOP_NONE') return [];
      where = body.whereClause;
      if (Array.isArray(body.fromClause)) from.push(...(body.fromClause as unknown[]));
      break;
    case 'UpdateStmt':
      where = body.whereClause;
      from.push({ RangeVar: body.relation });
      if (Array.isArray(body.fromClause)) from.push(...(body.fromClause as unknown[]));
      break;
    case 'DeleteStmt':
      where = body.whereClause;
      from.push({ RangeVar: body.relation });
      if (Array.isArray(body.usingClause)) from.push(...(body.usingClause as unknown[]));
      break;
    default:
      return [];
  }
  if (where === undefined) return [];
  const rels: FromRel[] = [];
  let plainOnly = true;
  for (const item of from) plainOnly = collectFrom(item, rels) && plainOnly;
  const out: Equality[] = [];
  for (const conjunct of conjuncts(where)) {
    const e = equalityOf(conjunct, rels, plainOnly);
    if (e !== null) out.push(e);
  }
  return out;
}

/** Adds the relations of a FROM item (through JOINs); false when it holds anything else. */
function collectFrom(item: unknown, rels: FromRel[]): boolean {
  const stack: unknown[] = [item];
  let plain = true;
  while (stack.length > 0) {
    const n = unwrap(stack.pop());
    if (n === null) continue;
    const [kind, body] = n;
    if (kind === 'RangeVar') {
      rels.push({
        name: rangeVarName(body),
        schema: typeof body.schemaname === 'string' ? body.schemaname : null,
        relname: String(body.relname),
        alias: isObj(body.alias) && typeof body.alias.aliasname === 'string' ? body.alias.aliasname : null,
      });
    } else if (kind === 'JoinExpr') {
      stack.push(body.rarg, body.larg);
    } else {
      plain = false;
    }
  }
  return plain;
}

/** The top-level AND conjuncts of an expression, nested ANDs flattened. */
export function conjuncts(where: unknown): unknown[] {
  const out: unknown[] = [];
  const stack: unknown[] = [where];
  while (stack.length > 0) {
    const v = stack.pop();
    const n = unwrap(v);
    if (n !== null && n[0] === 'BoolExpr' && n[1].boolop === 'AND_EXPR' && Array.isArray(n[1].args)) {
      const args = n[1].args as unknown[];
      for (let i = args.length - 1; i >= 0; i--) stack.push(args[i]);
    } else {
      out.push(v);
    }
  }
  return out;
}

function equalityOf(node: unknown, rels: readonly FromRel[], plainOnly: boolean): Equality | null {
  const n = unwrap(node);
  if (n === null || n[0] !== 'A_Expr') return null;
  const e = n[1];
  if (operatorName(e.name) !== '=') return null;
  if (e.kind === 'AEXPR_OP') {
    const left = columnOf(e.lexpr);
    const right = columnOf(e.rexpr);
    if (left !== null && right === null) return withValue(left, valueOf(e.rexpr), rels, plainOnly);
    if (right !== null && left === null) return withValue(right, valueOf(e.lexpr), rels, plainOnly);
    return null;
  }
  if (e.kind === 'AEXPR_IN') {
    const col = columnOf(e.lexpr);
    const items = unwrap(e.rexpr);
    if (col === null || items === null || items[0] !== 'List' || !Array.isArray(items[1].items)) return null;
    const values: Value[] = [];
    for (const item of items[1].items as unknown[]) {
      const v = valueOf(item);
      if (v === null) return null;
      values.push(v);
    }
    return withValue(col, { kind: 'in', values }, rels, plainOnly);
  }
  return null;
}

function withValue(
  col: readonly string[],
  value: Value | InList | null,
  rels: readonly FromRel[],
  plainOnly: boolean,
): Equality | null {
  if (value === null) return null;
  return { column: col[col.length - 1]!, relation: resolve(col, rels, plainOnly), value };
}

/** The relation a column reference belongs to, when the FROM list tells. */
function resolve(col: readonly string[], rels: readonly FromRel[], plainOnly: boolean): string | null {
  if (col.length === 1) return plainOnly && rels.length === 1 ? rels[0]!.name : null;
  const qualifier = col[col.length - 2]!;
  const schema = col.length >= 3 ? col[col.length - 3]! : null;
  for (const r of rels) {
    if (schema === null && r.alias !== null) {
      if (r.alias === qualifier) return r.name;
      continue;
    }
    if (r.relname === qualifier && (schema === null || r.schema === schema)) return r.name;
  }
  return null;
}

function operatorName(name: unknown): string | null {
  if (!Array.isArray(name) || name.length !== 1) return null;
  const s = unwrap(name[0]);
  return s !== null && s[0] === 'String' && typeof s[1].sval === 'string' ? s[1].sval : null;
}

/** The fields of a plain column reference (`a`, `t.a`, `s.t.a`), or null. */
function columnOf(node: unknown): string[] | null {
  const n = unwrap(node);
  if (n === null || n[0] !== 'ColumnRef' || !Array.isArray(n[1].fields)) return null;
  const out: string[] = [];
  for (const f of n[1].fields as unknown[]) {
    const s = unwrap(f);
    if (s === null || s[0] !== 'String' || typeof s[1].sval !== 'string') return null;
    out.push(s[1].sval);
  }
  return out.length > 0 ? out : null;
}

/** A constant (optionally cast once) or a parameter (cast or not), or null for anything else. */
export function valueOf(node: unknown): Value | null {
  const n = unwrap(node);
  if (n === null) return null;
  if (n[0] === 'ParamRef' && typeof n[1].number === 'number') return { kind: 'param', index: n[1].number };
  if (n[0] === 'TypeCast') {
    const inner = unwrap(n[1].arg);
    if (inner !== null && inner[0] === 'ParamRef' && typeof inner[1].number === 'number')
      return { kind: 'param', index: inner[1].number };
  }
  return constOf(node);
}

/** A literal, or a literal with one cast (`'5'::int` → text 5, cast int4); null for NULL. */
export function constOf(node: unknown): Extract<Value, { kind: 'const' }> | null {
  const n = unwrap(node);
  if (n === null) return null;
  if (n[0] === 'TypeCast') {
    const text = literalText(unwrap(n[1].arg));
    if (text === null) return null;
    return { kind: 'const', text, cast: typeNameOf(n[1].typeName) };
  }
  const text = literalText(n);
  return text === null ? null : { kind: 'const', text, cast: null };
}

function literalText(n: [string, Obj] | null): string | null {
  if (n === null || n[0] !== 'A_Const') return null;
  const c = n[1];
  if (c.isnull === true) return null;
  if (isObj(c.sval)) return scalar(c.sval.sval, '');
  if (isObj(c.ival)) return scalar(c.ival.ival, '0');
  if (isObj(c.fval)) return scalar(c.fval.fval, '');
  if (isObj(c.boolval)) return c.boolval.boolval === true ? 'true' : 'false';
  if (isObj(c.bsval)) return scalar(c.bsval.bsval, '');
  return null;
}

/** The type's last name part (`pg_catalog.int4` → `int4`), with `[]` for an array type. */
function typeNameOf(typeName: unknown): string | null {
  if (!isObj(typeName) || !Array.isArray(typeName.names)) return null;
  const last = unwrap(typeName.names[typeName.names.length - 1]);
  if (last === null || typeof last[1].sval !== 'string') return null;
  return Array.isArray(typeName.arrayBounds) ? `${last[1].sval}[]` : last[1].sval;
}

/** A string or number field as text; absent (libpg-query omits zero and empty values) → `absent`. */
function scalar(v: unknown, absent: string): string {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : absent;
}
