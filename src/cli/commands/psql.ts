/**
 * `pgscale psql` and `pgscale url`. psql runs as the cluster's superuser, or with --user as an
 * application user (app.user or one of users:) through the proxy; the password goes through a
 * passfile (never on the command line or in the environment). `url` prints an application
 * user's connection URI. Without a proxy or with a NODE named, both target the node directly
 * (the database's home group's primary when no node is named).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findNode, homeGroup } from '../../config/load.js';
import type { NodeRef } from '../../config/load.js';
import { appUsers } from '../../config/users.js';
import { ClusterError, ErrorCodes, UsageError } from '../../errors.js';
import type { Cluster } from '../../cluster/cluster.js';
import { passfilePath } from '../../cluster/secrets.js';
import { userPassword } from '../../cluster/user-secrets.js';
import { sslEnv } from '../../cluster/conf.js';
import { cleanEnv } from '../../cluster/run-as.js';
import { parse } from '../args.js';
import { liveController } from '../../controller/controller-file.js';
import { openCluster, out } from '../context.js';

export const psqlHelp = `Usage: pgscale psql [-c FILE] [NODE] [--user USER] [--db DATABASE] [-- PSQL-ARGS…]

Without --user: runs psql as the cluster superuser, in the application database (or --db): on
NODE when named, else on the primary of its home group (through the proxy instead while the
controller runs, if proxy.allow_superuser lets the superuser through it).
With --user: runs psql as that application user (app.user or one of users:) through the proxy,
in --db (default: the first database it owns or may use), or on NODE directly when named.
Arguments after -- go to psql, e.g.:
  pgscale psql s0n1 -- -At -c 'select pg_is_in_recovery()'
  pgscale psql --user reporting --db analytics
`;

export const urlHelp = `Usage: pgscale url [-c FILE] [--node NAME] [--superuser] [--user USER] [--db DATABASE]

Prints a connection URI for the application role (or --user, one of users:, in --db): through
the proxy (proxy.port) unless --node names a node to reach directly (or the proxy is disabled:
the primary of the database's home group, group 0 unless databases: or groups[].databases says
otherwise).
`;

/** The proxy endpoint, when no node is named and the cluster's proxy is on. */
function proxyEndpoint(cluster: Cluster): { host: string; port: number } | null {
  const p = cluster.config.proxy;
  if (!p.enabled) return null;
  const host = p.listen === '0.0.0.0' || p.listen === '' ? '127.0.0.1' : p.listen === '::' ? '::1' : p.listen;
  return { host, port: p.port };
}

function pickNode(cluster: Cluster, name: string | undefined, database: string): NodeRef {
  if (name) {
    const n = findNode(cluster.config, name);
    if (!n)
      throw new ClusterError(ErrorCodes.NODE_NOT_FOUND, `no node named "${name}" in ${cluster.loaded.file}`);
    return n;
  }
  const p = cluster.primaryOf(homeGroup(cluster.config, database));
  if (!p)
    throw new ClusterError(ErrorCodes.NO_PRIMARY, 'the cluster has not been created yet; run `pgscale up`');
  return p;
}

/** --user and --db: the application user (with its password) and the database, checked. */
function userAndDb(
  cluster: Cluster,
  values: Record<string, string | boolean | undefined>,
): { user: string; password: string; database: string } | { user: null; database: string } {
  const c = cluster.config;
  const db = typeof values.db === 'string' ? values.db : undefined;
  if (db === '') throw new UsageError('--db needs a database name');
  if (values.user === undefined) return { user: null, database: db ?? c.app.database };
  if (typeof values.user !== 'string' || values.user === '') throw new UsageError('--user needs a user name');
  const u = appUsers(c).find((x) => x.name === values.user);
  if (!u) {
    throw new UsageError(
      `user "${values.user}" is not app.user nor declared under users: in ${cluster.loaded.file}; pgscale knows only their passwords`,
    );
  }
  const database = db ?? u.databases[0] ?? c.app.database;
  const password = userPassword(cluster.loaded, cluster.secrets(), u.name);
  if (password === null) {
    throw new ClusterError(
      ErrorCodes.NODE_NOT_FOUND,
      `user "${u.name}" has no password yet: run \`pgscale up\` (it creates the user and its password)`,
    );
  }
  return { user: u.name, password, database };
}

