import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertPgbouncerIni, loadPgbouncerIni } from './pgbouncer-ini.js';
import { proxySchema } from './schema.js';
import { ConfigError, ErrorCodes } from '../errors.js';

/**
 * The part of `actual` that `expected` describes: settings added to the schema later (with
 * defaults) must not break these tests of what the ini file maps to.
 */
function subset(actual: unknown, expected: unknown): unknown {
  if (expected === null || typeof expected !== 'object' || Array.isArray(expected)) return actual;
  if (actual === null || typeof actual !== 'object') return actual;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(expected))
    out[k] = subset((actual as Record<string, unknown>)[k], (expected as Record<string, unknown>)[k]);
  return out;
}

const FILE = '/etc/pgbouncer/pgbouncer.ini';
const conv = (text: string) => convertPgbouncerIni(text, FILE);
const ini = (...lines: string[]) => lines.join('\n') + '\n';

/** Asserts a CONFIG_INVALID error naming FILE:line and matching `re`; returns the message. */
function throwsAt(fn: () => unknown, where: string, re: RegExp): string {
  let message = '';
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    assert.equal(e.code, ErrorCodes.CONFIG_INVALID);
    assert.ok(e.message.includes(where), `"${e.message}" does not name ${where}`);
    assert.match(e.message, re);
    message = e.message;
    return true;
  });
  return message;
}

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'pgscale-ini-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const CLASSIC = ini(
  '[databases]',
  'mydb = host=127.0.0.1 port=5432 dbname=mydb',
  '',
  '[pgbouncer]',
  'listen_addr = *',
  'listen_port = 6432',
  'auth_type = md5',
  'auth_file = /etc/pgbouncer/userlist.txt',
  'pool_mode = transaction',
  'max_client_conn = 1000',
  'default_pool_size = 20',
);

test('the classic minimal config converts without warnings and validates', () => {
  const { proxy, warnings } = conv(CLASSIC);
  assert.deepEqual(warnings, []);
  const config = proxySchema.parse(proxy);
  assert.equal(config.listen, '0.0.0.0');
  assert.equal(config.port, 6432);
  assert.equal(config.auth_type, 'md5');
  assert.equal(config.auth_file, '/etc/pgbouncer/userlist.txt');
  assert.equal(config.pool_mode, 'transaction');
  assert.equal(config.max_client_conn, 1000);
  assert.equal(config.default_pool_size, 20);
  const expectedDbs = { mydb: { host: '127.0.0.1', port: 5432, dbname: 'mydb' } };
  assert.deepEqual(subset(config.databases, expectedDbs), expectedDbs);
});

test('loadPgbouncerIni reads the classic config from disk and returns a frozen config', () => {
  withDir((dir) => {
    const file = join(dir, 'pgbouncer.ini');
    writeFileSync(file, CLASSIC);
    const { config, warnings } = loadPgbouncerIni(file);
    assert.deepEqual(warnings, []);
    assert.equal(config.port, 6432);
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.databases.mydb));
  });
});

test('a missing file is CONFIG_NOT_FOUND', () => {
  assert.throws(
    () => loadPgbouncerIni('/nonexistent/pgbouncer.ini'),
    (e: unknown) => e instanceof ConfigError && e.code === ErrorCodes.CONFIG_NOT_FOUND,
  );
});

