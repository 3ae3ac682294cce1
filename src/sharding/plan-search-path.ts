/**
 * The shard planner's rules about the session's search_path beyond looking names up
 * (plan-analysis.ts does that, search-path.ts gives the path): what the sharding host runs on
 * every group cannot use the client's path, and a statement after a change of search_path in the
 * same query text is planned before that change takes effect. Pure.
 */
import type { Obj } from '../sql/tree-nodes.js';
import type { Analysis } from './plan-analysis.js';
import type { KeyPlan } from './shard-plan.js';

/** What planStatement saw that matters beyond its plan. */
export interface Seen {
  /** The first unqualified name some catalog table has. */
  unqualified: string | null;
}

/** SET / RESET of search_path (SET SCHEMA, SET LOCAL too), RESET ALL, DISCARD ALL. */
export function changesSearchPath(kind: string, body: Obj): boolean {
  if (kind === 'DiscardStmt') return body.target === 'DISCARD_ALL';
  if (kind !== 'VariableSetStmt') return false;
  return body.kind === 'VAR_RESET_ALL' || body.name === 'search_path';
}

/**
 * A statement the sharding host would run on every group (or split by group) naming a catalog
 * table outside `public` only through the session's search_path: the host's sessions have the
 * default search_path and would find another table, or none. Refused, asking for the schema; a
 * multi-row INSERT is not split (its rows must then belong to one group).
 */
export function hostNamesQualified(a: Analysis, plan: KeyPlan): KeyPlan {
  if (a.viaPath === null) return plan;
  // A multi-row INSERT is not split then (its rows must be on one group).
  if (plan.kind === 'keys' && plan.insert !== null) return { ...plan, insert: null };
  if (plan.kind !== 'fixed') return plan;
  if (plan.route.kind === 'multi' && plan.route.pushdown === true && plan.writes)
    return { ...plan, route: { ...plan.route, pushdown: false } };
  if (plan.route.kind !== 'all' && plan.route.kind !== 'copy-in') return plan;
  return {
    kind: 'fixed',
    cacheable: true,
    writes: plan.writes,
    route: {
      kind: 'error',
      sqlstate: '0A000',
      message:
        `"${a.viaPath}" is found through the session's search_path, but this statement runs on every group ` +
        "from pgscale's own sessions, which do not have it: name the table with its schema",
    },
  };
}
