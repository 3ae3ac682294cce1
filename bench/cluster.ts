/**
 * A replicated PostgreSQL cluster for the read-scaling benchmark: one primary and N streaming
 * standbys provisioned with the project's own `Cluster` code (as the test harness's
 * `makeCluster(bins, { replicas })` does) in a temporary directory on a free block of loopback
 * ports, with WAL archiving off. Registered for cleanup: `pg_ctl stop` of every node and removal
 * of the directory at the end, on an exception and on Ctrl-C.
 */
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import pg from 'pg';
import { tempDir } from '../test/harness.js';
import { Cluster } from '../src/cluster/cluster.js';
import { runningPid } from '../src/cluster/instance.js';
import { findFreePortBlock } from '../src/cluster/ports.js';
import { serviceUser } from '../src/cluster/run-as.js';
import { parseConfig } from '../src/config/load.js';
import { INIT_DEFAULTS, renderConfig } from '../src/config/template.js';
import type { PgBinaries } from '../src/cluster/binaries.js';
import { onCleanup } from './cleanup.js';
import { pickBinaries } from './server.js';
import type { ServerInfo } from './server.js';

export interface BenchNode {
  name: string;
  role: 'primary' | 'replica';
  host: string;
  port: number;
  pgdata: string;
  /** The postmaster's pid now (null when the node is not running). */
  postmasterPid(): number | null;
}

export interface BenchCluster {
  /** How clients reach the primary, as the application user and as the superuser. */
  info: ServerInfo;
  nodes: BenchNode[];
  bins: PgBinaries & { pgbench: string };
  /** A superuser client of `node` (database of the application), connected. */
  superClient(node: BenchNode): Promise<pg.Client>;
  /** Waits until every replica has replayed the primary's current WAL position. */
  waitReplayed(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  replicas: number;
  maxConnections: number;
  sharedBuffers: string;
}

export async function startCluster(opts: ClusterOptions): Promise<BenchCluster> {
  const bins = pickBinaries();
  const dir = tempDir('pgscale-bench-reads-');
  const base = await findFreePortBlock(opts.replicas + 1);
  const doc = parseDocument(
    renderConfig({
      ...INIT_DEFAULTS,
      name: 'benchreads',
      groups: 1,
      replicas: opts.replicas,
      host: '127.0.0.1',
      portBase: base,
      // Unused (no proxy or HTTP API runs from this file) but must be valid.
      proxyPort: base + opts.replicas + 1,
      httpPort: base + opts.replicas + 2,
    }),
  );
  doc.setIn(['postgres', 'parameters'], {
    max_connections: opts.maxConnections,
    shared_buffers: opts.sharedBuffers,
    superuser_reserved_connections: 3,
  });
  doc.setIn(['replication', 'archive'], false);
  const file = join(dir, 'pgscale.yaml');
  const text = doc.toString();
  writeFileSync(file, text);
  const cluster = new Cluster(parseConfig(text, file), undefined, bins);
  const refs = cluster.nodes();
  const pgdatas = refs.map((n) => cluster.paths(n.name).pgdata);
  const cleanup = async () => {
    await cluster.destroy().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  const forget = onCleanup('PostgreSQL cluster', cleanup, () => {
    const u = serviceUser();
    for (const pgdata of pgdatas) {
      spawnSync(bins.pgCtl, ['stop', '-D', pgdata, '-m', 'immediate', '-w', '-s'], {
        stdio: 'ignore',
        timeout: 30_000,
        ...(u ? { uid: u.uid, gid: u.gid } : {}),
      });
    }
    rmSync(dir, { recursive: true, force: true });
  });
  await cluster.up({ waitStreamingMs: 60_000 });
  const secrets = cluster.secrets();
  const cfg = cluster.config;
  const nodes: BenchNode[] = refs.map((n, i) => ({
    name: n.name,
    role: i === 0 ? 'primary' : 'replica',
    host: n.host,
    port: n.port,
    pgdata: pgdatas[i]!,
    postmasterPid: () => runningPid(pgdatas[i]!),
  }));
  const primary = nodes[0]!;
  const superClient = async (node: BenchNode) => {
    const c = new pg.Client({
      host: node.host,
      port: node.port,
      user: cfg.postgres.superuser,
      password: secrets.superuser,
      database: cfg.app.database,
    });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };
  return {
    info: {
      host: primary.host,
      port: primary.port,
      database: cfg.app.database,
      user: cfg.app.user,
      password: secrets.app,
      superuser: cfg.postgres.superuser,
      superPassword: secrets.superuser,
    },
    nodes,
    bins,
    superClient,
    async waitReplayed(timeoutMs = 120_000) {
      const p = await superClient(primary);
      let target: string;
      try {
        target = (await p.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;
      } finally {
        await p.end();
      }
      const deadline = Date.now() + timeoutMs;
      for (const n of nodes.slice(1)) {
        const c = await superClient(n);
        try {
          for (;;) {
            const r = await c.query<{ ok: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [
              target,
            ]);
            if (r.rows[0]?.ok) break;
            if (Date.now() > deadline) throw new Error(`${n.name} has not replayed ${target} yet`);
            await new Promise((res) => setTimeout(res, 200));
          }
        } finally {
          await c.end();
        }
      }
    },
    stop: async () => {
      await cleanup();
      forget();
    },
  };
}
