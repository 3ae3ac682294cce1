/**
 * The session-state check: one query, run on a server connection before it goes back to the
 * pool after a transaction that did something the proxy cannot see into (a user function, DO,
 * SQL EXECUTE, CALL, COMMIT AND CHAIN; see src/sql/session-safety.ts). It asks the server what
 * its session holds beyond what the proxy itself put there: another role, session settings other
 * than the ones the proxy tracks and replays, temporary relations, LISTEN channels, session
 * advisory locks, prepared statements the proxy did not name, open (WITH HOLD) cursors. Anything
 * found means the client made session state behind the proxy's back; the caller then pins the
 * connection to that client (its session keeps working as in PostgreSQL) and the pool resets it
 * with DISCARD ALL when the client leaves. Resetting at once instead would silently drop state
 * the client created on purpose and still expects (its temp table, its lock, its LISTEN).
 *
 * The query must not be fooled by the session it inspects: every object, function and operator
 * is schema-qualified (a client may have put its own schema before pg_catalog in search_path),
 * and the comparisons are made here, not in SQL.
 */

/** Session settings as the server reports them: `name=value` lines, lower-case names, sorted. */
const SETTINGS_TEXT =
  "(SELECT pg_catalog.string_agg(pg_catalog.concat(pg_catalog.lower(name), '=', setting), E'\\n' " +
  "ORDER BY pg_catalog.lower(name)) FROM pg_catalog.pg_settings WHERE source OPERATOR(pg_catalog.=) 'session')";

const STATE_QUERY =
  'SELECT session_user::pg_catalog.text, current_user::pg_catalog.text, ' +
  `${SETTINGS_TEXT}, ` +
  'EXISTS (SELECT FROM pg_catalog.pg_class WHERE relnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()), ' +
  'EXISTS (SELECT FROM pg_catalog.pg_listening_channels()), ' +
  "EXISTS (SELECT FROM pg_catalog.pg_locks WHERE locktype OPERATOR(pg_catalog.=) 'advisory' " +
  'AND pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()), ' +
  "EXISTS (SELECT FROM pg_catalog.pg_prepared_statements WHERE NOT pg_catalog.starts_with(name, 'pgscale_')), " +
  'EXISTS (SELECT FROM pg_catalog.pg_cursors)';

/**
 * The check's text for a connection logged in as `loginUser` whose session settings, as the
 * proxy tracks them, are `tracked` (lower-case name → SQL value as the client wrote it). With
 * tracked settings, a second result gives their values as the server normalises them: the
 * tracked values are applied with SET LOCAL inside the check's own implicit transaction (undone
 * at its end), so that `search_path = a,b` and `'a, b'` compare equal without parsing values here.
 */
export function stateCheckQuery(tracked: ReadonlyMap<string, string>): string {
  if (tracked.size === 0) return STATE_QUERY;
  const sets: string[] = [];
  for (const [k, v] of tracked) sets.push(`SET LOCAL ${quoteSettingName(k)} = ${v}`);
  return `${STATE_QUERY}; ${sets.join('; ')}; SELECT ${SETTINGS_TEXT}`;
}

/**
 * What the check found that the proxy did not put there, as a short reason, or null when the
 * session holds nothing but tracked state. `rows` are the DataRows of stateCheckQuery's results
 * in order (text values); `failed` says the server answered with an error.
 */
export function stateCheckFinding(
  rows: readonly (readonly (string | null)[])[],
  loginUser: string,
  tracked: ReadonlyMap<string, string>,
  failed: boolean,
): string | null {
  const r = rows[0];
  if (failed || !r || r.length < 8) return 'the session-state check failed';
  if (r[0] !== loginUser || r[1] !== loginUser) return `role changed to ${r[1] ?? '?'}`;
  const found: string[] = [];
  const settings = r[2] ?? '';
  const names = settings === '' ? [] : settings.split('\n').map((l) => l.slice(0, l.indexOf('=')));
  const untracked = names.filter((n) => !tracked.has(n));
  // What the tracked settings give, as the server lists them: placeholders of custom settings
  // (`myapp.user_id`) and settings tracked at their default are not in pg_settings' session rows,
  // so the tracked map's size is no measure.
  const expected = tracked.size > 0 ? (rows[1]?.[0] ?? '') : '';
  if (untracked.length > 0) found.push(`setting ${untracked.join(', ')}`);
  else if (expected !== settings) {
    const want = expected === '' ? 0 : expected.split('\n').length;
    found.push(names.length < want ? 'a tracked setting was reset' : 'a tracked setting changed');
  }
  if (r[3] === 't') found.push('temporary table');
  if (r[4] === 't') found.push('LISTEN');
  if (r[5] === 't') found.push('session advisory lock');
  if (r[6] === 't') found.push('prepared statement');
  if (r[7] === 't') found.push('WITH HOLD cursor');
  return found.length === 0 ? null : found.join(', ');
}

/** A setting name as SQL: bare when it is a plain (possibly dotted) lower-case name, else quoted. */
export function quoteSettingName(name: string): string {
  return /^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}
