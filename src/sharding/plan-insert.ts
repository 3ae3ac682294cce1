/**
 * The INSERT part of the statement walk (plan-analysis.ts): where the distribution column of the
 * target gets its value in each VALUES row (a column list, or the table's column order when the
 * caller knows it), INSERT … SELECT (the target follows the source's distribution column, or a
 * constant), ON CONFLICT (the key may only be set to itself: `excluded.k`) and RETURNING. An
 * INSERT into a distributed table whose key is missing, DEFAULT, NULL or an expression the router
 * cannot evaluate is refused with Citus's words. Pure, no I/O.
 */
import { isObj, unwrap, type Obj } from '../sql/tree-nodes.js';
import { keySourceOf, type KeySource } from './key-source.js';
import type { Analysis, Occurrence, Scope } from './plan-analysis.js';
import { analyseAssignments } from './plan-modify.js';

export interface InsertRows {
  /** The target's RangeVar node (identifies the top statement's own INSERT). */
  readonly relation: Obj;
  readonly occ: Occurrence;
  /** The key of each VALUES row, in order (or the one constant of an INSERT … SELECT). */
  readonly sources: readonly KeySource[];
  /** VALUES rows (which may be split by group), not INSERT … SELECT. */
  readonly values: boolean;
}

export const NO_KEY = 'cannot perform an INSERT without a partition column value';
export const NULL_KEY = 'cannot perform an INSERT with NULL in the partition column';

export function analyseInsert(a: Analysis, body: Obj, scope: Scope, ctes: readonly string[]): void {
  const rel = body.relation;
  if (!isObj(rel)) return;
  const target = a.occurrence(rel, true);
  const t = target.table;
  const select = unwrap(body.selectStmt);
  const alias = isObj(rel.alias) && typeof rel.alias.aliasname === 'string' ? rel.alias.aliasname : null;
  const bind = (): void => {
    scope.bindings.push({
      name: alias ?? (typeof rel.relname === 'string' ? rel.relname : ''),
      schema: alias === null && typeof rel.schemaname === 'string' ? rel.schemaname : null,
      occ: target,
    });
    scope.bindings.push({ name: 'excluded', schema: null, occ: target });
  };
  if (t === null || t.kind !== 'distributed') {
    a.expressions(body.selectStmt, scope, ctes);
    bind();
    a.expressions([body.onConflictClause, body.returningClause, body.returningList], scope, ctes);
    return;
  }
  const type = t.type!;
  const col = t.column!;
  let index = -1;
  if (Array.isArray(body.cols)) {
    (body.cols as unknown[]).forEach((c, i) => {
      const r = unwrap(c);
      if (r === null || r[1].name !== col) return;
      if (Array.isArray(r[1].indirection))
        a.refuse('0A000', `the distribution column "${col}" of "${target.name}" must be assigned whole`);
      index = i;
    });
  } else {
    const order = a.columnsOf?.(t) ?? null;
    if (order === null) {
      a.refuse(
        '0A000',
        `INSERT into distributed table "${target.name}" needs a column list: the router does not know the table's column order`,
      );
    } else index = order.indexOf(col);
  }

  if (select === null) {
    a.refuse('0A000', NO_KEY); // DEFAULT VALUES
  } else if (isValues(select[1])) {
    const sources: KeySource[] = [];
    for (const row of select[1].valuesLists as unknown[]) {
      const list = unwrap(row);
      const items = list !== null && Array.isArray(list[1].items) ? (list[1].items as unknown[]) : [];
      const item = index >= 0 ? items[index] : undefined;
      const s = item === undefined || unwrap(item)?.[0] === 'SetToDefault' ? null : keySourceOf(item, type);
      if (item === undefined || unwrap(item)?.[0] === 'SetToDefault') a.refuse('0A000', NO_KEY);
      else if (s === null)
        a.refuse('0A000', `the value of distribution column "${col}" must be a constant or a parameter`);
      else if (s.kind === 'null') a.refuse('23502', NULL_KEY);
      else sources.push(s);
      a.expressions(items, scope, ctes);
    }
    if (sources.length > 0) {
      a.pin(target, sources.length === 1 ? { kind: 'one', source: sources[0]! } : { kind: 'list', sources });
      a.insertRows.push({ relation: rel, occ: target, sources, values: true });
    }
  } else if (select[0] === 'SelectStmt') {
    const from = a.query('SelectStmt', select[1], scope, ctes);
    insertSelectKey(a, select[1], from, rel, target, index);
  } else {
    a.expressions(body.selectStmt, scope, ctes);
  }
  bind();
  if (isObj(body.onConflictClause)) analyseAssignments(a, body.onConflictClause.targetList, target, scope);
  a.expressions([body.onConflictClause, body.returningClause, body.returningList], scope, ctes);
}

/** A plain VALUES list (no ORDER BY, LIMIT or WITH on it). */
function isValues(s: Obj): boolean {
  return (
    Array.isArray(s.valuesLists) &&
    s.withClause === undefined &&
    s.sortClause === undefined &&
    s.limitCount === undefined &&
    s.limitOffset === undefined
  );
}

/**
 * INSERT … SELECT into a distributed table: the target's key must be the distribution column of
 * a table of the SELECT's own level (the target then follows that table's class: it is pinned
 * when the source is) or a constant or parameter (the target is pinned by it).
 */
function insertSelectKey(
  a: Analysis,
  s: Obj,
  from: Scope,
  rel: Obj,
  target: Occurrence,
  index: number,
): void {
  const t = target.table!;
  const refuse = (): void =>
    a.refuse(
      '0A000',
      `INSERT … SELECT into distributed table "${target.name}" needs its distribution column "${t.column}" taken from ` +
        'the distribution column of a table pinned to one group, or from a constant',
    );
  if ((s.op !== undefined && s.op !== 'SETOP_NONE') || !Array.isArray(s.targetList) || index < 0)
    return refuse();
  for (const item of s.targetList as unknown[]) {
    const r = unwrap(item);
    const c = r === null ? null : unwrap(r[1].val);
    if (c !== null && c[0] === 'ColumnRef' && JSON.stringify(c[1].fields).includes('A_Star')) return refuse();
  }
  const r = unwrap(s.targetList[index]);
  if (r === null) return refuse();
  const col = a.column(r[1].val, from);
  if (col !== null && col.local) {
    a.follows[target.id] = col.occ.id;
    return;
  }
  const k = keySourceOf(r[1].val, t.type!);
  if (k === null) return refuse();
  if (k.kind === 'null') return a.refuse('23502', NULL_KEY);
  a.pin(target, { kind: 'one', source: k });
  a.insertRows.push({ relation: rel, occ: target, sources: [k], values: false });
}
