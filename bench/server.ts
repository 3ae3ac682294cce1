/**
 * The one PostgreSQL server every target of a benchmark run talks to: a single-node pgscale
 * cluster provisioned with the project's own `Cluster` code (as the integration-test harness
 * does) in a temporary directory, on a free loopback port, with `max_connections` raised so
 * that the direct target can take 1,000 clients while both proxies keep their pools open. WAL
 * archiving is off: the benchmark measures the proxies, not the archive.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { binarySets, tempDir } from '../test/harness.js';
import { Cluster } from '../src/cluster/cluster.js';
import { parseConfig } from '../src/config/load.js';
import { INIT_DEFAULTS, renderConfig } from '../src/config/template.js';
import type { PgBinaries } from '../src/cluster/binaries.js';
import { serviceUser } from '../src/cluster/run-as.js';
import { onCleanup } from './cleanup.js';
import { freePort } from './process.js';

/** How clients reach the server, as the application user and as the superuser. */
export interface ServerInfo {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
  superuser: string;
  superPassword: string;
}

export interface BenchServer {
  info: ServerInfo;
  bins: PgBinaries & { pgbench: string };
  pgdata: string;
  maxConnections: number;
  /** Connections the direct target must leave free (superuser reserve and our own sessions). */
  reserve: number;
  stop(): Promise<void>;
}

export interface ServerOptions {
  maxConnections: number;
  sharedBuffers: string;
}

/** The newest system PostgreSQL build that ships pgbench (the embedded one has none). */
export function pickBinaries(): PgBinaries & { pgbench: string } {
  const b = binarySets().find((s): s is PgBinaries & { pgbench: string } => s.pgbench !== null);
  if (!b)
    throw new Error(
      'no PostgreSQL build with pgbench found (install postgresql-contrib or set PGSCALE_TEST_PG_BINS)',
    );
  return b;
}

/** The YAML of a one-node cluster on `port`, from `pgscale init`'s template. */
function benchConfig(port: number, opts: ServerOptions): string {
  const doc = parseDocument(
    renderConfig({
      ...INIT_DEFAULTS,
      name: 'bench',
      groups: 1,
      replicas: 0,
      host: '127.0.0.1',
      portBase: port,
      // Unused here (no proxy or HTTP API runs from this file), but must be valid.
      proxyPort: port + 1,
      httpPort: port + 2,
    }),
  );
  doc.setIn(['postgres', 'parameters'], {
    max_connections: opts.maxConnections,
    shared_buffers: opts.sharedBuffers,
    superuser_reserved_connections: 3,
  });
  doc.setIn(['replication', 'archive'], false);
  return doc.toString();
}

export async function startServer(opts: ServerOptions): Promise<BenchServer> {
  const bins = pickBinaries();
  // As the test harness's makeCluster does, with a prefix of our own so that a leftover is ours.
  const dir = tempDir('pgscale-bench-pg-');
  const file = join(dir, 'pgscale.yaml');
  writeFileSync(file, benchConfig(await freePort(), opts));
  const cluster = new Cluster(parseConfig(readFileSync(file, 'utf8'), file), undefined, bins);
  const tc = {
    dir,
    cluster,
    cleanup: async () => {
      await cluster.destroy().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const node = tc.cluster.nodes()[0]!;
  const pgdata = tc.cluster.paths(node.name).pgdata;
  const forget = onCleanup(
    'PostgreSQL',
    () => tc.cleanup(),
    () => {
      const u = serviceUser();
      spawnSync(bins.pgCtl, ['stop', '-D', pgdata, '-m', 'immediate', '-w', '-s'], {
        stdio: 'ignore',
        timeout: 30_000,
        ...(u ? { uid: u.uid, gid: u.gid } : {}),
      });
      rmSync(tc.dir, { recursive: true, force: true });
    },
  );
  await tc.cluster.up({ waitStreamingMs: 30_000 });
  const secrets = tc.cluster.secrets();
  const cfg = tc.cluster.config;
  return {
    info: {
      host: node.host,
      port: node.port,
      database: cfg.app.database,
      user: cfg.app.user,
      password: secrets.app,
      superuser: cfg.postgres.superuser,
      superPassword: secrets.superuser,
    },
    bins,
    pgdata,
    maxConnections: opts.maxConnections,
    reserve: 3 + 7,
    stop: async () => {
      await tc.cleanup();
      forget();
    },
  };
}
