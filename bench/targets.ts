/**
 * What a benchmark client connects to: the PostgreSQL server itself (`direct`), Debian's
 * PgBouncer, or pgscale's own proxy, each started on a free loopback port in front of the same
 * server with the same pool settings (transaction pooling, `poolSize` server connections,
 * SCRAM-SHA-256 for clients with the app user's password taken from a PgBouncer-format userlist).
 * PgBouncer refuses to run as root, so as root it runs as the service user (`serviceUser()`),
 * with its files in a temporary directory that user owns.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { repoRoot, tempDir } from '../test/harness.js';
import { cleanEnv, serviceUser } from '../src/cluster/run-as.js';
import { parseConfig } from '../src/config/load.js';
import { onCleanup } from './cleanup.js';
import { freePort, startDaemon, waitAccepting } from './process.js';
import type { Daemon } from './process.js';
import type { ServerInfo } from './server.js';

export type { ServerInfo } from './server.js';

export interface TargetOptions {
  poolSize: number;
  maxClients: number;
  /** pgscale only: run the proxy under `node --cpu-prof`, writing its .cpuprofile here on exit. */
  cpuProfileDir?: string | null;
  /** pgscale only: `pgscale proxy --workers N` (default: one process). */
  workers?: number;
}

export interface Running {
  host: string;
  port: number;
  /** The proxy process (for its memory); absent for the server itself. */
  pid?: number;
  stop(): Promise<void>;
}

export interface Target {
  name: string;
  /** Why this target cannot run here, or null when it can. */
  unavailable?(): string | null;
  start(server: ServerInfo, opts: TargetOptions): Promise<Running>;
}

export const PGBOUNCER = '/usr/sbin/pgbouncer';
/** Client connections a proxy accepts beyond the benchmark's own (pgbench's, our checks). */
const CLIENT_MARGIN = 100;

export const direct: Target = {
  name: 'direct',
  start: (server) => Promise.resolve({ host: server.host, port: server.port, stop: () => Promise.resolve() }),
};

/** A PgBouncer-format userlist: `"user" "secret"`, double quotes doubled. */
export function userlist(entries: Record<string, string>): string {
  const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
  return Object.entries(entries)
    .map(([u, p]) => `${q(u)} ${q(p)}\n`)
    .join('');
}

