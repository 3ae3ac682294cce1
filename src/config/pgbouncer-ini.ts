/**
 * Reads an existing PgBouncer configuration (`pgbouncer.ini`) and turns it into our `proxy`
 * settings, so that `pgscale proxy --pgbouncer-ini FILE` runs on a PgBouncer setup unchanged.
 * The INI dialect is PgBouncer's (libusual cfparser): `[section]` lines, `key = value` lines whose
 * value is the rest of the line (no quoting, no trailing comments), `;`/`#` comment lines and
 * `%include FILE`. `[databases]` values are connection strings parsed as PgBouncer does
 * (src/loader.c: `key=value` pairs, values optionally single-quoted). Settings we cannot honour
 * become warnings, or errors when running without them would be unsafe (plain auth, statement
 * pooling). Where PgBouncer's default differs from ours and the file does not set the key, we
 * apply PgBouncer's default, so the proxy behaves as the file's author expects.
 * Reference: https://www.pgbouncer.org/config.html
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { z } from 'zod';
import { proxySchema } from './schema.js';
import type { ProxyConfig, proxyDatabaseSchema } from './schema.js';
import { ConfigError, ErrorCodes, errorMessage } from '../errors.js';

type ProxyInput = z.input<typeof proxySchema>;
type DatabaseInput = z.input<typeof proxyDatabaseSchema>;

export interface PgbouncerIniResult {
  proxy: ProxyInput;
  warnings: string[];
}

export interface ConvertOptions {
  /** Reads an included file (absolute path). Without it, `%include` is an error. */
  readFile?: (path: string) => string;
}

/** Nesting limit of `%include`, as in PgBouncer (libusual MAX_INCLUDE). */
const MAX_INCLUDE_DEPTH = 10;
/** Databases the proxy answers itself (admin console). */
const RESERVED_DATABASES = new Set(['pgscale', 'pgbouncer']);
/** What PgBouncer runs when auth_user is set without auth_query (same lookup, our wording). */
export const DEFAULT_AUTH_QUERY =
  'SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_catalog.pg_authid WHERE rolname = $1 AND rolcanlogin';
/** Largest max_packet_size we accept (PostgreSQL's own message limit). */
const MAX_PACKET = 1073741823;

interface Loc {
  readonly file: string;
  readonly line: number;
}

type IniEvent =
  { kind: 'section'; name: string; loc: Loc } | { kind: 'entry'; key: string; value: string; loc: Loc };

const at = (loc: Loc) => `${loc.file}:${loc.line}`;

function fail(loc: Loc, message: string): never {
  throw new ConfigError(ErrorCodes.CONFIG_INVALID, `${at(loc)}: ${message}`);
}

// ---------------------------------------------------------------------------------------------
// INI lexer

/** Flattens a file and its includes into section and entry events, in reading order. */
function readIni(
  text: string,
  file: string,
  opts: ConvertOptions,
  stack: readonly string[],
  out: IniEvent[],
): void {
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  lines.forEach((raw, i) => {
    const loc = { file, line: i + 1 };
    const line = raw.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) return;
    if (/^%include(\s|$)/.test(line)) {
      readInclude(line.slice(8).trim(), loc, opts, stack, out);
      return;
    }
    if (line.startsWith('[')) {
      const m = /^\[([^\]]*)\]\s*(?:[;#].*)?$/.exec(line);
      if (!m) fail(loc, 'syntax error: a section line looks like [pgbouncer]');
      out.push({ kind: 'section', name: m[1]!.trim().toLowerCase(), loc });
      return;
    }
    const kv = splitEntry(line);
    if (!kv) fail(loc, 'syntax error: expected a "[section]" line or a "name = value" line');
    out.push({ kind: 'entry', ...kv, loc });
  });
}

function readInclude(
  target: string,
  loc: Loc,
  opts: ConvertOptions,
  stack: readonly string[],
  out: IniEvent[],
): void {
  if (target === '') fail(loc, '%include needs a file name');
  if (!opts.readFile) fail(loc, '%include needs file access: load the file with loadPgbouncerIni');
  if (stack.length > MAX_INCLUDE_DEPTH) {
    fail(loc, `%include nested more than ${MAX_INCLUDE_DEPTH} levels deep`);
  }
  const abs = resolvePath(target, loc, '%include');
  if (stack.includes(abs)) fail(loc, `%include loop: ${[...stack, abs].join(' -> ')}`);
  let text: string;
  try {
    text = opts.readFile(abs);
  } catch (e) {
    fail(loc, `%include ${abs}: cannot read it (${errorMessage(e)})`);
  }
  readIni(text, abs, opts, [...stack, abs], out);
}