test('every supported [pgbouncer] key maps to its proxy setting', () => {
  const { proxy, warnings } = conv(
    ini(
      '[pgbouncer]',
      'listen_addr = 10.0.0.5',
      'listen_port = 7432',
      'auth_type = scram-sha-256',
      'auth_file = userlist.txt',
      'auth_query = SELECT usename, passwd FROM pgbouncer.get_auth($1)',
      'auth_user = pgbouncer',
      'pool_mode = session',
      'default_pool_size = 30',
      'min_pool_size = 5',
      'max_client_conn = 5000',
      'max_db_connections = 50',
      'admin_users = admin, root',
      'stats_users = stats,monitor',
      'server_idle_timeout = 300',
      'server_lifetime = 1800.5',
      'server_check_delay = 10',
      'server_connect_timeout = 5',
      'query_wait_timeout = 60',
      'client_login_timeout = 30',
      'client_idle_timeout = 0',
      'idle_transaction_timeout = 120',
      'max_prepared_statements = 100',
      'max_packet_size = 1048576',
      'ignore_startup_parameters = extra_float_digits, options',
      'client_tls_sslmode = require',
      'client_tls_cert_file = tls/server.crt',
      'client_tls_key_file = /etc/ssl/server.key',
      'server_tls_sslmode = verify-full',
      'server_tls_ca_file = ca.pem',
      '[databases]',
      'app = host=db1 port=5433 dbname=app_prod user=app password=secret pool_size=10 pool_mode=transaction',
    ),
  );
  assert.deepEqual(warnings, []);
  const expected = {
    enabled: true,
    listen: '10.0.0.5',
    port: 7432,
    pool_mode: 'session',
    default_pool_size: 30,
    min_pool_size: 5,
    max_client_conn: 5000,
    max_db_connections: 50,
    query_wait_timeout: 60,
    client_login_timeout: 30,
    client_idle_timeout: 0,
    idle_transaction_timeout: 120,
    server_idle_timeout: 300,
    server_lifetime: 1800.5,
    server_check_delay: 10,
    server_connect_timeout: 5,
    max_prepared_statements: 100,
    max_packet_size: 1048576,
    auth_type: 'scram-sha-256',
    auth_file: '/etc/pgbouncer/userlist.txt',
    auth_query: 'SELECT usename, passwd FROM pgbouncer.get_auth($1)',
    auth_user: 'pgbouncer',
    admin_users: ['admin', 'root'],
    stats_users: ['stats', 'monitor'],
    ignore_startup_parameters: ['extra_float_digits', 'options'],
    tls: { mode: 'require', cert_file: '/etc/pgbouncer/tls/server.crt', key_file: '/etc/ssl/server.key' },
    server_tls: { mode: 'verify-full', ca_file: '/etc/pgbouncer/ca.pem' },
    databases: {
      app: {
        host: 'db1',
        port: 5433,
        dbname: 'app_prod',
        user: 'app',
        password: 'secret',
        pool_size: 10,
        pool_mode: 'transaction',
      },
    },
  };
  assert.deepEqual(subset(proxySchema.parse(proxy), expected), expected);
});

test("PgBouncer's defaults apply where they differ from ours and the file is silent", () => {
  const { proxy, warnings } = conv(ini('[pgbouncer]', '[databases]', 'db = host=h', '[pgbouncer]'));
  const config = proxySchema.parse(proxy);
  assert.equal(config.pool_mode, 'session');
  assert.equal(config.max_client_conn, 100);
  assert.equal(config.auth_type, 'md5');
  assert.deepEqual(config.ignore_startup_parameters, []);
  assert.equal(config.max_packet_size, 1073741823);
  assert.equal(config.server_tls.mode, 'prefer');
  assert.equal(config.listen, '127.0.0.1');
  assert.ok(warnings.some((w) => /listen_addr is not set/.test(w)));
  // PgBouncer lets superusers through; pgscale's own default refuses them.
  assert.equal(config.allow_superuser, true);
  assert.equal(proxySchema.parse({}).allow_superuser, false);
});

test('autodb_idle_timeout maps to the same name (seconds)', () => {
  const { proxy, warnings } = conv(
    ini('[pgbouncer]', 'autodb_idle_timeout = 90', '[databases]', '* = host=h'),
  );
  assert.equal(proxySchema.parse(proxy).autodb_idle_timeout, 90);
  assert.ok(!warnings.some((w) => /autodb_idle_timeout/.test(w)), warnings.join('\n'));
});

test('auth_user without auth_query gets the pg_authid lookup PgBouncer uses by default', () => {
  const { proxy } = conv(ini('[pgbouncer]', 'auth_user = pgb', '[databases]', 'db = host=h'));
  assert.match(String(proxy.auth_query), /FROM pg_catalog\.pg_authid WHERE rolname = \$1/);
});

test('auth_dbname in [pgbouncer] is taken: the auth query runs in that database', () => {
  const { proxy } = conv(
    ini('[pgbouncer]', 'auth_user = pgb', 'auth_dbname = authdb', '[databases]', 'db = host=h'),
  );
  assert.equal(proxy.auth_dbname, 'authdb');
});

