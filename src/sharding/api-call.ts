/**
 * Citus's SQL API as the proxy meets it: `SELECT create_distributed_table('users', 'user_id')`
 * and its siblings, recognised in a Query text and read into a call with its arguments in
 * Citus's signature order (named arguments `colocate_with => 'none'` placed, defaults filled).
 * Pure: parsing with the real PostgreSQL parser, no I/O. The proxy answers these calls itself
 * (they run on every group); everything else about a statement is the planner's.
 */
import { parseStatements } from '../sql/pg-parser.js';
import { isObj, unwrap } from '../sql/tree-nodes.js';
import type { Obj } from '../sql/tree-nodes.js';

export type ApiArg = string | number | boolean | null;

interface Signature {
  /** Parameter names in order, as Citus declares them. */
  readonly params: readonly string[];
  /** How many leading parameters have no default. */
  readonly required: number;
  readonly defaults: readonly ApiArg[];
  /** The result column's type: void, or bigint. */
  readonly returns: 'void' | 'bigint';
}

const SIGNATURES = {
  create_distributed_table: {
    params: ['table_name', 'distribution_column', 'distribution_type', 'colocate_with', 'shard_count'],
    required: 2,
    defaults: ['hash', 'default', null],
    returns: 'void',
  },
  create_reference_table: { params: ['table_name'], required: 1, defaults: [], returns: 'void' },
  undistribute_table: {
    params: ['table_name', 'cascade_via_foreign_keys'],
    required: 1,
    defaults: [false],
    returns: 'void',
  },
  get_shard_id_for_distribution_column: {
    params: ['table_name', 'distribution_value'],
    required: 1,
    defaults: [null],
    returns: 'bigint',
  },
  // Shard moves (issue #17): run by the controller's move runner (src/cli/sharding-moves.ts).
  citus_move_shard_placement: {
    params: [
      'shard_id',
      'source_node_name',
      'source_node_port',
      'target_node_name',
      'target_node_port',
      'shard_transfer_mode',
    ],
    required: 5,
    defaults: ['auto'],
    returns: 'void',
  },
  citus_rebalance_start: {
    params: ['rebalance_strategy', 'drain_only', 'shard_transfer_mode'],
    required: 0,
    defaults: [null, false, 'auto'],
    returns: 'bigint',
  },
  citus_rebalance_wait: { params: [], required: 0, defaults: [], returns: 'void' },
  citus_rebalance_stop: { params: [], required: 0, defaults: [], returns: 'void' },
  citus_drain_node: {
    params: ['nodename', 'nodeport', 'shard_transfer_mode', 'rebalance_strategy'],
    required: 2,
    defaults: ['auto', null],
    returns: 'void',
  },
} as const satisfies Record<string, Signature>;

export type ApiFunction = keyof typeof SIGNATURES;

export interface ApiCall {
  readonly fn: ApiFunction;
  /** Arguments by parameter name, defaults filled in. */
  readonly args: Readonly<Record<string, ApiArg>>;
  /** The result column's type. */
  readonly returns: 'void' | 'bigint';
  /** The result column's name: the function's, or the alias written (`AS id`). */
  readonly column: string;
}

export type ApiOutcome =
  | { readonly ok: true; readonly call: ApiCall }
  | { readonly ok: false; readonly sqlstate: string; readonly message: string };