/**
 * `name = value`. Names are PgBouncer's unquoted characters, or a database name in SQL identifier
 * quotes ("my db", "" for a quote). The value is the rest of the line, trimmed.
 */
function splitEntry(line: string): { key: string; value: string } | null {
  let key = '';
  let i = 0;
  if (line.startsWith('"')) {
    for (i = 1; ; i++) {
      if (i >= line.length) return null;
      if (line[i] === '"') {
        if (line[i + 1] !== '"') break;
        i++;
      }
      key += line[i];
    }
    i++;
  } else {
    key = /^[A-Za-z0-9_.*-]*/.exec(line)![0];
    i = key.length;
  }
  const m = /^[ \t]*=[ \t]*(.*)$/.exec(line.slice(i));
  if (key === '' || !m) return null;
  return { key, value: m[1]!.trim() };
}

/** Relative to the directory of the file the line is in; `~` and `~/…` are the home directory. */
function resolvePath(value: string, loc: Loc, key: string): string {
  if (value === '~' || value.startsWith('~/')) return resolve(homedir(), value.slice(2));
  if (value.startsWith('~')) fail(loc, `${key}: ~user paths are not supported, write the full path`);
  return resolve(dirname(loc.file), value);
}

// ---------------------------------------------------------------------------------------------
// Connection strings ([databases])

/**
 * PgBouncer's connection-string syntax: `key=value` pairs separated by spaces; a value may be
 * single-quoted, with '' (PgBouncer) or \' (libpq) for a quote and \\ for a backslash.
 * Messages name keys, never values: the string may hold a password.
 */
function parseConnString(s: string, loc: Loc, where: string): [string, string][] {
  const pairs: [string, string][] = [];
  let i = 0;
  const skipWs = () => {
    while (i < s.length && /\s/.test(s[i]!)) i++;
  };
  for (;;) {
    skipWs();
    if (i >= s.length) return pairs;
    const start = i;
    while (i < s.length && s[i] !== '=' && !/\s/.test(s[i]!)) i++;
    const key = s.slice(start, i).toLowerCase();
    skipWs();
    if (key === '' || s[i] !== '=') {
      fail(loc, `${where}: connection string syntax error after ${pairs.length} key=value pair(s)`);
    }
    i++;
    skipWs();
    let value = '';
    if (s[i] === "'") {
      for (i++; ; i++) {
        if (i >= s.length) fail(loc, `${where}: unterminated quote in the value of ${key}`);
        const c = s[i]!;
        const next = s[i + 1];
        if (c === "'" && next === "'") i++;
        else if (c === '\\' && (next === "'" || next === '\\')) i++;
        else if (c === "'") break;
        value += s[i];
      }
      i++;
    } else {
      const vStart = i;
      while (i < s.length && !/\s/.test(s[i]!)) i++;
      value = s.slice(vStart, i);
    }
    if (value === '') fail(loc, `${where}: empty value for ${key}`);
    pairs.push([key, value]);
  }
}

/** Per-database keys PgBouncer knows and we do not honour. */
const DB_UNSUPPORTED = new Set([
  'auth_user',
  'auth_query',
  'auth_dbname',
  'client_encoding',
  'datestyle',
  'timezone',
  'application_name',
  'connect_query',
  'min_pool_size',
  'reserve_pool',
  'reserve_pool_size',
  'max_db_connections',
  'max_db_client_connections',
  'server_lifetime',
  'query_wait_timeout',
  'load_balance_hosts',
  'target_session_attrs',
]);

// ---------------------------------------------------------------------------------------------
// [pgbouncer] keys

const INT_KEYS = {
  listen_port: 'port',
  default_pool_size: 'default_pool_size',
  min_pool_size: 'min_pool_size',
  max_client_conn: 'max_client_conn',
  max_db_connections: 'max_db_connections',
  max_prepared_statements: 'max_prepared_statements',
  max_packet_size: 'max_packet_size',
} as const;

const SECONDS_KEYS = [
  'server_idle_timeout',
  'server_lifetime',
  'server_check_delay',
  'server_connect_timeout',
  'query_wait_timeout',
  'client_login_timeout',
  'client_idle_timeout',
  'idle_transaction_timeout',
  'autodb_idle_timeout',
] as const;