test('connection strings: quoted values with spaces, doubled quotes and backslash escapes', () => {
  const { proxy } = conv(
    ini(
      '[databases]',
      "a = host=h dbname='my db' password='it''s \\'x\\' \\\\ y'",
      "b = host = h   user='u'  port= 6000",
      '"odd name" = host=h',
      '"with ""quote""" = host=h',
    ),
  );
  const dbs = proxySchema.parse(proxy).databases;
  const a = { host: 'h', port: 5432, dbname: 'my db', password: "it's 'x' \\ y" };
  const b = { host: 'h', port: 6000, user: 'u' };
  assert.deepEqual(subset(dbs.a, a), a);
  assert.deepEqual(subset(dbs.b, b), b);
  assert.ok(dbs['odd name']);
  assert.ok(dbs['with "quote"']);
});

test('"*" is kept as the fallback entry; a missing host or a Unix socket becomes 127.0.0.1 with a warning', () => {
  const { proxy, warnings } = conv(
    ini(
      '[databases]',
      '* = port=5433',
      'sock = host=/var/run/postgresql',
      'multi = host=a,b,c',
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
    ),
  );
  const dbs = proxySchema.parse(proxy).databases;
  const star = { host: '127.0.0.1', port: 5433 };
  assert.deepEqual(subset(dbs['*'], star), star);
  assert.equal(dbs.sock!.host, '127.0.0.1');
  assert.equal(dbs.multi!.host, 'a');
  assert.ok(warnings.some((w) => w.startsWith(`${FILE}:2: [databases] *: no host`)));
  assert.ok(warnings.some((w) => w.startsWith(`${FILE}:3: [databases] sock: host is a Unix socket`)));
  assert.ok(warnings.some((w) => w.startsWith(`${FILE}:4: [databases] multi: host lists 3 hosts`)));
});

test('unsupported per-database keys are warnings naming the database and the key', () => {
  const { proxy, warnings } = conv(
    ini(
      '[databases]',
      "db = host=h client_encoding=UTF8 datestyle=ISO connect_query='SELECT 1' max_db_connections=5 auth_user=x reserve_pool=2 bogus=1",
      '[pgbouncer]',
      'listen_addr = *',
    ),
  );
  for (const key of [
    'client_encoding',
    'datestyle',
    'connect_query',
    'max_db_connections',
    'auth_user',
    'reserve_pool',
  ]) {
    assert.ok(
      warnings.includes(`${FILE}:2: [databases] db: ${key} is not supported by pgscale, ignored`),
      `no warning for ${key}: ${warnings.join('\n')}`,
    );
  }
  assert.ok(warnings.includes(`${FILE}:2: [databases] db: unknown connection parameter bogus ignored`));
  const db = { host: 'h', port: 5432 };
  assert.deepEqual(subset(proxySchema.parse(proxy).databases.db, db), db);
});

test('ignored and unknown [pgbouncer] keys, [users] and [peers] entries are warnings, one each', () => {
  const { warnings } = conv(
    ini(
      '[pgbouncer]',
      'listen_addr = *',
      'logfile = /var/log/pgbouncer.log',
      'pidfile = /run/pgbouncer.pid',
      'unix_socket_dir = /tmp',
      'user = postgres',
      'stats_period = 60',
      'verbose = 1',
      'log_connections = 0',
      'so_reuseport = 1',
      'tcp_keepalive = 1',
      'dns_max_ttl = 15',
      'server_reset_query = DISCARD ALL',
      'frobnicate = 1',
      '[users]',
      'alice = pool_mode=session',
      '[peers]',
      '1 = host=/tmp/pgbouncer1',
      '[databases]',
      'db = host=h',
    ),
  );
  const expected: [number, RegExp][] = [
    [3, /\[pgbouncer\] logfile ignored: pgscale does its own logging/],
    [4, /pidfile ignored/],
    [5, /unix_socket_dir ignored: pgscale listens and connects over TCP only/],
    [6, /\] user ignored/],
    [7, /stats_period ignored/],
    [8, /verbose ignored/],
    [9, /log_connections ignored/],
    [10, /so_reuseport ignored: socket options/],
    [11, /tcp_keepalive ignored: socket options/],
    [12, /dns_max_ttl ignored/],
    [13, /server_reset_query ignored: not supported/],
    [14, /unknown setting frobnicate ignored/],
    [16, /\[users\] alice ignored: per-user settings are not supported/],
    [18, /\[peers\] 1 ignored/],
  ];
  assert.equal(warnings.length, expected.length, warnings.join('\n'));
  expected.forEach(([line, re], i) => {
    assert.ok(warnings[i]!.startsWith(`${FILE}:${line}: `), warnings[i]);
    assert.match(warnings[i]!, re);
  });
});

