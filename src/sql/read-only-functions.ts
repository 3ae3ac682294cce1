/**
 * Which function calls may run on a replica. A SELECT that calls a function is only a read if the
 * function writes nothing and takes no session- or cluster-wide side effect (sequence values,
 * advisory locks, set_config, pg_notify, txid assignment, large objects, dblink …). The parser
 * cannot know what a user-defined function does, so the rule is an allow list: a built-in list
 * of common read-only functions plus the operator's `readOnlyFunctions`, with `writeFunctions`
 * overriding both. Everything else goes to the primary.
 * "Read-only" here means "safe on a hot standby", not IMMUTABLE: now() and random() qualify.
 * https://www.postgresql.org/docs/current/hot-standby.html#HOT-STANDBY-USERS
 */

/**
 * Functions read-only on any server, by the name PostgreSQL resolves them to in pg_catalog.
 * Includes the names the grammar itself generates for SQL-syntax forms (EXTRACT → extract,
 * AT TIME ZONE → timezone, SIMILAR TO → similar_to_escape, OVERLAPS → overlaps …).
 */
export const BUILTIN_READ_ONLY_FUNCTIONS: readonly string[] = [
  // aggregates and window functions
  ...words('count sum avg min max array_agg string_agg json_agg jsonb_agg'),
  ...words('json_object_agg jsonb_object_agg bool_and bool_or every stddev variance'),
  ...words('percentile_cont percentile_disc mode row_number rank dense_rank'),
  ...words('percent_rank cume_dist ntile lag lead first_value last_value nth_value'),
  // date and time
  ...words('now statement_timestamp clock_timestamp transaction_timestamp date_trunc'),
  ...words('date_part extract age make_date make_interval make_timestamp'),
  ...words('make_timestamptz to_timestamp to_date to_char to_number date_bin timezone'),
  ...words('overlaps isfinite justify_interval'),
  // strings
  ...words('lower upper initcap length char_length octet_length substr substring'),
  ...words('position strpos overlay btrim ltrim rtrim replace translate concat'),
  ...words('concat_ws left right lpad rpad repeat reverse split_part starts_with'),
  ...words('format quote_ident quote_literal quote_nullable regexp_replace regexp_match'),
  ...words('regexp_matches regexp_split_to_array regexp_split_to_table similar_to_escape'),
  ...words('string_to_array array_to_string md5 encode decode normalize is_normalized'),
  ...words('pg_collation_for system_user'),
  // numbers
  ...words('abs round ceil ceiling floor trunc mod power sqrt sign ln'),
  ...words('log exp random gen_random_uuid num_nulls num_nonnulls'),
  // arrays and set-returning functions
  ...words('array_length array_upper array_lower cardinality array_position'),
  ...words('array_positions array_append array_prepend array_cat array_remove unnest'),
  ...words('generate_series generate_subscripts'),
  // JSON
  ...words('to_json to_jsonb row_to_json json_build_object jsonb_build_object'),
  ...words('json_build_array jsonb_build_array json_extract_path json_extract_path_text'),
  ...words('jsonb_extract_path jsonb_extract_path_text json_array_length jsonb_array_length'),
  ...words('json_array_elements json_array_elements_text jsonb_array_elements'),
  ...words('jsonb_array_elements_text json_each json_each_text jsonb_each jsonb_each_text'),
  ...words('json_object_keys jsonb_object_keys json_typeof jsonb_typeof jsonb_set'),
  ...words('jsonb_insert jsonb_strip_nulls jsonb_pretty jsonb_path_exists jsonb_path_match'),
  ...words('jsonb_path_query jsonb_path_query_array jsonb_path_query_first'),
  // server and catalog information (all answer on a standby)
  ...words('version current_setting current_database current_schema current_schemas'),
  ...words('inet_server_port inet_server_addr inet_client_port inet_client_addr pg_conf_load_time'),
  ...words('pg_backend_pid pg_is_in_recovery pg_last_wal_replay_lsn pg_last_wal_receive_lsn'),
  ...words('pg_last_xact_replay_timestamp pg_postmaster_start_time pg_typeof format_type'),
  ...words('pg_size_pretty pg_relation_size pg_total_relation_size pg_table_size'),
  ...words('pg_indexes_size pg_database_size pg_get_viewdef pg_get_indexdef'),
  ...words('pg_get_constraintdef pg_get_expr pg_get_userbyid pg_table_is_visible'),
  ...words('obj_description col_description has_table_privilege has_schema_privilege'),
  ...words('has_database_privilege pg_encoding_to_char'),
  // spelled as functions, parsed as expressions; listed so a quoted-free spelling never surprises
  ...words('coalesce nullif greatest least'),
];

function words(list: string): string[] {
  return list.split(' ');
}

/** A call as written: schema null when unqualified. Names are as the parser folded them. */
export interface FunctionName {
  readonly schema: string | null;
  readonly name: string;
}

/**
 * Decides read-only-ness of calls. Matching rules, chosen so that a mistake sends a read to the
 * primary rather than a write to a replica:
 * - built-in names match unqualified calls and calls qualified with pg_catalog;
 * - an unqualified list entry (`f`) matches `f()` and `s.f()` for any schema `s`;
 * - a qualified allow entry (`s.f`) matches only `s.f()` (an unqualified `f()` may resolve elsewhere
 *   through search_path); a qualified deny entry matches `s.f()` and the unqualified `f()`.
 */
export class FunctionPolicy {
  private readonly builtin = new Set(BUILTIN_READ_ONLY_FUNCTIONS);
  private readonly allow: Set<string>;
  private readonly deny: Set<string>;
  private readonly denyBare: Set<string>;

  constructor(readOnly: readonly string[] = [], write: readonly string[] = []) {
    this.allow = new Set(readOnly.map(normalizeEntry));
    this.deny = new Set(write.map(normalizeEntry));
    this.denyBare = new Set([...this.deny].map((e) => e.slice(e.lastIndexOf('.') + 1)));
  }

  isReadOnly(f: FunctionName): boolean {
    const qualified = f.schema === null ? f.name : `${f.schema}.${f.name}`;
    if (this.deny.has(qualified) || this.deny.has(f.name)) return false;
    if (f.schema === null && this.denyBare.has(f.name)) return false;
    if ((f.schema === null || f.schema === 'pg_catalog') && this.builtin.has(f.name)) return true;
    return this.allow.has(f.name) || this.allow.has(qualified);
  }
}

function normalizeEntry(entry: string): string {
  return entry.trim().toLowerCase();
}