const LIST_KEYS = ['admin_users', 'stats_users', 'ignore_startup_parameters'] as const;

const PROCESS = 'pgscale does its own logging and process management';
const UNIX = 'pgscale listens and connects over TCP only';
const SOCKET = 'socket options are not configurable in pgscale';
const DNS = 'host names are resolved by the system resolver at connect time';
const TLS = 'TLS protocol, cipher and client-certificate settings are not configurable in pgscale';
const NO = 'not supported by pgscale';

/** PgBouncer settings with no counterpart here: a warning each, with the reason. */
const IGNORED: Record<string, string> = {
  logfile: PROCESS,
  pidfile: PROCESS,
  user: 'pgscale does not switch Unix users: start it as the user it should run as',
  syslog: PROCESS,
  syslog_ident: PROCESS,
  syslog_facility: PROCESS,
  verbose: PROCESS,
  unix_socket_dir: UNIX,
  unix_socket_mode: UNIX,
  unix_socket_group: UNIX,
  so_reuseport: SOCKET,
  listen_backlog: SOCKET,
  pkt_buf: SOCKET,
  sbuf_loopcnt: SOCKET,
  resolv_conf: DNS,
  client_tls_ca_file: TLS,
  client_tls_protocols: TLS,
  client_tls_ciphers: TLS,
  client_tls13_ciphers: TLS,
  client_tls_ecdhcurve: TLS,
  client_tls_dheparams: TLS,
  server_tls_key_file: TLS,
  server_tls_cert_file: TLS,
  server_tls_protocols: TLS,
  server_tls_ciphers: TLS,
  server_tls13_ciphers: TLS,
  auth_hba_file: 'auth_type hba is not supported',
  auth_ident_file: 'auth_type hba is not supported',
  auth_ldap_options: 'auth_type ldap is not supported',
  peer_id: 'peering ([peers]) is not supported',
};
for (const k of [
  'stats_period',
  'service_name',
  'job_name',
  'conffile',
  'reserve_pool_size',
  'reserve_pool_timeout',
  'max_db_client_connections',
  'max_user_connections',
  'max_user_client_connections',
  'server_round_robin',
  'server_reset_query',
  'server_reset_query_always',
  'server_check_query',
  'server_fast_close',
  'server_login_retry',
  'pool_idle_timeout',
  'query_timeout',
  'query_wait_notify',
  'cancel_wait_timeout',
  'transaction_timeout',
  'suspend_timeout',
  'track_extra_parameters',
  'disable_pqexec',
  'application_name_add_host',
  'login_notify_message',
  'scram_iterations',
]) {
  IGNORED[k] = NO;
}
const IGNORED_PREFIXES: [string, string][] = [
  ['log_', PROCESS],
  ['tcp_', SOCKET],
  ['dns_', DNS],
];

// ---------------------------------------------------------------------------------------------
// Conversion

interface Origin extends Loc {
  /** How the user names the setting: `listen_port`, `[databases] mydb: pool_size`. */
  readonly label: string;
}

interface Converted extends PgbouncerIniResult {
  /** Where each produced setting came from, by JSON of its path in `proxy`. */
  readonly origins: Map<string, Origin>;
}

class Converter {
  readonly proxy: Record<string, unknown> = {};
  readonly databases: Record<string, DatabaseInput> = {};
  readonly tls: { mode?: 'disable' | 'allow' | 'require'; cert_file?: string; key_file?: string } = {};
  readonly serverTls: {
    mode?: 'disable' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
    ca_file?: string;
  } = {};
  readonly warnings: string[] = [];
  readonly origins = new Map<string, Origin>();
  sawMainSection = false;
  tlsModeLoc: Loc | null = null;

  warn(loc: Loc, message: string): void {
    this.warnings.push(`${at(loc)}: ${message}`);
  }

  set(path: string[], value: unknown, loc: Loc, label: string): void {
    let obj: Record<string, unknown> = this.proxy;
    if (path[0] === 'tls') obj = this.tls;
    else if (path[0] === 'server_tls') obj = this.serverTls;
    obj[path[path.length - 1]!] = value;
    this.origins.set(JSON.stringify(path), { ...loc, label });
  }