test('listen_addr: a comma list keeps the first address with a warning', () => {
  const { proxy, warnings } = conv(
    ini('[pgbouncer]', 'listen_addr = 10.0.0.1, 10.0.0.2', '[databases]', 'd = host=h'),
  );
  assert.equal(proxy.listen, '10.0.0.1');
  assert.match(warnings[0]!, /:2: listen_addr lists 2 addresses: pgscale listens on the first, 10\.0\.0\.1/);
});

test('INI details: keys and sections are case-insensitive, comments, CRLF, BOM, trailing section comment', () => {
  const text =
    '\uFEFF; a comment\r\n# another\r\n[PgBouncer] ; main\r\n  LISTEN_PORT = 7000\r\nPool_Mode=session\r\n\r\n[DATABASES]\r\nMyDb = host=h\r\n';
  const { proxy, warnings } = conv(text);
  assert.deepEqual(
    warnings.filter((w) => !/listen_addr/.test(w)),
    [],
  );
  assert.equal(proxy.port, 7000);
  assert.equal(proxy.pool_mode, 'session');
  assert.ok(proxy.databases!.MyDb, 'database names keep their case');
});

test('client_tls_sslmode maps allow/prefer to allow and verify-* to require; server allow to prefer', () => {
  const tls = (mode: string) =>
    conv(
      ini(
        '[pgbouncer]',
        `client_tls_sslmode = ${mode}`,
        'client_tls_cert_file = c',
        'client_tls_key_file = k',
      ),
    );
  assert.equal(tls('disable').proxy.tls!.mode, 'disable');
  assert.equal(tls('allow').proxy.tls!.mode, 'allow');
  assert.equal(tls('prefer').proxy.tls!.mode, 'allow');
  assert.equal(tls('require').proxy.tls!.mode, 'require');
  const v = tls('verify-full');
  assert.equal(v.proxy.tls!.mode, 'require');
  assert.ok(v.warnings.some((w) => /client certificates are not verified/.test(w)));
  const s = conv(ini('[pgbouncer]', 'server_tls_sslmode = allow'));
  assert.equal(s.proxy.server_tls!.mode, 'prefer');
  throwsAt(
    () => conv(ini('[pgbouncer]', 'client_tls_sslmode = require')),
    `${FILE}:2`,
    /needs client_tls_cert_file and client_tls_key_file/,
  );
  throwsAt(() => conv(ini('[pgbouncer]', 'client_tls_sslmode = sometimes')), `${FILE}:2`, /"sometimes"/);
});

test('max_packet_size above what PostgreSQL accepts is lowered with a warning', () => {
  const { proxy, warnings } = conv(ini('[pgbouncer]', 'max_packet_size = 2147483647'));
  assert.equal(proxy.max_packet_size, 1073741823);
  assert.ok(warnings.some((w) => /:2: max_packet_size lowered/.test(w)));
});