/** A cheap test before parsing: the text names one of the functions, followed by `(`. */
const NAMES =
  /\b(create_distributed_table|create_reference_table|undistribute_table|get_shard_id_for_distribution_column|citus_move_shard_placement|citus_rebalance_start|citus_rebalance_wait|citus_rebalance_stop|citus_drain_node)\s*\(/i;

/** The calls the controller's shard moves answer (not runApi). */
export const MOVE_CALLS: ReadonlySet<string> = new Set([
  'citus_move_shard_placement',
  'citus_rebalance_start',
  'citus_rebalance_wait',
  'citus_rebalance_stop',
  'citus_drain_node',
]);

/**
 * The API call `sql` is, or null when it is none: exactly one SELECT of one such function call,
 * without FROM, WHERE or anything else (anything more elaborate is an ordinary statement, and the
 * function does not exist on the servers: PostgreSQL's own 42883 then).
 */
export function apiCallOf(sql: string): ApiOutcome | null {
  if (!NAMES.test(sql)) return null;
  const parsed = parseStatements(sql);
  if (parsed.kind !== 'parsed' || parsed.stmts.length !== 1) return null;
  const stmt = (parsed.stmts[0] as Obj | undefined)?.stmt;
  const sel = unwrap(stmt);
  if (sel === null || sel[0] !== 'SelectStmt') return null;
  const body = sel[1];
  for (const k of [
    'fromClause',
    'whereClause',
    'groupClause',
    'havingClause',
    'sortClause',
    'withClause',
    'limitCount',
  ])
    if (body[k] !== undefined) return null;
  const targets = body.targetList;
  if (!Array.isArray(targets) || targets.length !== 1) return null;
  const rt = unwrap(targets[0]);
  if (rt === null || rt[0] !== 'ResTarget') return null;
  const fc = unwrap(rt[1].val);
  if (fc === null || fc[0] !== 'FuncCall') return null;
  const name = funcName(fc[1]);
  if (name === null || !(name in SIGNATURES)) return null;
  const fn = name as ApiFunction;
  const sig: Signature = SIGNATURES[fn];
  if (fc[1].agg_star || fc[1].func_variadic || fc[1].agg_order || fc[1].over)
    return undefinedFunction(fn, 'with this call form');
  const args: Record<string, ApiArg> = {};
  const rawArgs = Array.isArray(fc[1].args) ? fc[1].args : [];
  let position = 0;
  let named = false;
  for (const a of rawArgs) {
    const n = unwrap(a);
    if (n !== null && n[0] === 'NamedArgExpr') {
      named = true;
      const pname = typeof n[1].name === 'string' ? n[1].name : '';
      if (!sig.params.includes(pname)) return undefinedFunction(fn, `with an argument named ${pname}`);
      if (pname in args) return undefinedFunction(fn, `with argument ${pname} given twice`);
      const v = constOf(n[1].arg);
      if (v === undefined) return notConstant(fn);
      args[pname] = v;
      continue;
    }
    // PostgreSQL: positional arguments cannot follow named ones.
    if (named)
      return { ok: false, sqlstate: '42601', message: 'positional argument cannot follow named argument' };
    if (position >= sig.params.length) return undefinedFunction(fn, `with ${rawArgs.length} arguments`);
    const v = constOf(a);
    if (v === undefined) return notConstant(fn);
    args[sig.params[position++]!] = v;
  }
  for (let i = 0; i < sig.params.length; i++) {
    const p = sig.params[i]!;
    if (p in args) continue;
    if (i < sig.required) return undefinedFunction(fn, `without its argument ${p}`);
    args[p] = sig.defaults[i - sig.required] ?? null;
  }
  const column = typeof rt[1].name === 'string' ? rt[1].name : fn;
  return { ok: true, call: { fn, args, returns: sig.returns, column } };
}

/** The function's name, when unqualified or qualified by pg_catalog or public. */
function funcName(fc: Obj): string | null {
  const parts = Array.isArray(fc.funcname) ? fc.funcname : [];
  const names: string[] = [];
  for (const p of parts) {
    const s = unwrap(p);
    if (s === null || s[0] !== 'String' || typeof s[1].sval !== 'string') return null;
    names.push(s[1].sval);
  }
  if (names.length === 1) return names[0]!;
  if (names.length === 2 && (names[0] === 'pg_catalog' || names[0] === 'public')) return names[1]!;
  return null;
}

/** A constant argument (a literal, possibly cast: `'users'::regclass`); undefined when not one. */
function constOf(node: unknown): ApiArg | undefined {
  let n = unwrap(node);
  if (n !== null && n[0] === 'TypeCast') n = unwrap(n[1].arg);
  if (n === null || n[0] !== 'A_Const') return undefined;
  const c = n[1];
  if (c.isnull === true) return null;
  if (isObj(c.sval)) return typeof c.sval.sval === 'string' ? c.sval.sval : '';
  if (isObj(c.ival)) return typeof c.ival.ival === 'number' ? c.ival.ival : 0;
  if (isObj(c.fval)) return typeof c.fval.fval === 'string' ? c.fval.fval : undefined;
  if (isObj(c.boolval)) return c.boolval.boolval === true;
  return undefined;
}

function undefinedFunction(fn: string, how: string): ApiOutcome {
  return { ok: false, sqlstate: '42883', message: `function ${fn} does not exist ${how}` };
}

function notConstant(fn: string): ApiOutcome {
  return {
    ok: false,
    sqlstate: '0A000',
    message: `the arguments of ${fn} must be constants when called through pgscale`,
  };
}