  setting(key: string, value: string, loc: Loc): void {
    const name = key.toLowerCase();
    if (name in INT_KEYS) {
      const target = INT_KEYS[name as keyof typeof INT_KEYS];
      let n = parseInteger(value, loc, name);
      if (name === 'max_packet_size' && n > MAX_PACKET) {
        this.warn(loc, `max_packet_size lowered to ${MAX_PACKET}, the largest message PostgreSQL accepts`);
        n = MAX_PACKET;
      }
      this.set([target], n, loc, name);
    } else if ((SECONDS_KEYS as readonly string[]).includes(name)) {
      this.set([name], parseSeconds(value, loc, name), loc, name);
    } else if ((LIST_KEYS as readonly string[]).includes(name)) {
      this.set([name], splitList(value), loc, name);
    } else if (name === 'auth_query' || name === 'auth_user' || name === 'auth_dbname') {
      this.set([name], value === '' ? null : value, loc, name);
    } else if (name === 'auth_file' || name === 'client_tls_cert_file' || name === 'client_tls_key_file') {
      const path = value === '' ? null : resolvePath(value, loc, name);
      if (name === 'auth_file') this.set(['auth_file'], path, loc, name);
      else this.set(['tls', name === 'client_tls_cert_file' ? 'cert_file' : 'key_file'], path, loc, name);
    } else if (name === 'server_tls_ca_file') {
      this.set(['server_tls', 'ca_file'], value === '' ? null : resolvePath(value, loc, name), loc, name);
    } else if (name === 'listen_addr') {
      this.listenAddr(value, loc);
    } else if (name === 'auth_type') {
      this.set(['auth_type'], authType(value, loc), loc, name);
    } else if (name === 'pool_mode') {
      this.set(['pool_mode'], poolMode(value, loc, 'pool_mode'), loc, name);
    } else if (name === 'client_tls_sslmode') {
      this.set(['tls', 'mode'], this.clientSslmode(value, loc), loc, name);
      this.tlsModeLoc = loc;
    } else if (name === 'server_tls_sslmode') {
      this.set(['server_tls', 'mode'], this.serverSslmode(value, loc), loc, name);
    } else {
      const reason = IGNORED[name] ?? IGNORED_PREFIXES.find(([p]) => name.startsWith(p))?.[1];
      if (reason) this.warn(loc, `[pgbouncer] ${name} ignored: ${reason}`);
      else this.warn(loc, `[pgbouncer] unknown setting ${name} ignored`);
    }
  }

  listenAddr(value: string, loc: Loc): void {
    const addrs = splitList(value);
    const first = addrs[0];
    if (first === undefined) {
      this.warn(loc, 'listen_addr is empty (Unix socket only in PgBouncer): pgscale listens on 127.0.0.1');
      return;
    }
    if (addrs.length > 1) {
      this.warn(loc, `listen_addr lists ${addrs.length} addresses: pgscale listens on the first, ${first}`);
    }
    this.set(['listen'], first === '*' ? '0.0.0.0' : first, loc, 'listen_addr');
  }

  clientSslmode(value: string, loc: Loc): 'disable' | 'allow' | 'require' {
    const v = value.toLowerCase();
    if (v === 'disable') return 'disable';
    if (v === 'allow' || v === 'prefer') return 'allow';
    if (v === 'require') return 'require';
    if (v === 'verify-ca' || v === 'verify-full') {
      this.warn(
        loc,
        `client_tls_sslmode ${v}: client certificates are not verified, TLS is required (require)`,
      );
      return 'require';
    }
    fail(
      loc,
      `client_tls_sslmode: unknown value "${value}" (disable, allow, prefer, require, verify-ca, verify-full)`,
    );
  }

  serverSslmode(value: string, loc: Loc): 'disable' | 'prefer' | 'require' | 'verify-ca' | 'verify-full' {
    const v = value.toLowerCase();
    if (v === 'disable' || v === 'prefer' || v === 'require' || v === 'verify-ca' || v === 'verify-full')
      return v;
    if (v === 'allow') {
      this.warn(loc, 'server_tls_sslmode allow is treated as prefer');
      return 'prefer';
    }
    fail(
      loc,
      `server_tls_sslmode: unknown value "${value}" (disable, allow, prefer, require, verify-ca, verify-full)`,
    );
  }

