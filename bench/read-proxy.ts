/**
 * pgscale's proxy as a separate process (`node bin/pgscale.js proxy -c <yaml>`) in front of a
 * primary and a given list of its replicas, for the read-scaling benchmark: transaction pooling,
 * read/write splitting with the default consistency or a given one, SCRAM for clients
 * against a PgBouncer-format userlist holding the application user's and the superuser's
 * passwords, and the superuser on the admin console (`SHOW NODES`). Its files live in a temporary
 * directory; process and directory are registered for cleanup.
 */
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { repoRoot, tempDir } from '../test/harness.js';
import { cleanEnv } from '../src/cluster/run-as.js';
import { parseConfig } from '../src/config/load.js';
import pg from 'pg';
import { showNodes } from '../src/demo/proxy-nodes.js';
import type { ProxyNode } from '../src/demo/proxy-nodes.js';
import { onCleanup } from './cleanup.js';
import { freePort, startDaemon, waitAccepting } from './process.js';
import type { Daemon } from './process.js';
import type { ServerInfo } from './server.js';
import { userlist } from './targets.js';

export interface ReadProxyOptions {
  /** Replicas of the primary the proxy may send reads to (0, 1, 2 … of them). */
  replicas: readonly { host: string; port: number }[];
  poolSize: number;
  maxClients: number;
  /** proxy.primary_read_weight: the primary's share of reads next to each replica's 1. */
  primaryWeight?: number;
  /** proxy.balance. */
  balance?: 'round-robin' | 'least-outstanding';
  /** proxy.node_concurrency (default: the proxy's own default). */
  nodeConcurrency?: 'auto' | number;
  /** proxy.consistency (default: the proxy's own default). */
  consistency?: string;
}

export interface ReadProxy {
  host: string;
  port: number;
  pid: number;
  daemon: Daemon;
  /** `SHOW NODES` on the admin console, as the superuser. */
  showNodes(): Promise<NodeRow[]>;
  /** `SHOW POOLS` node_concurrency of the app database's pools (one per node): the limits in force. */
  poolLimits(): Promise<number[]>;
  stop(): Promise<void>;
}

export type NodeRow = ProxyNode;

const pgscaleBin = join(repoRoot, 'bin', 'pgscale.js');

export async function startReadProxy(server: ServerInfo, o: ReadProxyOptions): Promise<ReadProxy> {
  const dir = tempDir('pgscale-bench-reads-proxy-');
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  const forgetDir = onCleanup(`directory ${dir}`, () => Promise.resolve(removeDir()), removeDir);
  const [port, httpPort] = [await freePort(), await freePort()];
  const auth = join(dir, 'userlist.txt');
  writeFileSync(
    auth,
    userlist({ [server.user]: server.password, [server.superuser]: server.superPassword }),
    { mode: 0o600 },
  );
  chmodSync(auth, 0o600);
  const file = join(dir, 'pgscale.yaml');
  const text = stringify({
    cluster: { name: 'benchreads', data_dir: join(dir, 'data') },
    http: { listen: '127.0.0.1', port: httpPort },
    proxy: {
      listen: '127.0.0.1',
      port,
      pool_mode: 'transaction',
      default_pool_size: o.poolSize,
      max_client_conn: o.maxClients + 100,
      auth_type: 'scram-sha-256',
      auth_file: auth,
      admin_users: [server.superuser],
      ignore_startup_parameters: ['extra_float_digits'],
      primary_read_weight: o.primaryWeight ?? 0,
      ...(o.balance ? { balance: o.balance } : {}),
      ...(o.nodeConcurrency !== undefined ? { node_concurrency: o.nodeConcurrency } : {}),
      ...(o.consistency ? { consistency: o.consistency } : {}),
      databases: {
        [server.database]: {
          host: server.host,
          port: server.port,
          replicas: o.replicas.map((r) => ({ host: r.host, port: r.port })),
        },
      },
    },
    groups: [],
  });
  // pgscale's own loader first: a schema mismatch is then reported as such.
  parseConfig(text, file);
  writeFileSync(file, text, { mode: 0o600 });
  const daemon = startDaemon({
    name: `pgscale proxy (${o.replicas.length} replicas)`,
    file: process.execPath,
    args: [pgscaleBin, 'proxy', '-c', file],
    cwd: dir,
    env: cleanEnv(),
    logFile: join(dir, 'proxy.log'),
  });
  const stop = async () => {
    await daemon.stop();
    removeDir();
    forgetDir();
  };
  try {
    await waitAccepting(
      { host: '127.0.0.1', port, user: server.user, password: server.password, database: server.database },
      daemon,
    );
  } catch (e) {
    await stop();
    throw new Error(`pgscale proxy on 127.0.0.1:${port} ${e instanceof Error ? e.message : String(e)}`);
  }
  return {
    host: '127.0.0.1',
    port,
    pid: daemon.pid,
    daemon,
    showNodes() {
      return showNodes({ host: '127.0.0.1', port, user: server.superuser, password: server.superPassword });
    },
    async poolLimits() {
      const c = new pg.Client({
        host: '127.0.0.1',
        port,
        user: server.superuser,
        password: server.superPassword,
        database: 'pgscale',
      });
      c.on('error', () => undefined);
      await c.connect();
      try {
        const r = await c.query<{ database: string; node_concurrency: string }>('SHOW POOLS');
        return r.rows.filter((x) => x.database === server.database).map((x) => Number(x.node_concurrency));
      } finally {
        await c.end();
      }
    },

    stop,
  };
}
