/**
 * Which start-up parameters a client may send through the proxy, and what they become. As in
 * PostgreSQL, any key of the start-up packet other than user, database, options and replication
 * is a setting, and so is every `-c name=value` / `--name=value` of `options`: each becomes one of
 * the client's tracked settings, replayed with SET on whichever server connection it gets. All
 * but application_name and client_encoding are `unverified`: the login succeeds only once a server
 * has accepted their values (startup-verify.ts), so a bad one fails the login with PostgreSQL's
 * own error instead of making every later replay fail. `pgscale.*` settings are the proxy's own (never sent to a server). `replication`, role
 * and session-authorization changes are refused, so a start-up packet can never escalate
 * privileges or reach the proxy's own internal connections.
 */
import { ASCII_UNSAFE_ENCODINGS, canonicalEncoding, unsafeEncodingDetail } from '../../protocol/encodings.js';
import { SqlState } from '../../protocol/sqlstate.js';
import type { Result } from '../../protocol/result.js';
import { fail, ok } from '../../protocol/result.js';
import { CONSISTENCY_LEVELS } from '../types.js';

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
  /**
   * lowercase name → SQL literal, to replay with SET. Shared by every client that gave the same
   * settings (sharedSettings), so never written to.
   */
  settings: ReadonlyMap<string, string>;
  /** lowercase name → raw value, to report in ParameterStatus. */
  raw: Map<string, string>;
  /** The proxy's own settings (`pgscale.consistency`…): lowercase name → accepted value. */
  proxy: Map<string, string>;
  /** Settings a server must accept before the login succeeds (all but SELF_CHECKED). */
  unverified: string[];
}

/**
 * Settings whose start-up value the server need not check: any application_name is valid (the
 * server only truncates it), and client_encoding is checked here (canonicalEncoding).
 */
const SELF_CHECKED = new Set(['application_name', 'client_encoding']);

/** The proxy's own session settings and their accepted values (SET or start-up `-c`). */
export const PROXY_SETTINGS: Record<string, readonly string[]> = {
  'pgscale.target': ['primary', 'replica', 'any'],
  'pgscale.consistency': CONSISTENCY_LEVELS,
};

/**
 * Settings no start-up packet may give through the proxy: they change who the session is (a
 * pooled connection logged in as the pool's user must stay that user), or only last for one
 * transaction, which a replayed SET cannot reproduce.
 */
const REFUSED_SETTINGS = new Set([
  'role',
  'session_authorization',
  'transaction_isolation',
  'transaction_read_only',
  'transaction_deferrable',
]);

/**
 * `v` as an SQL string literal that means `v` whatever standard_conforming_strings says on the
 * connection that reads it (another client may have turned it off there): a value holding a
 * backslash is written as an escape string, E'…', where `\\` is one backslash in either mode.
 */
export function sqlLiteral(v: string): string {
  const quoted = v.replace(/'/g, "''");
  return v.includes('\\') ? `E'${quoted.replace(/\\/g, '\\\\')}'` : `'${quoted}'`;
}

/**
 * Settings whose value is a list of identifiers (GUC_LIST_INPUT | GUC_LIST_QUOTE in PostgreSQL's
 * guc_tables.c). A start-up value such as `search_path=a,b` is a raw list string, but
 * `SET search_path = 'a,b'` makes one schema named "a,b" of it; so the value is split as
 * PostgreSQL splits it and replayed as a list, `SET search_path = 'a', 'b'`.
 */
const IDENTIFIER_LIST_SETTINGS = new Set(['search_path', 'temp_tablespaces']);

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
  const proxy = new Map<string, string>();
  const unverified: string[] = [];
  const ignore = new Set(ignored.map((s) => s.toLowerCase()));
  /** One setting given at start-up (a packet key or an `options` switch). */
  const take = (n: string, v: string): Result<void> => {
    if (n.startsWith('pgscale.')) {
      const allowed = PROXY_SETTINGS[n];
      if (!allowed)
        return fail(SqlState.UNDEFINED_OBJECT, `unrecognized configuration parameter "${n.slice(0, 64)}"`);
      const value = v.toLowerCase();
      if (!allowed.includes(value)) {
        return fail(
          SqlState.INVALID_PARAMETER_VALUE,
          `invalid value for parameter "${n}": "${v.slice(0, 64)}" (accepted: ${allowed.join(', ')})`,
        );
      }
      proxy.set(n, value);
      return ok(undefined);
    }
    if (REFUSED_SETTINGS.has(n)) {
      return fail(
        SqlState.FEATURE_NOT_SUPPORTED,
        `parameter "${n}" cannot be given at start-up through the pgscale proxy`,
      );
    }
    const sql = settingSql(n, v);
    if (!sql.ok) return sql;
    if (!SELF_CHECKED.has(n) && !settings.has(n)) unverified.push(n);
    settings.set(n, sql.value);
    raw.set(n, v);
    return ok(undefined);
  };
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
        const r = take(n, v);
        if (!r.ok) return r;
      }
      continue;
    }
    if (!TRACKED_STARTUP_SETTINGS.has(k) && ignore.has(k)) continue;
    const r = take(k, value);
    if (!r.ok) return r;
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
  return ok({ settings: sharedSettings(settings), raw, proxy, unverified });
}

/** Distinct start-up settings kept for sharing; beyond it each client keeps its own map. */
export const SHARED_SETTINGS_MAX = 256;
const shared = new Map<string, ReadonlyMap<string, string>>();

/**
 * One map for every client that gave the same start-up settings (a map of two settings costs
 * ~190 bytes; clients of one application all send the same ones). At most SHARED_SETTINGS_MAX
 * distinct ones are kept, so a client inventing settings cannot grow the table.
 */
export function sharedSettings(settings: Map<string, string>): ReadonlyMap<string, string> {
  let key = '';
  for (const [k, v] of settings) key += `${k}\0${v}\0`;
  const known = shared.get(key);
  if (known) return known;
  if (shared.size < SHARED_SETTINGS_MAX) shared.set(key, settings);
  return settings;
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