  database(name: string, value: string, loc: Loc): void {
    const where = `[databases] ${name}`;
    if (RESERVED_DATABASES.has(name)) {
      fail(
        loc,
        `${where}: the name is reserved for the admin console (${[...RESERVED_DATABASES].join(', ')})`,
      );
    }
    const db: Partial<DatabaseInput> = {};
    const put = (field: keyof DatabaseInput, v: unknown, key: string) => {
      (db as Record<string, unknown>)[field] = v;
      this.origins.set(JSON.stringify(['databases', name, field]), { ...loc, label: `${where}: ${key}` });
    };
    for (const [key, v] of parseConnString(value, loc, where)) {
      switch (key) {
        case 'host': {
          const hosts = splitList(v);
          const first = hosts[0] ?? v;
          if (hosts.length > 1)
            this.warn(loc, `${where}: host lists ${hosts.length} hosts: pgscale uses the first, ${first}`);
          if (first.startsWith('/') || first.startsWith('@')) {
            this.warn(loc, `${where}: host is a Unix socket, pgscale connects over TCP to 127.0.0.1`);
            put('host', '127.0.0.1', key);
          } else put('host', first, key);
          break;
        }
        case 'port':
          put('port', parseInteger(v, loc, `${where}: port`), key);
          break;
        case 'pool_size':
          put('pool_size', parseInteger(v, loc, `${where}: pool_size`), key);
          break;
        case 'pool_mode':
          put('pool_mode', poolMode(v, loc, `${where}: pool_mode`), key);
          break;
        case 'dbname':
        case 'user':
        case 'password':
          put(key, v, key);
          break;
        default:
          if (DB_UNSUPPORTED.has(key))
            this.warn(loc, `${where}: ${key} is not supported by pgscale, ignored`);
          else this.warn(loc, `${where}: unknown connection parameter ${key} ignored`);
      }
    }
    if (db.host === undefined) {
      this.warn(
        loc,
        `${where}: no host (a Unix socket in PgBouncer): pgscale connects over TCP to 127.0.0.1`,
      );
      put('host', '127.0.0.1', 'host');
    }
    this.origins.set(JSON.stringify(['databases', name]), { ...loc, label: where });
    this.databases[name] = db as DatabaseInput;
  }

  /** Settings whose PgBouncer default differs from ours, when the file leaves them unset. */
  pgbouncerDefaults(mainFile: string): void {
    const unset = (k: string) => !(k in this.proxy);
    if (unset('listen')) {
      this.warnings.push(
        `${mainFile}: listen_addr is not set (Unix socket only in PgBouncer): pgscale listens on 127.0.0.1`,
      );
    }
    if (unset('pool_mode')) this.proxy.pool_mode = 'session';
    if (unset('max_client_conn')) this.proxy.max_client_conn = 100;
    if (unset('auth_type')) this.proxy.auth_type = 'md5';
    if (unset('ignore_startup_parameters')) this.proxy.ignore_startup_parameters = [];
    if (unset('max_packet_size')) this.proxy.max_packet_size = MAX_PACKET;
    // PgBouncer lets any user it can authenticate through, superusers included.
    if (unset('allow_superuser')) this.proxy.allow_superuser = true;
    if (this.serverTls.mode === undefined) this.serverTls.mode = 'prefer';
    if (typeof this.proxy.auth_user === 'string' && unset('auth_query'))
      this.proxy.auth_query = DEFAULT_AUTH_QUERY;
  }
}

function parseInteger(value: string, loc: Loc, what: string): number {
  if (!/^[+-]?\d+$/.test(value)) fail(loc, `${what}: expected a whole number${commentHint(value)}`);
  return Number(value);
}

function parseSeconds(value: string, loc: Loc, what: string): number {
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(value)) {
    fail(loc, `${what}: expected a number of seconds such as 30 or 2.5, without a unit${commentHint(value)}`);
  }
  return Number(value);
}

