/**
 * What the planner needs to know of the functions a statement calls (plan-analysis.ts): whether
 * a call gives each group its own value (`nextval`, `now()`, `random()`, CURRENT_TIMESTAMP), which
 * a write to a reference table may not compute on every group; and whether it is a well-known
 * built-in that reads only its arguments, without which a read of reference tables stays on
 * group 0 (a user or sequence function may read what only group 0 holds). Pure.
 */
import { unwrap, type Obj } from '../sql/tree-nodes.js';

export interface CallFacts {
  /** As written, for messages: `nextval()`, `s.f()`. */
  readonly name: string;
  readonly volatile: boolean;
  readonly builtin: boolean;
}

/** A FuncCall node's facts, or null when its name cannot be read. */
export function classifyCall(f: Obj): CallFacts | null {
  if (!Array.isArray(f.funcname)) return null;
  const parts = (f.funcname as unknown[]).map((p) => {
    const s = unwrap(p);
    return s !== null && typeof s[1].sval === 'string' ? s[1].sval : '';
  });
  const last = parts[parts.length - 1] ?? '';
  return {
    name: `${parts.join('.')}()`,
    volatile: VOLATILE.has(last),
    builtin: (parts.length === 1 || parts[0] === 'pg_catalog') && BUILTIN.has(last),
  };
}

/**
 * Functions whose result differs between groups running the same statement. Not a complete list
 * of volatile functions (user functions are not known): the common ones that fill keys and
 * timestamps.
 */
const VOLATILE = new Set([
  'nextval',
  'setval',
  'random',
  'random_normal',
  'gen_random_uuid',
  'uuidv4',
  'uuidv7',
  'uuid_generate_v1',
  'uuid_generate_v1mc',
  'uuid_generate_v4',
  'now',
  'clock_timestamp',
  'statement_timestamp',
  'transaction_timestamp',
  'timeofday',
  'txid_current',
  'pg_current_xact_id',
]);

/** CURRENT_DATE, CURRENT_TIME, CURRENT_TIMESTAMP, LOCALTIME, LOCALTIMESTAMP: each group's own clock. */
export function sqlValueCall(f: Obj): string | null {
  const op = typeof f.op === 'string' ? f.op : '';
  return /CURRENT_(DATE|TIME)|LOCALTIME/.test(op) ? op.replace(/^SVFOP_/, '') : null;
}

/**
 * Built-in functions that read nothing but their arguments (and the clock): a read of reference
 * tables calling only these may run on any group. Anything else may be a user function.
 */
const BUILTIN = new Set(
  (
    'count sum avg min max bool_and bool_or every array_agg string_agg json_agg jsonb_agg json_object_agg ' +
    'jsonb_object_agg row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value ' +
    'nth_value lower upper length char_length octet_length substr substring trim btrim ltrim rtrim lpad rpad ' +
    'concat concat_ws replace position strpos left right split_part regexp_replace regexp_match regexp_matches ' +
    'starts_with format md5 encode decode initcap reverse repeat translate to_char to_date to_timestamp ' +
    'to_number date_trunc date_part extract age now abs round trunc floor ceil ceiling mod power sqrt ' +
    'exp ln log sign random greatest least array_length array_position cardinality unnest generate_series ' +
    'to_json to_jsonb json_build_object jsonb_build_object json_build_array jsonb_build_array ' +
    'jsonb_set jsonb_array_length json_array_length jsonb_typeof row_to_json array_to_string string_to_array ' +
    'coalesce nullif'
  ).split(' '),
);
