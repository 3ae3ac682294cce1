/**
 * Which start-up parameters a client may send through the proxy, and what they become. Session
 * settings the proxy can replay (the ones PostgreSQL reports, plus a short allowlist) become the
 * client's tracked settings; `options` may carry `-c name=value` only for those same settings;
 * `replication`, role changes and anything unknown are refused, so a start-up packet can never
 * escalate privileges or reach the proxy's own internal connections.
 */
import { ASCII_UNSAFE_ENCODINGS, canonicalEncoding, unsafeEncodingDetail } from '../../protocol/encodings.js';
import { SqlState } from '../../protocol/sqlstate.js';
import type { Result } from '../../protocol/result.js';
import { fail, ok } from '../../protocol/result.js';

/** Settings a client may choose at start-up, lowercase. */
export const TRACKED_STARTUP_SETTINGS = new Set([
  'application_name',
  'client_encoding',
  'datestyle',
  'timezone',
  'intervalstyle',
  'standard_conforming_strings',
  'search_path',
  'extra_float_digits',
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'default_transaction_isolation',
  'default_transaction_read_only',
  'bytea_output',
  'client_min_messages',
]);

/** The names PostgreSQL uses in ParameterStatus for reported settings. */
export const REPORTED_NAMES: Record<string, string> = {
  application_name: 'application_name',
  client_encoding: 'client_encoding',
  datestyle: 'DateStyle',
  timezone: 'TimeZone',
  intervalstyle: 'IntervalStyle',
  standard_conforming_strings: 'standard_conforming_strings',
  search_path: 'search_path',
  default_transaction_read_only: 'default_transaction_read_only',
};

export interface StartupSettings {
  /** lowercase name → SQL literal, to replay with SET. */
  settings: Map<string, string>;
  /** lowercase name → raw value, to report in ParameterStatus. */
  raw: Map<string, string>;
}

export function sqlLiteral(v: string): string {
  return `'${v.replace(/'/g, "''")}'`;
}

/**
 * Settings whose value is a list of identifiers (GUC_LIST_INPUT | GUC_LIST_QUOTE in PostgreSQL's
 * guc_tables.c). A start-up value such as `search_path=a,b` is a raw list string, but
 * `SET search_path = 'a,b'` makes one schema named "a,b" of it; so the value is split as
 * PostgreSQL splits it and replayed as a list, `SET search_path = 'a', 'b'`.
 */
const IDENTIFIER_LIST_SETTINGS = new Set(['search_path']);

/** The SQL text after `SET name =` that gives `name` the start-up value `value`. */
function settingSql(name: string, value: string): Result<string> {
  if (!IDENTIFIER_LIST_SETTINGS.has(name)) return ok(sqlLiteral(value));
  const names = splitIdentifierList(value);
  if (!names) {
    return fail(
      SqlState.INVALID_PARAMETER_VALUE,
      `invalid value for parameter "${name}": "${value.slice(0, 64)}"`,
      'List syntax is invalid.',
    );
  }
  return ok(names.length === 0 ? "''" : names.map(sqlLiteral).join(', '));
}

/**
 * PostgreSQL's SplitIdentifierString (src/backend/utils/adt/varlena.c) with ',' as separator:
 * whitespace around names is ignored, "quoted" names keep their case ("" is a quote), unquoted
 * names are lowercased (ASCII, as downcase_identifier does for UTF-8). Undefined on bad syntax.
 */
export function splitIdentifierList(raw: string): string[] | undefined {
  const out: string[] = [];
  const isSpace = (c: string | undefined) => c !== undefined && /\s/.test(c);
  let i = 0;
  while (isSpace(raw[i])) i++;
  if (i === raw.length) return out;
  for (;;) {
    let name = '';
    if (raw[i] === '"') {
      i++;
      for (;;) {
        if (i >= raw.length) return undefined; // unterminated quote
        if (raw[i] === '"') {
          if (raw[i + 1] !== '"') break;
          i++;
        }
        name += raw[i];
        i++;
      }
      i++;
      if (name === '') return undefined; // PostgreSQL refuses ""
    } else {
      const start = i;
      while (i < raw.length && raw[i] !== ',' && !isSpace(raw[i])) i++;
      if (i === start) return undefined; // empty name
      name = raw.slice(start, i).replace(/[A-Z]+/g, (m) => m.toLowerCase());
    }
    out.push(name);
    while (isSpace(raw[i])) i++;
    if (i === raw.length) return out;
    if (raw[i] !== ',') return undefined;
    i++;
    while (isSpace(raw[i])) i++;
  }
}