test('errors name the file, the line and the key', () => {
  const cases: [string, string, RegExp][] = [
    [ini('[pgbouncer]', 'listen_addr = *', 'auth_type = plain'), ':3', /auth_type plain .*not supported/],
    ...['hba', 'cert', 'pam', 'any', 'ldap'].map((v): [string, string, RegExp] => [
      ini('[pgbouncer]', `auth_type = ${v}`),
      ':2',
      new RegExp(`auth_type ${v} is not supported`),
    ]),
    [ini('[pgbouncer]', 'auth_type = magic'), ':2', /auth_type: unknown value "magic"/],
    [ini('[pgbouncer]', 'pool_mode = statement'), ':2', /pool_mode statement is not supported/],
    [ini('[pgbouncer]', 'pool_mode = sometimes'), ':2', /pool_mode: unknown value "sometimes"/],
    [ini('[databases]', 'db = host=h pool_mode=statement'), ':2', /\[databases\] db: pool_mode statement/],
    [ini('[pgbouncer]', 'listen_port = six'), ':2', /listen_port: expected a whole number$/],
    [
      ini('[pgbouncer]', 'listen_port = 6432 ; the port'),
      ':2',
      /listen_port: .*comments must be on a line of their own/,
    ],
    [ini('[pgbouncer]', '', 'server_lifetime = 1h'), ':3', /server_lifetime: expected a number of seconds/],
    [ini('[pgbouncer]', 'query_wait_timeout = -1'), ':2', /query_wait_timeout: expected a number of seconds/],
    [ini('[databases]', 'db = host=h port=abc'), ':2', /\[databases\] db: port: expected a whole number/],
    [ini('[databases', 'db = host=h'), ':1', /syntax error: a section line/],
    [ini('[pgbouncer] listen_port = 1'), ':1', /syntax error: a section line/],
    [ini('[pgbouncer]', 'listen_port 6432'), ':2', /syntax error: expected/],
    [ini('[pgbouncer]', '= 6432'), ':2', /syntax error/],
    [ini('[pgbouncer]', '"unterminated = 1'), ':2', /syntax error/],
    [ini('[bouncer]'), ':1', /unknown section \[bouncer\]/],
    [ini('; top', 'listen_port = 6432'), ':2', /listen_port is outside any section/],
    [ini('[databases]', 'db = host=h dbname'), ':2', /\[databases\] db: connection string syntax error/],
    [ini('[databases]', 'db = host=h user='), ':2', /\[databases\] db: empty value for user/],
    [ini('[databases]', 'pgbouncer = host=h'), ':2', /reserved for the admin console/],
    [ini('[databases]', 'pgscale = host=h'), ':2', /reserved for the admin console/],
    [ini('[pgbouncer]', 'auth_file = ~bob/users.txt'), ':2', /auth_file: ~user paths are not supported/],
    [ini('[pgbouncer]', '%include other.ini'), ':2', /%include needs file access/],
  ];
  for (const [text, line, re] of cases) throwsAt(() => conv(text), `${FILE}${line}: `, re);
});

test('schema violations found by loadPgbouncerIni point at the line and key they came from', () => {
  withDir((dir) => {
    const file = join(dir, 'pgbouncer.ini');
    writeFileSync(
      file,
      ini('[databases]', 'db = host=h pool_size=0 port=70000', '[pgbouncer]', 'listen_port = 0'),
    );
    const message = throwsAt(
      () => loadPgbouncerIni(file),
      `${file}:2: [databases] db: pool_size: `,
      /too small/i,
    );
    assert.ok(message.includes(`${file}:2: [databases] db: port: `), message);
    assert.ok(message.includes(`${file}:4: listen_port: `), message);
  });
});

test('%include: relative to the including file, sections carry across, paths relative to their own file', () => {
  withDir((dir) => {
    mkdirSync(join(dir, 'conf.d'));
    writeFileSync(
      join(dir, 'pgbouncer.ini'),
      ini(
        '[pgbouncer]',
        'listen_addr = *',
        '%include conf.d/auth.ini',
        'listen_port = 7000',
        '%include  conf.d/dbs.ini',
      ),
    );
    writeFileSync(join(dir, 'conf.d', 'auth.ini'), ini('auth_file = users.txt', 'auth_type = scram-sha-256'));
    writeFileSync(join(dir, 'conf.d', 'dbs.ini'), ini('[databases]', 'db = host=h', '%include more.ini'));
    writeFileSync(join(dir, 'conf.d', 'more.ini'), ini('db2 = host=h2'));
    const { config, warnings } = loadPgbouncerIni(join(dir, 'pgbouncer.ini'));
    assert.deepEqual(warnings, []);
    assert.equal(config.auth_file, join(dir, 'conf.d', 'users.txt'));
    assert.equal(config.auth_type, 'scram-sha-256');
    assert.equal(config.port, 7000);
    assert.deepEqual(Object.keys(config.databases), ['db', 'db2']);
  });
});

