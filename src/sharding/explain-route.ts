/**
 * What EXPLAIN through the proxy says about a statement's route (docs/sharding.md, "Seeing the
 * route"): which group runs it, which shards it touches and what pinned it there. Made from the
 * planner's KeyPlan and the resolved ShardRoute (shard-plan.ts, resolve-shards.ts) with one
 * execution's Bind values; the session shows it (proxy/session/explain-note.ts). Only EXPLAIN
 * statements are described, so nothing here is on the routing's hot path. Pure.
 */
import { parseStatements } from '../sql/pg-parser.js';
import { isObj, unwrap } from '../sql/tree-nodes.js';
import { shardNameOf } from './catalog-lookup.js';
import type { KeySource } from './key-source.js';
import type { KeyClass, KeyPlan, ShardRoute } from './shard-plan.js';
import type { Catalog, ColumnValue, DistributedTable } from './types.js';

export type ExplainFormat = 'text' | 'json' | 'xml' | 'yaml';

/** A statement's route as EXPLAIN shows it. */
export interface RouteFacts {
  /**
   * - `one`: its distributed tables are pinned to shards of one group (`group`);
   * - `local`: no distributed or reference table (the database's own group, or for a statement
   *   naming no table at all, whichever group the session is on);
   * - `reference`: reference tables only, read: any group answers (the session's);
   * - `every`: every group, by the sharding host (a reference-table write).
   */
  readonly kind: 'one' | 'local' | 'reference' | 'every';
  readonly group: string | null;
  readonly shards: readonly { readonly id: number; readonly name: string }[];
  /** What pinned it (`users.user_id = 5`), or null when there is nothing to say. */
  readonly reason: string | null;
}

/** A cheap test before any parse: the text may be an EXPLAIN (comments and blanks may lead). */
const MAY_EXPLAIN = /^(?:\s|--[^\n]*\n|\/\*[^]*?\*\/)*explain\b/i;

export function mayBeExplain(sql: string): boolean {
  return MAY_EXPLAIN.test(sql);
}

/** The output format of `sql` when it is one EXPLAIN statement alone, else null. */
export function explainFormat(sql: string): ExplainFormat | null {
  if (!mayBeExplain(sql)) return null;
  const parsed = parseStatements(sql);
  if (parsed.kind !== 'parsed' || parsed.stmts.length !== 1) return null;
  const first = parsed.stmts[0];
  const n = unwrap(isObj(first) ? first.stmt : undefined);
  if (n === null || n[0] !== 'ExplainStmt') return null;
  let format: ExplainFormat = 'text';
  const options = Array.isArray(n[1].options) ? (n[1].options as unknown[]) : [];
  for (const o of options) {
    const d = unwrap(o);
    if (d === null || d[0] !== 'DefElem' || d[1].defname !== 'format') continue;
    const arg = unwrap(d[1].arg);
    const v = arg === null ? undefined : (arg[1].sval ?? arg[1].str);
    if (typeof v === 'string' && /^(text|json|xml|yaml)$/i.test(v)) format = v.toLowerCase() as ExplainFormat;
  }
  return format;
}

/**
 * The route facts of a statement planned as `plan`, resolved to `route` with `params`; null for
 * routes EXPLAIN does not reach (errors, several groups: those are refused before it runs).
 */
export function routeFacts(
  plan: KeyPlan | null,
  route: ShardRoute,
  params: readonly (ColumnValue | null)[],
  catalog: Catalog,
): RouteFacts | null {
  switch (route.kind) {
    case 'local':
      return { kind: 'local', group: null, shards: [], reason: null };
    case 'reference-read':
      return { kind: 'reference', group: null, shards: [], reason: null };
    case 'all':
      return { kind: 'every', group: null, shards: [], reason: route.reason };
    case 'one':
      return {
        kind: 'one',
        group: route.group,
        shards: route.shards.map((id) => ({ id, name: shardName(catalog, id) })),
        reason: plan === null ? null : reasonOf(plan, params, catalog),
      };
    default:
      return null;
  }
}

/** The name of shard `id` (`<table>_<id>`, the partition's name), or its id alone if unknown. */
function shardName(catalog: Catalog, id: number): string {
  const t = tableOfShard(catalog, id);
  return t === null ? String(id) : shardNameOf(t.rel.name, id);
}

function tableOfShard(catalog: Catalog, id: number): DistributedTable | null {
  for (const t of catalog.tables.values()) {
    if (t.kind !== 'distributed') continue;
    const count = catalog.colocations.get(t.colocationId)?.shardCount ?? 0;
    if (id >= t.firstShardId && id < t.firstShardId + count) return t;
  }
  return null;
}

/** `users.user_id = 5 AND orders.user_id = 5`-like text: each pinned table's column and its values. */
function reasonOf(plan: KeyPlan, params: readonly (ColumnValue | null)[], catalog: Catalog): string | null {
  const classes: KeyClass[] = [];
  const collect = (p: KeyPlan): void => {
    if (p.kind === 'keys') classes.push(...p.classes);
    else if (p.kind === 'statements') p.plans.forEach(collect);
  };
  collect(plan);
  const parts: string[] = [];
  for (const c of classes) {
    const values = valuesText(c, params);
    for (const part of c.colocs) {
      for (const first of part.firstShardIds) {
        const t = [...catalog.tables.values()].find(
          (x) => x.kind === 'distributed' && x.firstShardId === first,
        );
        if (t === undefined || t.column === null) continue;
        parts.push(`${t.rel.name}.${t.column} ${values}`);
      }
    }
  }
  return parts.length === 0 ? null : parts.join(' AND ');
}

function valuesText(c: KeyClass, params: readonly (ColumnValue | null)[]): string {
  const k = c.key;
  switch (k.kind) {
    case 'one':
      return `= ${sourceText(k.source, params)}`;
    case 'list':
      return `IN (${k.sources.map((s) => sourceText(s, params)).join(', ')})`;
    case 'array-param':
      return `= ANY($${k.index + 1}${valueSuffix(params[k.index])})`;
  }
}

function sourceText(s: KeySource, params: readonly (ColumnValue | null)[]): string {
  switch (s.kind) {
    case 'const':
      return valueText(s.value);
    case 'null':
      return 'NULL';
    case 'param':
      return `$${s.index + 1}${valueSuffix(params[s.index])}`;
  }
}

/** ` (5)` after a parameter: its value when it came as text. */
function valueSuffix(v: ColumnValue | null | undefined): string {
  if (v === undefined) return '';
  return v === null ? ' (NULL)' : ` (${valueText(v)})`;
}

/** A value as a literal would show it (long values cut). */
function valueText(v: ColumnValue): string {
  if (v.format === 'binary') return `binary ${v.bytes.length} bytes`;
  const t = v.text.length > 60 ? `${v.text.slice(0, 57)}...` : v.text;
  return /^-?\d+(\.\d+)?$/.test(t) ? t : `'${t.replace(/'/g, "''")}'`;
}
