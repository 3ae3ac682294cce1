/**
 * PgBouncer in front of the demo's primary, for the connections scenario's comparison: the
 * PgBouncer installed on this machine (tools.ts finds it), run in the foreground as a child of
 * the demo — as the service user when the demo runs as root, since PgBouncer refuses root — with
 * transaction pooling and the same pool size as pgscale's proxy, on a spare port of the cluster's
 * block. Its files (pgbouncer.ini, userlist.txt, log) live in the cluster's directory and go with it.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serviceUser } from '../cluster/run-as.js';
import { waitAccepting } from './cluster.js';
import type { DemoCluster, StandaloneProxy } from './cluster.js';
import { startDaemon } from './daemon.js';

/** `PgBouncer 1.18.0` from `pgbouncer --version`, or null when it does not answer. */
export function pgbouncerVersion(path: string): string | null {
  const r = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? (r.stdout.split('\n')[0]?.trim() ?? null) : null;
}

/** pgbouncer.ini for one database in front of `server`, transaction pooling. */
export function pgbouncerIni(o: {
  database: string;
  server: { host: string; port: number };
  port: number;
  poolSize: number;
  maxClients: number;
  dir: string;
}): string {
  return [
    '[databases]',
    `${o.database} = host=${o.server.host} port=${o.server.port} dbname=${o.database}`,
    '',
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${o.port}`,
    'unix_socket_dir =',
    'auth_type = scram-sha-256',
    `auth_file = ${join(o.dir, 'userlist.txt')}`,
    'pool_mode = transaction',
    `default_pool_size = ${o.poolSize}`,
    `max_client_conn = ${o.maxClients}`,
    'ignore_startup_parameters = extra_float_digits,options',
    `logfile = ${join(o.dir, 'pgbouncer.log')}`,
    `pidfile = ${join(o.dir, 'pgbouncer.pid')}`,
    '',
  ].join('\n');
}

/** Starts PgBouncer (`path`) in front of the cluster's primary; resolves once it answers a query. */
export async function startPgBouncer(
  cluster: DemoCluster,
  o: { path: string; poolSize: number; maxClients: number },
): Promise<StandaloneProxy> {
  const port = cluster.takePort();
  const primary = await cluster.primary();
  const app = cluster.endpoint();
  const dir = join(cluster.dir, `pgbouncer-${port}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
  const users = join(dir, 'userlist.txt');
  const ini = join(dir, 'pgbouncer.ini');
  writeFileSync(users, `${q(app.user)} ${q(app.password)}\n`, { mode: 0o600 });
  writeFileSync(
    ini,
    pgbouncerIni({
      database: app.database,
      server: primary,
      port,
      poolSize: o.poolSize,
      maxClients: o.maxClients,
      dir,
    }),
    { mode: 0o600 },
  );
  const u = serviceUser();
  if (u) for (const f of [dir, users, ini]) chownSync(f, u.uid, u.gid);
  const d = startDaemon(cluster, {
    name: 'pgbouncer',
    file: o.path,
    args: [ini],
    log: join(dir, 'stderr.log'),
    cwd: dir,
    asService: true,
  });
  const stop = () => d.stop(); // SIGTERM: immediate shutdown (SIGINT would wait for the clients)
  const endpoint = { ...app, port };
  await waitAccepting(
    endpoint,
    'PgBouncer',
    () => d.exited(),
    join(dir, 'pgbouncer.log'),
    stop,
    () => void d.stop(true),
  );
  return { endpoint, pid: d.pid, stop };
}