/** PgBouncer reads `;`/`#` as comments only at the start of a line; say so when that bites. */
function commentHint(value: string): string {
  return /\s[;#]/.test(value) ? ' (comments must be on a line of their own)' : '';
}

function splitList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function authType(value: string, loc: Loc): 'scram-sha-256' | 'md5' | 'trust' {
  const v = value.toLowerCase();
  if (v === 'scram-sha-256' || v === 'md5' || v === 'trust') return v;
  if (v === 'plain') {
    fail(loc, 'auth_type plain sends passwords in clear text and is not supported: use scram-sha-256 or md5');
  }
  if (['hba', 'cert', 'pam', 'any', 'ldap'].includes(v)) {
    fail(loc, `auth_type ${v} is not supported by pgscale (supported: scram-sha-256, md5, trust)`);
  }
  fail(loc, `auth_type: unknown value "${value}" (supported: scram-sha-256, md5, trust)`);
}

function poolMode(value: string, loc: Loc, what: string): 'session' | 'transaction' {
  const v = value.toLowerCase();
  if (v === 'session' || v === 'transaction') return v;
  if (v === 'statement')
    fail(loc, `${what} statement is not supported by pgscale: use transaction or session`);
  fail(loc, `${what}: unknown value "${value}" (session, transaction)`);
}

function convert(text: string, file: string, opts: ConvertOptions): Converted {
  const events: IniEvent[] = [];
  readIni(text, file, opts, [resolve(file)], events);
  const c = new Converter();
  let section: string | null = null;
  for (const ev of events) {
    if (ev.kind === 'section') {
      if (!['databases', 'pgbouncer', 'users', 'peers'].includes(ev.name)) {
        fail(
          ev.loc,
          `unknown section [${ev.name}] (PgBouncer's sections: databases, pgbouncer, users, peers)`,
        );
      }
      section = ev.name;
      if (section === 'pgbouncer') c.sawMainSection = true;
      continue;
    }
    if (section === null) {
      fail(ev.loc, `${ev.key} is outside any section: put it under [pgbouncer] or [databases]`);
    }
    switch (section) {
      case 'pgbouncer':
        c.setting(ev.key, ev.value, ev.loc);
        break;
      case 'databases':
        c.database(ev.key, ev.value, ev.loc);
        break;
      case 'users':
        c.warn(ev.loc, `[users] ${ev.key} ignored: per-user settings are not supported by pgscale`);
        break;
      default:
        c.warn(ev.loc, `[peers] ${ev.key} ignored: peering is not supported by pgscale`);
    }
  }
  if (!c.sawMainSection) c.warnings.push(`${file}: no [pgbouncer] section: PgBouncer's defaults apply`);
  if (Object.keys(c.databases).length === 0) {
    c.warnings.push(`${file}: no [databases] entries: the proxy serves no database`);
  }
  if (c.tls.mode !== undefined && c.tls.mode !== 'disable' && (!c.tls.cert_file || !c.tls.key_file)) {
    fail(
      c.tlsModeLoc!,
      `client_tls_sslmode ${c.tls.mode} needs client_tls_cert_file and client_tls_key_file`,
    );
  }
  c.pgbouncerDefaults(file);
  const proxy = { ...c.proxy, tls: c.tls, server_tls: c.serverTls, databases: c.databases } as ProxyInput;
  return { proxy, warnings: c.warnings, origins: c.origins };
}

// ---------------------------------------------------------------------------------------------
// API

/**
 * Converts the text of a pgbouncer.ini into `proxy` settings (not yet validated) and warnings.
 * `file` names the file in messages and anchors relative paths; `%include` needs `readFile`.
 * Throws ConfigError(CONFIG_INVALID) naming file:line for what cannot be converted.
 */
export function convertPgbouncerIni(
  text: string,
  file: string,
  opts: ConvertOptions = {},
): PgbouncerIniResult {
  const { proxy, warnings } = convert(text, file, opts);
  return { proxy, warnings };
}

/** Reads FILE (and its includes), converts it and validates the result against `proxySchema`. */
export function loadPgbouncerIni(file: string): PgbouncerIniResult & { config: ProxyConfig } {
  const abs = resolve(file);
  if (!existsSync(abs)) {
    throw new ConfigError(ErrorCodes.CONFIG_NOT_FOUND, `${abs}: no such file`);
  }
  const { proxy, warnings, origins } = convert(readFileSync(abs, 'utf8'), abs, {
    readFile: (p) => readFileSync(p, 'utf8'),
  });
  const parsed = proxySchema.safeParse(proxy);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => describeIssue(i, origins, abs));
    throw new ConfigError(ErrorCodes.CONFIG_INVALID, lines.join('\n'));
  }
  return { proxy, warnings, config: deepFreeze(parsed.data) };
}

/** A schema issue, pinned to the line and key it came from (the longest known path prefix). */
function describeIssue(issue: z.core.$ZodIssue, origins: Map<string, Origin>, file: string): string {
  const path = issue.path.map(String);
  for (let n = path.length; n > 0; n--) {
    const o = origins.get(JSON.stringify(path.slice(0, n)));
    if (o) return `${at(o)}: ${o.label}: ${issue.message}`;
  }
  return `${file}: proxy.${path.join('.')}: ${issue.message}`;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
