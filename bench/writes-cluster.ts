/**
 * A `pgscale up` cluster for the write-scaling benchmark: N groups of one primary each (no
 * replicas), written by the test harness's makeCluster (`pgscale init`'s template on a free block
 * of loopback ports) and started with the CLI (`pgscale up --detach`), as a user would; the proxy
 * runs inside the controller process, whose pid controller.json names. Synchronous commit is off
 * and WAL archiving too, so that the host's one disk (shared by every group here, unlike separate
 * machines) does not set the pace. Registered for cleanup: `pgscale down` and removal of the
 * directory at the end, on an exception and on Ctrl-C (SIGKILL of the controller and
 * `pg_ctl stop -m immediate` of every node as the synchronous fallback).
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { parseDocument } from 'yaml';
import pg from 'pg';
import { cli, makeCluster } from '../test/harness.js';
import type { CliResult } from '../test/harness.js';
import type { Cluster } from '../src/cluster/cluster.js';
import type { PgBinaries } from '../src/cluster/binaries.js';
import { readControllerFile } from '../src/controller/controller-file.js';
import { readSecrets } from '../src/cluster/secrets.js';
import { runningPid } from '../src/cluster/instance.js';
import { serviceUser } from '../src/cluster/run-as.js';
import { onCleanup } from './cleanup.js';
import type { Login } from './process.js';
import { pickBinaries } from './server.js';

export interface GroupPrimary {
  /** Node name (s<group>n0), also the name of its cgroup. */
  name: string;
  group: number;
  port: number;
  postmasterPid(): number | null;
}

export interface WritesCluster {
  groups: number;
  /** The application user through the proxy. */
  app: Login;
  primaries: GroupPrimary[];
  /** The controller's pid: the process that runs the proxy. */
  controllerPid: number;
  pgbench: string;
  /** The PostgreSQL build the cluster runs (its bin directory holds pg_dump and psql). */
  bins: PgBinaries;
  /** A superuser client straight to a group's primary (database app), connected. */
  superClient(p: GroupPrimary): Promise<pg.Client>;
  /** The cluster as the CLI sees it (its controller's API: src/cli/controller-api.ts). */
  cluster: Cluster;
  /** The superuser's name and password (for client programs: pg_dump, psql). */
  superuser: { user: string; password: string };
  /** Runs `pgscale ARGS -c <the cluster's file>`. */
  cli(args: string[]): Promise<CliResult>;
  stop(): Promise<void>;
}

export interface WritesClusterOptions {
  groups: number;
  poolSize: number;
  maxConnections: number;
  sharedBuffers: string;
  /** Extra environment of `pgscale up`, inherited by the controller (e.g. NODE_OPTIONS=--cpu-prof). */
  env?: Record<string, string>;
  /** The cluster's name (default benchwrites<groups>). */
  name?: string;
  /** proxy.exposed_databases: databases the proxy serves besides the application's (on group 0). */
  exposedDatabases?: string[];
  /** synchronous_commit of every node ('off' unless given: the disk is shared by every group). */
  synchronousCommit?: 'on' | 'off';
  /** The PostgreSQL build (default: the newest system one with pgbench, bench/server.ts). */
  bins?: PgBinaries;
  /** More PostgreSQL parameters of every node (e.g. wal_level: logical for shard moves). */
  parameters?: Record<string, string | number>;
}

export async function startWritesCluster(o: WritesClusterOptions): Promise<WritesCluster> {
  const bins = o.bins ?? pickBinaries();
  const tc = await makeCluster(bins, {
    name: o.name ?? `benchwrites${o.groups}`,
    groups: o.groups,
    replicas: 0,
    host: '127.0.0.1',
    extra: (yaml) => {
      const doc = parseDocument(yaml);
      doc.setIn(['postgres', 'parameters'], {
        max_connections: o.maxConnections,
        shared_buffers: o.sharedBuffers,
        synchronous_commit: o.synchronousCommit ?? 'off',
        superuser_reserved_connections: 3,
        ...o.parameters,
      });
      doc.setIn(['replication', 'archive'], false);
      doc.setIn(['proxy', 'default_pool_size'], o.poolSize);
      if (o.exposedDatabases) doc.setIn(['proxy', 'exposed_databases'], o.exposedDatabases);
      return doc.toString();
    },
  });
  const pgdatas = tc.cluster.nodes().map((n) => tc.cluster.paths(n.name).pgdata);
  const forget = onCleanup(
    `pgscale cluster (${o.groups} groups)`,
    async () => {
      await cli(['down', '-c', tc.file], tc.env).catch(() => undefined);
      await tc.cleanup();
    },
    () => {
      const info = readControllerFile(tc.cluster.dataDir);
      if (info) {
        try {
          process.kill(info.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      const u = serviceUser();
      for (const pgdata of pgdatas)
        spawnSync(bins.pgCtl, ['stop', '-D', pgdata, '-m', 'immediate', '-w', '-s'], {
          stdio: 'ignore',
          timeout: 30_000,
          ...(u ? { uid: u.uid, gid: u.gid } : {}),
        });
      rmSync(tc.dir, { recursive: true, force: true });
    },
  );
  const up = await cli(['up', '-c', tc.file, '--detach'], { ...tc.env, ...o.env });
  if (up.code !== 0) throw new Error(`pgscale up failed (exit ${up.code}):\n${up.stderr}${up.stdout}`);
  const controller = readControllerFile(tc.cluster.dataDir);
  if (!controller) throw new Error('pgscale up --detach left no controller.json');
  const secrets = readSecrets(tc.cluster.dataDir);
  if (!secrets) throw new Error('pgscale up left no secrets');
  const cfg = tc.cluster.config;
  const primaries: GroupPrimary[] = tc.cluster
    .nodes()
    .filter((n) => n.index === 0)
    .map((n) => {
      const pgdata = tc.cluster.paths(n.name).pgdata;
      return { name: n.name, group: n.group, port: n.port, postmasterPid: () => runningPid(pgdata) };
    });
  return {
    groups: o.groups,
    app: {
      host: '127.0.0.1',
      port: cfg.proxy.port,
      user: cfg.app.user,
      password: secrets.app,
      database: cfg.app.database,
    },
    primaries,
    controllerPid: controller.pid,
    pgbench: bins.pgbench ?? 'pgbench',
    bins,
    cluster: tc.cluster,
    superuser: { user: cfg.postgres.superuser, password: secrets.superuser },
    cli: (args) => cli([...args, '-c', tc.file], tc.env),
    async superClient(p) {
      const c = new pg.Client({
        host: '127.0.0.1',
        port: p.port,
        user: cfg.postgres.superuser,
        password: secrets.superuser,
        database: cfg.app.database,
      });
      c.on('error', () => undefined);
      await c.connect();
      return c;
    },
    async stop() {
      await cli(['down', '-c', tc.file], tc.env).catch(() => undefined);
      await tc.cleanup();
      forget();
    },
  };
}