export function startupSettings(
  params: ReadonlyMap<string, string>,
  ignored: readonly string[],
): Result<StartupSettings> {
  const settings = new Map<string, string>();
  const raw = new Map<string, string>();
  const ignore = new Set(ignored.map((s) => s.toLowerCase()));
  for (const [key, value] of params) {
    const k = key.toLowerCase();
    if (k === 'user' || k === 'database' || k.startsWith('_pq_.')) continue;
    if (k === 'replication') {
      if (value === 'false' || value === 'off' || value === '0' || value === 'no') continue;
      return fail(
        SqlState.FEATURE_NOT_SUPPORTED,
        'replication connections are not supported through the pgscale proxy',
      );
    }
    if (k === 'options') {
      const opts = parseOptions(value);
      if (!opts.ok) return opts;
      for (const [n, v] of opts.value) {
        if (!TRACKED_STARTUP_SETTINGS.has(n)) {
          return fail(SqlState.PROTOCOL_VIOLATION, `unsupported startup parameter in options: ${n}`);
        }
        const sql = settingSql(n, v);
        if (!sql.ok) return sql;
        settings.set(n, sql.value);
        raw.set(n, v);
      }
      continue;
    }
    if (TRACKED_STARTUP_SETTINGS.has(k)) {
      const sql = settingSql(k, value);
      if (!sql.ok) return sql;
      settings.set(k, sql.value);
      raw.set(k, value);
      continue;
    }
    if (ignore.has(k)) continue;
    return fail(SqlState.PROTOCOL_VIOLATION, `unsupported startup parameter: ${key.slice(0, 64)}`);
  }
  const enc = raw.get('client_encoding');
  const canonical = enc === undefined ? null : canonicalEncoding(enc);
  if (canonical !== null) {
    if (ASCII_UNSAFE_ENCODINGS.has(canonical)) {
      return fail(
        SqlState.FEATURE_NOT_SUPPORTED,
        `client_encoding ${canonical} is not supported through pgscale`,
        unsafeEncodingDetail(canonical),
      );
    }
    raw.set('client_encoding', canonical); // reported as PostgreSQL reports it ("latin1" → LATIN1)
  }
  return ok({ settings, raw });
}

/**
 * `options` as libpq splits it: whitespace-separated, backslash escapes a character;
 * `-c name=value`, `-cname=value` and `--name=value` set a parameter. Anything else is refused.
 */
export function parseOptions(s: string): Result<[string, string][]> {
  const words: string[] = [];
  let cur = '';
  let has = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === '\\' && i + 1 < s.length) {
      cur += s[++i];
      has = true;
    } else if (/\s/.test(ch)) {
      if (has) words.push(cur);
      cur = '';
      has = false;
    } else {
      cur += ch;
      has = true;
    }
  }
  if (has) words.push(cur);
  const out: [string, string][] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    let assign: string | undefined;
    if (w === '-c') assign = words[++i];
    else if (w.startsWith('-c')) assign = w.slice(2);
    else if (w.startsWith('--')) assign = w.slice(2);
    if (!assign || !assign.includes('=')) {
      return fail(SqlState.PROTOCOL_VIOLATION, `unsupported startup option "${w.slice(0, 64)}"`);
    }
    const eq = assign.indexOf('=');
    out.push([assign.slice(0, eq).toLowerCase().replace(/-/g, '_'), assign.slice(eq + 1)]);
  }
  return ok(out);
}
