/**
 * UPDATE, DELETE and MERGE in the statement walk (plan-analysis.ts): the target is bound in the
 * statement's level with the FROM/USING tables, so `WHERE k = …` pins it; `SET k = v` on a
 * distributed target is kept to be checked at Bind (the row must stay in its shard, as Citus
 * requires: "modifying the partition value of rows is not allowed"); `SET k = k` changes nothing.
 * MERGE on a catalog table is refused by the planner. Pure, no I/O.
 */
import { isObj, unwrap, type Obj } from '../sql/tree-nodes.js';
import { keySourceOf } from './key-source.js';
import type { Analysis, Occurrence, Scope } from './plan-analysis.js';

export const PARTITION_VALUE = 'modifying the partition value of rows is not allowed';

export function analyseModify(
  a: Analysis,
  kind: string,
  body: Obj,
  scope: Scope,
  ctes: readonly string[],
): void {
  const rel = body.relation;
  if (!isObj(rel)) return;
  const target = a.occurrence(rel, true);
  const alias = isObj(rel.alias) && typeof rel.alias.aliasname === 'string' ? rel.alias.aliasname : null;
  scope.bindings.push({
    name: alias ?? (typeof rel.relname === 'string' ? rel.relname : ''),
    schema: alias === null && typeof rel.schemaname === 'string' ? rel.schemaname : null,
    occ: target,
  });
  const from = kind === 'UpdateStmt' ? body.fromClause : body.usingClause;
  if (Array.isArray(from)) a.fromList(from as unknown[], scope, ctes);
  a.where(body.whereClause, scope, ctes, true);
  if (kind === 'UpdateStmt') analyseAssignments(a, body.targetList, target, scope);
  a.expressions([body.targetList, body.returningClause, body.returningList], scope, ctes);
}

/** `SET k = …` (UPDATE, ON CONFLICT DO UPDATE) on a distributed target. */
export function analyseAssignments(a: Analysis, targets: unknown, target: Occurrence, scope: Scope): void {
  const t = target.table;
  if (t === null || t.kind !== 'distributed' || !Array.isArray(targets)) return;
  for (const item of targets as unknown[]) {
    const r = unwrap(item);
    if (r === null || r[0] !== 'ResTarget' || r[1].name !== t.column) continue;
    if (Array.isArray(r[1].indirection)) {
      a.refuse('0A000', PARTITION_VALUE);
      continue;
    }
    const same = a.column(r[1].val, scope);
    if (same !== null && same.occ === target) continue;
    const s = unwrap(r[1].val)?.[0] === 'MultiAssignRef' ? null : keySourceOf(r[1].val, t.type!);
    if (s === null || s.kind === 'null') a.refuse('0A000', PARTITION_VALUE);
    else a.assigns.push({ occ: target, source: s });
  }
}

export function analyseMerge(a: Analysis, body: Obj, scope: Scope, ctes: readonly string[]): void {
  if (isObj(body.relation)) a.occurrence(body.relation, true);
  if (body.sourceRelation !== undefined) a.fromList([body.sourceRelation], scope, ctes);
  a.expressions(
    [body.joinCondition, body.mergeWhenClauses, body.returningClause, body.returningList],
    scope,
    ctes,
  );
  a.merge = true;
}