test('%include: messages from an included file name that file and its line', () => {
  withDir((dir) => {
    writeFileSync(join(dir, 'main.ini'), ini('[pgbouncer]', '%include sub.ini'));
    writeFileSync(join(dir, 'sub.ini'), ini('logfile = x', 'pool_mode = statement'));
    throwsAt(() => loadPgbouncerIni(join(dir, 'main.ini')), `${join(dir, 'sub.ini')}:2: `, /statement/);
    writeFileSync(join(dir, 'sub.ini'), ini('logfile = x'));
    const { warnings } = loadPgbouncerIni(join(dir, 'main.ini'));
    assert.ok(warnings.some((w) => w.startsWith(`${join(dir, 'sub.ini')}:1: [pgbouncer] logfile ignored`)));
  });
});

test('%include: a loop, a missing file and nesting deeper than 10 are errors', () => {
  withDir((dir) => {
    writeFileSync(join(dir, 'a.ini'), ini('[pgbouncer]', '%include b.ini'));
    writeFileSync(join(dir, 'b.ini'), ini('; b', '', '%include a.ini'));
    throwsAt(
      () => loadPgbouncerIni(join(dir, 'a.ini')),
      `${join(dir, 'b.ini')}:3: `,
      /%include loop: .*a\.ini -> .*b\.ini -> .*a\.ini/,
    );

    writeFileSync(join(dir, 'c.ini'), ini('[pgbouncer]', '%include nope.ini'));
    throwsAt(
      () => loadPgbouncerIni(join(dir, 'c.ini')),
      `${join(dir, 'c.ini')}:2: `,
      /%include .*nope\.ini: cannot read it/,
    );

    for (let i = 0; i <= 11; i++) writeFileSync(join(dir, `n${i}.ini`), ini(`%include n${i + 1}.ini`));
    writeFileSync(join(dir, 'n12.ini'), ini('[pgbouncer]'));
    throwsAt(
      () => loadPgbouncerIni(join(dir, 'n0.ini')),
      `${join(dir, 'n10.ini')}:1: `,
      /nested more than 10 levels/,
    );
    // Ten levels are fine.
    writeFileSync(join(dir, 'n10.ini'), ini('[pgbouncer]'));
    assert.doesNotThrow(() => loadPgbouncerIni(join(dir, 'n0.ini')));
  });
});

test('no password ever appears in a warning or an error message', () => {
  const secret = 'Sup3r$ecret';
  const line = (extra: string) => `db = host=h user=app password='${secret}' ${extra}`;
  const messages: string[] = [];
  const { warnings } = conv(
    ini(
      '[databases]',
      line("client_encoding=UTF8 passwrd='" + secret + "' frob=" + secret),
      '[pgbouncer]',
      'listen_addr = *',
    ),
  );
  messages.push(...warnings);
  assert.ok(warnings.length >= 2);
  const failing = [
    ini('[databases]', line('port=abc')),
    ini('[databases]', line('pool_mode=statement')),
    ini('[databases]', `db = host=h password='${secret}`),
    ini('[databases]', `db = host=h password=${secret} dbname`),
    ini('[databases]', `db password=${secret}`),
    ini(`db = host=h password=${secret}`),
    ini('[databases]', `pgbouncer = host=h password=${secret}`),
  ];
  for (const text of failing) {
    assert.throws(
      () => conv(text),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        messages.push(e.message);
        return true;
      },
    );
  }
  withDir((dir) => {
    const file = join(dir, 'pgbouncer.ini');
    writeFileSync(file, ini('[databases]', line('pool_size=0 port=0')));
    assert.throws(
      () => loadPgbouncerIni(file),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        messages.push(e.message);
        return true;
      },
    );
  });
  assert.equal(messages.length, failing.length + warnings.length + 1);
  for (const m of messages) assert.ok(!m.includes(secret), `message leaks the password: ${m}`);
});
