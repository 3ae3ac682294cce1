/**
 * `pgscale psql` and `pgscale url`. psql runs as the cluster's superuser with the password passed
 * through a passfile (never on the command line or in the environment); `url` prints the
 * application role's connection URI. Both target the application database's home group's primary
 * (group 0 unless groups[].databases says otherwise) when no node is named and no proxy is used.
 */
import { spawn } from 'node:child_process';
import { findNode, homeGroup } from '../../config/load.js';
import type { NodeRef } from '../../config/load.js';
import { ClusterError, ErrorCodes, UsageError } from '../../errors.js';
import type { Cluster } from '../../cluster/cluster.js';
import { passfilePath } from '../../cluster/secrets.js';
import { sslEnv } from '../../cluster/conf.js';
import { cleanEnv } from '../../cluster/run-as.js';
import { parse } from '../args.js';
import { liveController } from '../../controller/controller-file.js';
import { openCluster, out } from '../context.js';

export const psqlHelp = `Usage: pgscale psql [-c FILE] [NODE] [-- PSQL-ARGS…]

Runs psql as the cluster superuser, in the application database: on NODE when named, else on
the primary of its home group (through the proxy instead while the controller runs, if
proxy.allow_superuser lets the superuser through it). Arguments after -- go to psql, e.g.:
  pgscale psql s0n1 -- -At -c 'select pg_is_in_recovery()'
`;

export const urlHelp = `Usage: pgscale url [-c FILE] [--node NAME] [--superuser]

Prints a connection URI for the application role: through the proxy (proxy.port) unless
--node names a node to reach directly (or the proxy is disabled: the primary of the
application database's home group, group 0 unless groups[].databases says otherwise).
`;

/** The proxy endpoint, when no node is named and the cluster's proxy is on. */
function proxyEndpoint(cluster: Cluster): { host: string; port: number } | null {
  const p = cluster.config.proxy;
  if (!p.enabled) return null;
  const host = p.listen === '0.0.0.0' || p.listen === '' ? '127.0.0.1' : p.listen === '::' ? '::1' : p.listen;
  return { host, port: p.port };
}

function pickNode(cluster: Cluster, name: string | undefined): NodeRef {
  if (name) {
    const n = findNode(cluster.config, name);
    if (!n)
      throw new ClusterError(ErrorCodes.NODE_NOT_FOUND, `no node named "${name}" in ${cluster.loaded.file}`);
    return n;
  }
  const p = cluster.primaryOf(homeGroup(cluster.config, cluster.config.app.database));
  if (!p)
    throw new ClusterError(ErrorCodes.NO_PRIMARY, 'the cluster has not been created yet; run `pgscale up`');
  return p;
}

export async function psql(argv: string[]): Promise<number> {
  const dd = argv.indexOf('--');
  const own = dd >= 0 ? argv.slice(0, dd) : argv;
  const extra = dd >= 0 ? argv.slice(dd + 1) : [];
  const { values, positionals } = parse('psql', own, {}, 1);
  if (values.help) return (out(psqlHelp), 0);
  const cluster = openCluster(values);
  // The superuser goes through the proxy only where the proxy lets superusers through.
  const viaProxy =
    positionals[0] === undefined && cluster.config.proxy.allow_superuser && liveController(cluster.dataDir)
      ? proxyEndpoint(cluster)
      : null;
  const node = viaProxy ?? pickNode(cluster, positionals[0]);
  const bin = cluster.bins.psql;
  if (!bin) {
    throw new ClusterError(
      ErrorCodes.BINARIES_NOT_FOUND,
      'psql not found (not beside the server binaries nor on PATH); install the PostgreSQL client (e.g. apt-get install postgresql-client)',
    );
  }
  cluster.secrets();
  const args = [
    '-h',
    node.host,
    '-p',
    String(node.port),
    '-U',
    cluster.config.postgres.superuser,
    '-d',
    cluster.config.app.database,
    ...extra,
  ];
  const child = spawn(bin, args, {
    stdio: 'inherit',
    env: {
      ...cleanEnv(),
      PGPASSFILE: passfilePath(cluster.dataDir),
      PGAPPNAME: 'pgscale psql',
      PGCONNECT_TIMEOUT: '10',
      // A node verified by the cluster CA (cluster.tls on); the proxy has its own proxy.tls.
      ...(viaProxy ? {} : sslEnv(cluster.rootCert())),
    },
  });
  process.on('SIGINT', () => undefined); // psql handles Ctrl-C itself
  return new Promise((resolve) => {
    child.on('error', (e) => {
      out(`pgscale: could not run psql: ${e.message}`);
      resolve(1);
    });
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

export function url(argv: string[]): number {
  const { values } = parse('url', argv, { node: { type: 'string' }, superuser: { type: 'boolean' } });
  if (values.help) return (out(urlHelp), 0);
  if (values.node === '') throw new UsageError('--node needs a node name');
  const cluster = openCluster(values);
  const node =
    (typeof values.node === 'string' ? null : proxyEndpoint(cluster)) ??
    pickNode(cluster, typeof values.node === 'string' ? values.node : undefined);
  const s = cluster.secrets();
  const user = values.superuser ? cluster.config.postgres.superuser : cluster.config.app.user;
  const password = values.superuser ? s.superuser : s.app;
  const host = node.host.includes(':') ? `[${node.host}]` : node.host;
  out(
    `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${node.port}/${encodeURIComponent(cluster.config.app.database)}`,
  );
  return 0;
}