/** `pgbouncer --version`'s first line, e.g. "PgBouncer 1.18.0"; null when it does not run. */
export function pgbouncerVersion(): string | null {
  const r = spawnSync(PGBOUNCER, ['--version'], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  return r.stdout.split('\n')[0]?.trim() ?? null;
}

function versionAtLeast(v: string | null, major: number, minor: number): boolean {
  const m = /(\d+)\.(\d+)/.exec(v ?? '');
  return !!m && (Number(m[1]) > major || (Number(m[1]) === major && Number(m[2]) >= minor));
}

/** A temporary directory for a proxy's files, owned by `owner` when given; removed at cleanup. */
export function workDir(
  prefix: string,
  owner: { uid: number; gid: number } | null,
): { dir: string; remove(): void } {
  const dir = tempDir(prefix);
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const remove = () => rmSync(dir, { recursive: true, force: true });
  const forget = onCleanup(`directory ${dir}`, () => Promise.resolve(remove()), remove);
  return {
    dir,
    remove: () => {
      remove();
      forget();
    },
  };
}

export function writePrivate(path: string, text: string, owner: { uid: number; gid: number } | null): void {
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
  if (owner) chownSync(path, owner.uid, owner.gid);
}

async function ready(server: ServerInfo, port: number, daemon: Daemon, name: string, remove: () => void) {
  try {
    await waitAccepting(
      { host: '127.0.0.1', port, user: server.user, password: server.password, database: server.database },
      daemon,
    );
  } catch (e) {
    await daemon.stop();
    remove();
    throw new Error(`${name} on 127.0.0.1:${port} ${e instanceof Error ? e.message : String(e)}`);
  }
  return {
    host: '127.0.0.1',
    port,
    pid: daemon.pid,
    stop: async () => {
      await daemon.stop();
      remove();
    },
  };
}

export const pgbouncer: Target = {
  name: 'pgbouncer',
  unavailable: () => (pgbouncerVersion() ? null : `${PGBOUNCER} --version failed`),
  async start(server, opts) {
    const user = serviceUser();
    const work = workDir('pgscale-bench-pgbouncer-', user);
    const port = await freePort();
    const ini = join(work.dir, 'pgbouncer.ini');
    const auth = join(work.dir, 'userlist.txt');
    writePrivate(auth, userlist({ [server.user]: server.password }), user);
    const settings: [string, string | number][] = [
      ['listen_addr', '127.0.0.1'],
      ['listen_port', port],
      // Empty: no Unix socket, TCP on loopback only.
      ['unix_socket_dir', ''],
      ['auth_type', 'scram-sha-256'],
      ['auth_file', auth],
      ['pool_mode', 'transaction'],
      ['default_pool_size', opts.poolSize],
      ['max_client_conn', opts.maxClients + CLIENT_MARGIN],
      ['ignore_startup_parameters', 'extra_float_digits'],
      ['server_tls_sslmode', 'disable'],
      ['logfile', join(work.dir, 'pgbouncer.log')],
      // 10,000 logins would otherwise write 20,000 log lines during the memory measurement.
      ['log_connections', 0],
      ['log_disconnections', 0],
    ];
    // PgBouncer ≥ 1.21 can keep prepared statements across transaction pooling; pgscale's
    // default for the same setting is 200. Older versions (Debian 12 ships 1.18) cannot.
    if (versionAtLeast(pgbouncerVersion(), 1, 21)) settings.push(['max_prepared_statements', 200]);
    writePrivate(
      ini,
      `[databases]\n${server.database} = host=${server.host} port=${server.port} dbname=${server.database}\n\n` +
        `[pgbouncer]\n${settings.map(([k, v]) => `${k} = ${v}`).join('\n')}\n`,
      user,
    );
    const daemon = startDaemon({
      name: 'pgbouncer',
      file: PGBOUNCER,
      args: [ini],
      cwd: work.dir,
      env: cleanEnv(),
      logFile: join(work.dir, 'stdout.log'),
      user,
    });
    return ready(server, port, daemon, 'pgbouncer', () => work.remove());
  },
};

/**
 * pgscale's proxy from the checkout at `root` (its `bin/pgscale.js`, running its own `dist/`):
 * this repository for `pgscale`, another built checkout for a same-run baseline.
 */
export function pgscaleAt(name: string, root: string): Target {
  const pgscaleBin = join(root, 'bin', 'pgscale.js');
  return {
    name,
    unavailable: () => {
      const r = spawnSync(process.execPath, [pgscaleBin, 'proxy', '--help'], {
        cwd: root,
        encoding: 'utf8',
        timeout: 60_000,
      });
      if (r.status === 0) return null;
      const why = (r.stderr || r.stdout).trim().split('\n')[0] ?? '';
      return `\`pgscale proxy --help\` exited with ${r.status ?? r.signal}${why ? `: ${why}` : ''}`;
    },
    async start(server, opts) {
      const work = workDir('pgscale-bench-proxy-', null);
      const [port, httpPort] = [await freePort(), await freePort()];
      const auth = join(work.dir, 'userlist.txt');
      writePrivate(auth, userlist({ [server.user]: server.password }), null);
      const file = join(work.dir, 'pgscale.yaml');
      const config = {
        cluster: { name: 'bench', data_dir: join(work.dir, 'data') },
        http: { listen: '127.0.0.1', port: httpPort },
        proxy: {
          listen: '127.0.0.1',
          port,
          pool_mode: 'transaction',
          default_pool_size: opts.poolSize,
          max_client_conn: opts.maxClients + CLIENT_MARGIN,
          auth_type: 'scram-sha-256',
          auth_file: auth,
          ignore_startup_parameters: ['extra_float_digits'],
          databases: { [server.database]: { host: server.host, port: server.port } },
        },
        groups: [],
      };
      const text = stringify(config);
      // Validate with pgscale's own loader first: a schema mismatch is then reported as such.
      parseConfig(text, file);
      writePrivate(file, text, null);
      const daemon = startDaemon({
        name: 'pgscale proxy',
        file: process.execPath,
        args: [
          ...(opts.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfileDir}`] : []),
          pgscaleBin,
          'proxy',
          '-c',
          file,
          ...(opts.workers !== undefined ? ['--workers', String(opts.workers)] : []),
        ],
        cwd: work.dir,
        env: cleanEnv(),
        logFile: join(work.dir, 'proxy.log'),
      });
      return ready(server, port, daemon, `${name} proxy`, () => work.remove());
    },
  };
}

export const pgscale: Target = pgscaleAt('pgscale', repoRoot);

/**
 * A Node.js relay that only copies bytes (bench/node-pipe.mjs): what Node's socket layer alone
 * costs per transaction, the floor under any proxy written for Node.
 */
export const nodePipe: Target = {
  name: 'node-pipe',
  async start(server) {
    const work = workDir('pgscale-bench-pipe-', null);
    const port = await freePort();
    const daemon = startDaemon({
      name: 'node-pipe',
      file: process.execPath,
      args: [join(repoRoot, 'bench', 'node-pipe.mjs'), String(port), server.host, String(server.port)],
      cwd: work.dir,
      env: cleanEnv(),
      logFile: join(work.dir, 'pipe.log'),
    });
    return ready(server, port, daemon, 'node-pipe', () => work.remove());
  },
};

/**
 * A minimal Node.js transaction pooler (bench/min-pooler.mjs, issue #14): frames messages, pools
 * `poolSize` server connections, parses no SQL; SCRAM-SHA-256 to the server and for clients, with
 * the app user's password in its environment. The floor a Node.js pooler reaches per transaction
 * on this machine, to hold pgscale's proxy against.
 */
export const minPooler: Target = {
  name: 'min-pooler',
  async start(server, opts) {
    const work = workDir('pgscale-bench-minpool-', null);
    const port = await freePort();
    const daemon = startDaemon({
      name: 'min-pooler',
      file: process.execPath,
      args: [
        join(repoRoot, 'bench', 'min-pooler.mjs'),
        String(port),
        server.host,
        String(server.port),
        String(opts.poolSize),
        server.user,
        server.database,
      ],
      cwd: work.dir,
      // The password through the environment, never the command line (ps).
      env: { ...cleanEnv(), PGPASSWORD: server.password },
      logFile: join(work.dir, 'min-pooler.log'),
    });
    return ready(server, port, daemon, 'min-pooler', () => work.remove());
  },
};

export const ALL_TARGETS: readonly Target[] = [direct, pgbouncer, pgscale, nodePipe, minPooler];
/** bench:proxy's targets when --targets is not given: the proxies and their two Node floors. */
export const DEFAULT_TARGETS: readonly string[] = [
  'direct',
  'pgbouncer',
  'pgscale',
  'node-pipe',
  'min-pooler',
];