/** A libpq passfile line for one password (":" and "\\" escaped as libpq reads them). */
function passfileLine(user: string, password: string): string {
  const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  return `*:*:*:${esc(user)}:${esc(password)}\n`;
}

export async function psql(argv: string[]): Promise<number> {
  const dd = argv.indexOf('--');
  const own = dd >= 0 ? argv.slice(0, dd) : argv;
  const extra = dd >= 0 ? argv.slice(dd + 1) : [];
  const { values, positionals } = parse(
    'psql',
    own,
    { user: { type: 'string', short: 'U' }, db: { type: 'string', short: 'd' } },
    1,
  );
  if (values.help) return (out(psqlHelp), 0);
  const cluster = openCluster(values);
  const who = userAndDb(cluster, values);
  // The superuser goes through the proxy only where the proxy lets superusers through; an
  // application user always does (the proxy is its door), unless a node is named.
  const viaProxy =
    positionals[0] === undefined &&
    (who.user !== null || (cluster.config.proxy.allow_superuser && liveController(cluster.dataDir)))
      ? proxyEndpoint(cluster)
      : null;
  const node = viaProxy ?? pickNode(cluster, positionals[0], who.database);
  const bin = cluster.bins.psql;
  if (!bin) {
    throw new ClusterError(
      ErrorCodes.BINARIES_NOT_FOUND,
      'psql not found (not beside the server binaries nor on PATH); install the PostgreSQL client (e.g. apt-get install postgresql-client)',
    );
  }
  cluster.secrets();
  // An application user's password goes to psql through a passfile of its own, removed after.
  const tmp = who.user !== null ? mkdtempSync(join(tmpdir(), 'pgscale-psql-')) : null;
  let passfile = passfilePath(cluster.dataDir);
  if (tmp && who.user !== null) {
    passfile = join(tmp, 'pgpass');
    writeFileSync(passfile, passfileLine(who.user, who.password), { mode: 0o600 });
  }
  const args = [
    '-h',
    node.host,
    '-p',
    String(node.port),
    '-U',
    who.user ?? cluster.config.postgres.superuser,
    '-d',
    who.database,
    ...extra,
  ];
  const child = spawn(bin, args, {
    stdio: 'inherit',
    env: {
      ...cleanEnv(),
      PGPASSFILE: passfile,
      PGAPPNAME: 'pgscale psql',
      PGCONNECT_TIMEOUT: '10',
      // A node verified by the cluster CA (cluster.tls on); the proxy has its own proxy.tls.
      ...(viaProxy ? {} : sslEnv(cluster.rootCert())),
    },
  });
  process.on('SIGINT', () => undefined); // psql handles Ctrl-C itself
  return new Promise<number>((resolve) => {
    child.on('error', (e) => {
      out(`pgscale: could not run psql: ${e.message}`);
      resolve(1);
    });
    child.on('exit', (code) => resolve(code ?? 1));
  }).finally(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });
}

export function url(argv: string[]): number {
  const { values } = parse('url', argv, {
    node: { type: 'string' },
    superuser: { type: 'boolean' },
    user: { type: 'string' },
    db: { type: 'string' },
  });
  if (values.help) return (out(urlHelp), 0);
  if (values.node === '') throw new UsageError('--node needs a node name');
  if (values.superuser && values.user !== undefined)
    throw new UsageError('--superuser and --user exclude each other');
  const cluster = openCluster(values);
  const who = userAndDb(cluster, values);
  const node =
    (typeof values.node === 'string' ? null : proxyEndpoint(cluster)) ??
    pickNode(cluster, typeof values.node === 'string' ? values.node : undefined, who.database);
  const s = cluster.secrets();
  const [user, password] = values.superuser
    ? [cluster.config.postgres.superuser, s.superuser]
    : who.user !== null
      ? [who.user, who.password]
      : [cluster.config.app.user, s.app];
  const host = node.host.includes(':') ? `[${node.host}]` : node.host;
  out(
    `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${node.port}/${encodeURIComponent(who.database)}`,
  );
  return 0;
}
